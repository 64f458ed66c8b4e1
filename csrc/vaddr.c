// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "vaddr.h"
#include "ops-common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MPOL_MF_MOVE
#define MPOL_MF_MOVE (1 << 1)
#endif

/* A process: target->priv of vaddr and fvaddr. */
struct va_target {
	int pid;
	int pidfd;
	int pagemap_fd;
	size_t nr_maps;
	struct dx_range *maps; /* vaddr: the mappings at the last update */
};

/* ------------------------------------------------------------- mappings */

/* The ranges to monitor in a process (dx_three_regions()): 1 to 3. */
static int va_three_regions(struct dx_ctx *ctx, struct va_target *vt,
			    struct dx_range out[3], size_t *nr_out)
{
	struct dx_access_check *ac = ctx->ops_priv;
	struct dx_range *maps = NULL;
	char path[300];
	size_t nr_maps = 0;
	int err;

	snprintf(path, sizeof(path), "%s/%d/maps", ac->procfs, vt->pid);
	err = dx_read_maps(path, &maps, &nr_maps);
	ac->stats.nr_maps_reads++;
	if (err)
		return err;
	if (!nr_maps) {
		free(maps);
		return -ESRCH; /* no mm: a kernel thread or a zombie */
	}
	err = dx_three_regions(maps, nr_maps, ctx->attrs.min_region_sz, out);
	if (err < 0) {
		free(maps);
		return err;
	}
	*nr_out = (size_t)err;
	/* kept to skip samples that fall between mappings */
	free(vt->maps);
	vt->maps = maps;
	vt->nr_maps = nr_maps;
	return 0;
}

static int va_init(struct dx_ctx *ctx)
{
	struct dx_target *t;
	int err;

	dx_for_each_live_target(t, ctx) {
		struct dx_range three[3];
		size_t nr = 0;

		err = va_three_regions(ctx, t->priv, three, &nr);
		if (err == -ENOENT || err == -ESRCH) {
			dx_target_kill(ctx, t);
			continue;
		}
		if (!err)
			err = dx_init_regions(ctx, t, three, nr);
		if (err)
			return err;
	}
	return 0;
}

static int va_update(struct dx_ctx *ctx)
{
	struct dx_target *t;

	dx_for_each_live_target(t, ctx) {
		struct dx_range three[3];
		size_t nr = 0;
		int err;

		/* a process that exits now is reaped before the next sample */
		if (va_three_regions(ctx, t->priv, three, &nr))
			continue;
		err = dx_set_regions(t, three, nr, ctx->attrs.min_region_sz);
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

/* -------------------------------------------------------- access checks */

static uint64_t va_sample_pfn(struct dx_access_check *ac, struct dx_target *t,
			      uint64_t addr)
{
	struct va_target *vt = t->priv;

	/*
	 * The three regions of a process span the holes between its mappings;
	 * a sample there needs no pagemap read.  A mapping created since the
	 * last update is seen from the next one on (ops_update_us).
	 */
	if (vt->maps && dx_find_range(vt->maps, vt->nr_maps, addr) < 0) {
		ac->stats.nr_unmapped++;
		return 0;
	}
	return dx_pagemap_pfn(ac, vt->pagemap_fd, addr);
}

static int va_prepare_access_checks(struct dx_ctx *ctx)
{
	return dx_ac_prepare_access_checks(ctx, va_sample_pfn);
}

/* A process is gone when its pidfd turns readable. */
static bool pidfd_alive(int pidfd)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 0;
}

static bool va_target_valid(struct dx_ctx *ctx, struct dx_target *t)
{
	struct va_target *vt = t->priv;

	return pidfd_alive(vt->pidfd);
}

/*
 * A process that exited since its pages were marked freed them, and the
 * bits of freed pages read accessed; the pagemap tells of the others.
 */
static void va_confirm(struct dx_ctx *ctx, struct dx_target *t)
{
	struct dx_access_check *ac = ctx->ops_priv;
	struct va_target *vt = t->priv;
	struct dx_region *r;

	if (pidfd_alive(vt->pidfd)) {
		dx_confirm_pagemap(ac, t, vt->pagemap_fd);
		return;
	}
	dx_for_each_region(r, t)
		if (r->ops_cookie[0])
			dx_ac_forget(ac, r);
}

static int va_check_accesses(struct dx_ctx *ctx)
{
	return dx_ac_check_accesses(ctx, va_confirm);
}

/* ------------------------------------------------------------- schemes */

/*
 * Advise [start, end) of a process: the bytes advised; *err gets -errno when
 * the advice failed on some of it.
 */
static uint64_t advise_range(int pidfd, uint64_t start, uint64_t end,
			     int advice, int *err)
{
	uint64_t done = 0;

	while (start < end) {
		struct iovec iov = { (void *)(uintptr_t)start, end - start };
		/* one call advises at most about 2 GiB: go on where it stopped */
		ssize_t n =
			syscall(SYS_process_madvise, pidfd, &iov, 1, advice, 0);

		if (n <= 0) {
			*err = n < 0 ? -errno : -EIO;
			break;
		}
		done += (uint64_t)n;
		start += (uint64_t)n;
	}
	return done;
}

/* The advice of each action vaddr applies; 0 for the others. */
static const int va_advice[DX_ACTION_NR] = {
	[DX_ACTION_WILLNEED] = MADV_WILLNEED,
	[DX_ACTION_COLD] = MADV_COLD,
	[DX_ACTION_PAGEOUT] = MADV_PAGEOUT,
	[DX_ACTION_COLLAPSE] = MADV_COLLAPSE,
};

static bool is_migrate(int action)
{
	return action == DX_ACTION_MIGRATE_HOT ||
	       action == DX_ACTION_MIGRATE_COLD;
}

/* Pages of a region acted on in one go: one pagemap read, one syscall. */
#define VA_BATCH 512

/* The pages of a region a scheme acts on, gathered for one system call. */
struct va_batch {
	struct dx_ctx *ctx;
	struct va_target *vt;
	const struct dx_damos *d;
	int *err;
	uint64_t applied; /* bytes */
	size_t nr_iov; /* madvise: runs of contiguous pages */
	struct iovec iov[VA_BATCH];
	size_t nr_pages; /* migrate: one address per page */
	void *pages[VA_BATCH];
	int nodes[VA_BATCH];
	int status[VA_BATCH];
	int before[VA_BATCH];
};

static void flush_advice(struct va_batch *b)
{
	ssize_t n;

	if (!b->nr_iov)
		return;
	n = syscall(SYS_process_madvise, b->vt->pidfd, b->iov, b->nr_iov,
		    va_advice[b->d->s.action], 0);
	if (n < 0)
		*b->err = -errno;
	else
		b->applied += (uint64_t)n;
	b->nr_iov = 0;
}

/*
 * move_pages(2) takes a pid, not a pidfd: the process is checked through
 * its pidfd right before, so a pid reused since the target exited is never
 * acted on, unless it is reused within the microseconds between the check
 * and the call (a wrap of the whole pid space).  Pages are counted as moved
 * when they were elsewhere before and are on the node after.
 */
static void flush_migrate(struct va_batch *b)
{
	struct dx_access_check *ac = b->ctx->ops_priv;
	int nid = b->d->s.target_nid;
	size_t i, m = 0;
	long rc;

	if (!b->nr_pages)
		return;
	if (!pidfd_alive(b->vt->pidfd)) {
		*b->err = -ESRCH;
		goto out;
	}
	if (syscall(SYS_move_pages, b->vt->pid, b->nr_pages, b->pages, NULL,
		    b->before, 0) < 0) {
		*b->err = -errno;
		goto out;
	}
	for (i = 0; i < b->nr_pages; i++) {
		if (b->before[i] < 0 || b->before[i] == nid)
			continue;
		b->pages[m] = b->pages[i];
		b->nodes[m] = nid;
		m++;
	}
	if (!m || !pidfd_alive(b->vt->pidfd))
		goto out;
	rc = syscall(SYS_move_pages, b->vt->pid, m, b->pages, b->nodes,
		     b->status, MPOL_MF_MOVE);
	if (rc < 0) {
		*b->err = -errno;
		goto out;
	}
	/* the pages of one folio move with its first: ask where they are */
	if (syscall(SYS_move_pages, b->vt->pid, m, b->pages, NULL, b->status,
		    0) < 0) {
		*b->err = -errno;
		goto out;
	}
	for (i = 0; i < m; i++) {
		if (b->status[i] == nid)
			b->applied += ac->page_size;
		else if (b->status[i] < 0)
			*b->err = b->status[i];
	}
out:
	b->nr_pages = 0;
}

static void add_page(struct va_batch *b, uint64_t addr, uint64_t page_size)
{
	if (is_migrate(b->d->s.action)) {
		b->pages[b->nr_pages++] = (void *)(uintptr_t)addr;
		if (b->nr_pages == VA_BATCH)
			flush_migrate(b);
		return;
	}
	if (b->d->s.action == DX_ACTION_STAT)
		return;
	if (b->nr_iov && (uintptr_t)b->iov[b->nr_iov - 1].iov_base +
					 b->iov[b->nr_iov - 1].iov_len ==
				 addr) {
		b->iov[b->nr_iov - 1].iov_len += page_size;
		return;
	}
	if (b->nr_iov == VA_BATCH)
		flush_advice(b);
	b->iov[b->nr_iov].iov_base = (void *)(uintptr_t)addr;
	b->iov[b->nr_iov].iov_len = page_size;
	b->nr_iov++;
}

/*
 * Act on the present pages of [lo, hi) that pass the scheme's page
 * filters, as the kernel's page table walks of vaddr visit present pages.
 */
static void va_act_on_pages(struct va_batch *b, uint64_t lo, uint64_t hi,
			    uint64_t *sz_filter_passed)
{
	struct dx_access_check *ac = b->ctx->ops_priv;
	uint32_t types = dx_damos_ops_filter_types(b->d);
	uint64_t entries[VA_BATCH], addr, first;
	struct dx_page_info page = { .nr_pages = 0 };

	for (addr = lo; addr < hi;) {
		size_t nr = (size_t)((hi - addr) / ac->page_size), i;
		ssize_t n;

		if (nr > VA_BATCH)
			nr = VA_BATCH;
		if (!nr)
			break;
		first = addr / ac->page_size;
		ac->stats.nr_pagemap_reads++;
		n = pread(b->vt->pagemap_fd, entries, nr * sizeof(entries[0]),
			  (off_t)(first * sizeof(entries[0])));
		if (n <= 0) {
			*b->err = n < 0 ? -errno : -ESRCH;
			return;
		}
		nr = (size_t)n / sizeof(entries[0]);
		for (i = 0; i < nr; i++, addr += ac->page_size) {
			uint64_t pfn = entries[i] & PM_PFN_MASK;

			if (!(entries[i] & PM_PRESENT))
				continue;
			if (types) {
				if (!pfn)
					continue; /* no PFN: cannot tell */
				/* once per folio: what holds for one, holds for all */
				if (pfn < page.head_pfn ||
				    pfn >= page.head_pfn + page.nr_pages)
					dx_ac_page_info(ac, pfn, types, &page);
				if (dx_damos_ops_filter_out(b->d, &page))
					continue;
			}
			*sz_filter_passed += ac->page_size;
			add_page(b, addr, ac->page_size);
		}
	}
}

/*
 * Apply a scheme to the mapped parts of a region (a vaddr region spans the
 * holes between mappings, and advice on a hole fails with ENOMEM; fvaddr's
 * fixed ranges are taken as they are).  Without page filters, advice goes
 * to each mapped range as a whole; with them, or to migrate, page by page.
 */
static uint64_t va_apply_scheme(struct dx_ctx *ctx, struct dx_target *t,
				struct dx_region *r, struct dx_damos *d,
				uint64_t *sz_filter_passed, int *err)
{
	struct va_target *vt = t->priv;
	bool by_page = is_migrate(d->s.action) || dx_damos_has_ops_filters(d);
	struct dx_range whole = { r->start, r->end };
	const struct dx_range *maps = vt->maps ? vt->maps : &whole;
	size_t nr_maps = vt->maps ? vt->nr_maps : 1, i;
	struct va_batch *b = NULL;
	uint64_t applied = 0;

	if (by_page) {
		b = calloc(1, sizeof(*b));
		if (!b) {
			*err = -ENOMEM;
			return 0;
		}
		*b = (struct va_batch){
			.ctx = ctx, .vt = vt, .d = d, .err = err
		};
	}
	for (i = dx_first_range_after(maps, nr_maps, r->start);
	     i < nr_maps && maps[i].start < r->end && !ctx->stop; i++) {
		uint64_t lo = maps[i].start > r->start ? maps[i].start :
							 r->start;
		uint64_t hi = maps[i].end < r->end ? maps[i].end : r->end;

		if (b)
			va_act_on_pages(b, lo, hi, sz_filter_passed);
		else
			applied += advise_range(vt->pidfd, lo, hi,
						va_advice[d->s.action], err);
	}
	if (b) {
		flush_advice(b);
		flush_migrate(b);
		applied = b->applied;
		free(b);
	}
	return applied;
}

/* --------------------------------------------------------------- targets */

static void free_va_target(struct va_target *vt)
{
	if (!vt)
		return;
	if (vt->pidfd >= 0)
		close(vt->pidfd);
	if (vt->pagemap_fd >= 0)
		close(vt->pagemap_fd);
	free(vt->maps);
	free(vt);
}

static void va_target_cleanup(struct dx_ctx *ctx, struct dx_target *t)
{
	free_va_target(t->priv);
	t->priv = NULL;
}

static struct dx_operations va_ops = {
	.name = "vaddr",
	.attach = dx_ac_attach,
	.init = va_init,
	.update = va_update,
	.prepare_access_checks = va_prepare_access_checks,
	.check_accesses = va_check_accesses,
	.target_valid = va_target_valid,
	/* .actions: those of va_advice and migrate, set when registered */
	.filters = DX_FILTER_BIT(DX_FILTER_ANON) |
		   DX_FILTER_BIT(DX_FILTER_ACTIVE) |
		   DX_FILTER_BIT(DX_FILTER_MEMCG) |
		   DX_FILTER_BIT(DX_FILTER_YOUNG) |
		   DX_FILTER_BIT(DX_FILTER_HUGEPAGE_SIZE) |
		   DX_FILTER_BIT(DX_FILTER_UNMAPPED),
	.apply_scheme = va_apply_scheme,
	.get_counters = dx_ac_get_counters,
	.target_cleanup = va_target_cleanup,
	.cleanup = dx_ac_cleanup,
};

/* ops for fixed virtual address ranges: the regions never follow mappings */
static struct dx_operations fva_ops;

int dx_vaddr_register(void)
{
	int err, action;

	for (action = 0; action < DX_ACTION_NR; action++)
		if (va_advice[action] || is_migrate(action))
			va_ops.actions |= DX_ACTION_BIT(action);
	fva_ops = va_ops;
	fva_ops.name = "fvaddr";
	fva_ops.init = NULL;
	fva_ops.update = NULL;
	err = dx_register_ops(&va_ops);
	if (err)
		return err;
	return dx_register_ops(&fva_ops);
}

int dx_vaddr_add_target(struct dx_ctx *ctx, int pid,
			const struct dx_range *ranges, size_t nr_ranges)
{
	struct dx_access_check *ac = ctx->ops_priv;
	/* a table without init (fvaddr) keeps to the ranges it is given */
	bool fixed = !ctx->ops.init;
	struct va_target *vt;
	char path[300];
	int err;

	if (ctx->ops.prepare_access_checks != va_prepare_access_checks ||
	    pid <= 0 || fixed != (nr_ranges > 0))
		return -EINVAL;
	vt = calloc(1, sizeof(*vt));
	if (!vt)
		return -ENOMEM;
	vt->pid = pid;
	vt->pagemap_fd = -1;
	vt->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (vt->pidfd < 0)
		goto fail_errno;
	snprintf(path, sizeof(path), "%s/%d/pagemap", ac->procfs, pid);
	vt->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (vt->pagemap_fd < 0)
		goto fail_errno;
	/* the pagemap is this process's only if it still ran once it was open */
	if (!pidfd_alive(vt->pidfd)) {
		err = -ESRCH;
		goto fail;
	}
	err = dx_ctx_add_target(ctx, pid, vt, fixed ? ranges : NULL, nr_ranges);
	if (err)
		goto fail;
	return 0;
fail_errno:
	err = errno == ENOENT ? -ESRCH : -errno;
fail:
	free_va_target(vt);
	return err;
}
