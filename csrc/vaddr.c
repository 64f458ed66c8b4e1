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

/*
 * Advise the mapped parts of a region: a vaddr region spans the holes
 * between mappings, and advice on a hole fails with ENOMEM (fvaddr's fixed
 * ranges are advised as they are).
 */
static uint64_t va_apply_scheme(struct dx_ctx *ctx, struct dx_target *t,
				struct dx_region *r, int action, int *err)
{
	struct va_target *vt = t->priv;
	int advice = va_advice[action];
	uint64_t applied = 0;
	size_t i;

	if (!vt->maps)
		return advise_range(vt->pidfd, r->start, r->end, advice, err);
	for (i = dx_first_range_after(vt->maps, vt->nr_maps, r->start);
	     i < vt->nr_maps && vt->maps[i].start < r->end; i++) {
		uint64_t lo = vt->maps[i].start > r->start ? vt->maps[i].start :
							     r->start;
		uint64_t hi = vt->maps[i].end < r->end ? vt->maps[i].end :
							 r->end;

		applied += advise_range(vt->pidfd, lo, hi, advice, err);
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
	/* .actions: those of va_advice, set when registered */
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
		if (va_advice[action])
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
