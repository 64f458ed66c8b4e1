// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "ops_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_PRESENT (1ULL << 63)

#define KPF_LRU (1ULL << 5)
#define KPF_COMPOUND_HEAD (1ULL << 15)
#define KPF_COMPOUND_TAIL (1ULL << 16)
#define KPF_HUGE (1ULL << 17)
#define KPF_NOPAGE (1ULL << 20)
#define KPF_ZERO_PAGE (1ULL << 24)

#define PMD_ORDER 9	/* pages per PMD-mapped huge page: 1 << 9 */

struct proc_ops {
	int mode;
	uint64_t page_size;
	int bitmap_fd;
	int kpageflags_fd;
	char procfs[256];
	struct dx_proc_stats stats;
};

struct proc_target {
	int pid;
	int pidfd;
	int pagemap_fd;
	size_t nr_fixed;
	struct dx_range *fixed;	/* fvaddr and paddr ranges */
	size_t nr_maps;
	struct dx_range *maps;	/* vaddr: the mappings at the last update */
};

static int read_u64(int fd, uint64_t index, uint64_t *val)
{
	ssize_t n = pread(fd, val, sizeof(*val), (off_t)(index * sizeof(*val)));

	if (n == (ssize_t)sizeof(*val))
		return 0;
	return n < 0 ? -errno : -ENODATA;
}

/* ------------------------------------------------------------- mappings */

int dx_proc_read_maps(const char *maps_path, struct dx_range **out,
		      size_t *nr_out)
{
	size_t cap = 64, nr = 0, len = 0, bufsz = 1 << 16;
	struct dx_range *ranges;
	char *buf, *line;
	int fd, err = 0;
	ssize_t n;

	fd = open(maps_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(bufsz + 1);
	ranges = malloc(cap * sizeof(*ranges));
	if (!buf || !ranges) {
		err = -ENOMEM;
		goto out;
	}
	while ((n = read(fd, buf + len, bufsz - len)) > 0) {
		len += (size_t)n;
		if (len == bufsz) {
			char *nb = realloc(buf, bufsz * 2 + 1);

			if (!nb) {
				err = -ENOMEM;
				goto out;
			}
			buf = nb;
			bufsz *= 2;
		}
	}
	if (n < 0) {
		err = -errno;
		goto out;
	}
	buf[len] = '\0';
	for (line = buf; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		uint64_t start, end;

		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &start, &end) != 2)
			continue;
		/* the vsyscall page is no mapping of the process's own */
		if (start >= 0xffff800000000000ULL || start >= end)
			continue;
		if (nr == cap) {
			struct dx_range *nrg = realloc(ranges, cap * 2 * sizeof(*nrg));

			if (!nrg) {
				err = -ENOMEM;
				goto out;
			}
			ranges = nrg;
			cap *= 2;
		}
		ranges[nr].start = start;
		ranges[nr].end = end;
		nr++;
	}
out:
	close(fd);
	free(buf);
	if (err) {
		free(ranges);
		return err;
	}
	*out = ranges;
	*nr_out = nr;
	return 0;
}

/* The ranges to monitor in a process: its three regions, or, for a process
 * with fewer than two gaps between mappings, the span of its mappings. */
static int pid_ranges(struct dx_ctx *ctx, struct proc_target *pt,
		      struct dx_range out[3], size_t *nr_out)
{
	struct proc_ops *po = ctx->ops_priv;
	struct dx_range *maps = NULL;
	char path[300];
	size_t nr_maps = 0;
	int err;

	snprintf(path, sizeof(path), "%s/%d/maps", po->procfs, pt->pid);
	err = dx_proc_read_maps(path, &maps, &nr_maps);
	po->stats.nr_maps_reads++;
	if (err)
		return err;
	if (!nr_maps) {
		free(maps);
		return -ESRCH;	/* no mm: a kernel thread or a zombie */
	}
	err = dx_three_regions(maps, nr_maps, ctx->attrs.min_region_sz, out);
	*nr_out = 3;
	if (err) {
		out[0].start = maps[0].start;
		out[0].end = maps[nr_maps - 1].end;
		*nr_out = 1;
	}
	/* kept to skip samples that fall between mappings */
	free(pt->maps);
	pt->maps = maps;
	pt->nr_maps = nr_maps;
	return 0;
}

static int proc_init(struct dx_ctx *ctx)
{
	struct proc_ops *po = ctx->ops_priv;
	size_t i;
	int err;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];
		struct proc_target *pt = t->priv;
		struct dx_range three[3];
		size_t nr = 0;

		if (t->dead)
			continue;
		if (po->mode == DX_PROC_VADDR) {
			err = pid_ranges(ctx, pt, three, &nr);
			if (err == -ENOENT || err == -ESRCH) {
				dx_target_kill(ctx, t);
				continue;
			}
			if (!err)
				err = dx_init_regions(ctx, t, three, nr);
		} else {
			err = dx_init_regions(ctx, t, pt->fixed, pt->nr_fixed);
		}
		if (err)
			return err;
	}
	return 0;
}

static int proc_update(struct dx_ctx *ctx)
{
	struct proc_ops *po = ctx->ops_priv;
	size_t i;

	if (po->mode != DX_PROC_VADDR)
		return 0;
	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];
		struct dx_range three[3];
		size_t nr = 0;
		int err;

		if (t->dead)
			continue;
		/* a process that exits now is reaped before the next sample */
		if (pid_ranges(ctx, t->priv, three, &nr))
			continue;
		err = dx_set_regions(t, three, nr, ctx->attrs.min_region_sz);
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

/* -------------------------------------------------------- access checks */

static uint64_t kpageflags(struct proc_ops *po, uint64_t pfn, bool *ok)
{
	uint64_t flags = 0;

	po->stats.nr_kpageflags_reads++;
	*ok = read_u64(po->kpageflags_fd, pfn, &flags) == 0;
	return flags;
}

/*
 * The PFN whose idle bit stands for the page at pfn: the head of its folio
 * (only the head's bit works; tails always read as accessed).  0 when the
 * page cannot be tracked (no page, the zero page, hugetlb, not on an LRU
 * list).
 *
 * Folios are naturally aligned: a folio of order k has its head at pfn with
 * the low k bits cleared, and every such candidate of a smaller order lies
 * inside the folio.  So the first candidate, from small orders up, that is
 * not a tail is the head.  A PMD-sized folio would take nine reads that way;
 * two do: let b be the top set bit of pfn's offset in its PMD block; the
 * candidate of order b is a tail only if the folio is bigger than 2^b pages,
 * i.e. (folios being at most PMD-sized) it is the PMD-sized one whose head
 * starts the block.
 */
static uint64_t head_pfn(struct proc_ops *po, uint64_t pfn)
{
	uint64_t flags, off = pfn & ((1ULL << PMD_ORDER) - 1), cand, cflags;
	bool ok;
	int order;

	flags = kpageflags(po, pfn, &ok);
	if (!ok || flags & (KPF_NOPAGE | KPF_ZERO_PAGE | KPF_HUGE))
		return 0;
	if (!(flags & KPF_COMPOUND_TAIL))
		return flags & KPF_LRU ? pfn : 0;
	if (off) {
		cand = pfn & ~((1ULL << (63 - __builtin_clzll(off))) - 1);
		cflags = cand == pfn ? flags : kpageflags(po, cand, &ok);
		if (ok && cflags & KPF_COMPOUND_TAIL) {
			cand = pfn - off;
			cflags = kpageflags(po, cand, &ok);
			if (ok && cflags & KPF_COMPOUND_HEAD)
				return cflags & KPF_LRU ? cand : 0;
			return 0;
		}
	}
	for (order = 1; order <= PMD_ORDER; order++) {
		cand = pfn & ~((1ULL << order) - 1);
		if (cand == pfn)
			continue;	/* a tail, as read above */
		cflags = kpageflags(po, cand, &ok);
		if (!ok)
			return 0;
		if (!(cflags & KPF_COMPOUND_TAIL))
			return cflags & KPF_COMPOUND_HEAD && cflags & KPF_LRU ? cand : 0;
	}
	return 0;
}

/* The PFN backing a region's sampling address, or 0 when there is none. */
static uint64_t sample_pfn(struct proc_ops *po, struct proc_target *pt,
			   uint64_t addr)
{
	uint64_t entry;

	if (po->mode == DX_PROC_PADDR)
		return addr / po->page_size;
	/*
	 * The three regions of a process span the holes between its mappings;
	 * a sample there needs no pagemap read.  A mapping created since the
	 * last update is seen from the next one on (ops_update_us).
	 */
	if (pt->maps && dx_find_range(pt->maps, pt->nr_maps, addr) < 0) {
		po->stats.nr_unmapped++;
		return 0;
	}
	po->stats.nr_pagemap_reads++;
	if (read_u64(pt->pagemap_fd, addr / po->page_size, &entry))
		return 0;
	if (!(entry & PM_PRESENT))
		return 0;	/* not present, or swapped out */
	return entry & PM_PFN_MASK;
}

static int flush_idle_word(struct proc_ops *po, uint64_t word, uint64_t bits)
{
	po->stats.nr_bitmap_writes++;
	if (pwrite(po->bitmap_fd, &bits, sizeof(bits), (off_t)(word * 8)) == 8)
		return 0;
	/* a PFN past the end of memory, or a page gone meanwhile */
	return errno == EINVAL || errno == ENXIO ? 0 : -errno;
}

static int proc_prepare_access_checks(struct dx_ctx *ctx)
{
	struct proc_ops *po = ctx->ops_priv;
	uint64_t pending_word = UINT64_MAX, pending_bits = 0, last_head = 0;
	size_t i, j;
	int err;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		for (j = 0; j < t->nr_regions; j++) {
			struct dx_region *r = &t->regions[j];
			uint64_t pfn, head;

			pfn = sample_pfn(po, t->priv, r->sampling_addr);
			head = pfn ? head_pfn(po, pfn) : 0;
			r->ops_cookie = head ? head + 1 : 0;
			if (!head) {
				po->stats.nr_absent++;
				continue;
			}
			if (head == last_head)
				continue;	/* same folio as the last region */
			last_head = head;
			/* one write per word: bits of neighbours go together */
			if (head / 64 != pending_word) {
				if (pending_bits) {
					err = flush_idle_word(po, pending_word, pending_bits);
					if (err)
						return err;
				}
				pending_word = head / 64;
				pending_bits = 0;
			}
			pending_bits |= 1ULL << (head % 64);
		}
	}
	if (pending_bits)
		return flush_idle_word(po, pending_word, pending_bits);
	return 0;
}

static int proc_check_accesses(struct dx_ctx *ctx)
{
	struct proc_ops *po = ctx->ops_priv;
	uint64_t cached_word = UINT64_MAX, cached_bits = 0;
	uint32_t max_nr = 0;
	size_t i, j;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		for (j = 0; j < t->nr_regions; j++) {
			struct dx_region *r = &t->regions[j];
			bool accessed = false;

			if (r->ops_cookie) {
				uint64_t head = r->ops_cookie - 1;

				if (head / 64 == cached_word) {
					po->stats.nr_shared++;
				} else {
					po->stats.nr_bitmap_reads++;
					cached_word = head / 64;
					if (read_u64(po->bitmap_fd, cached_word, &cached_bits))
						cached_bits = ~0ULL; /* unreadable: idle */
				}
				accessed = !(cached_bits & (1ULL << (head % 64)));
			}
			dx_region_account(ctx, r, accessed);
			if (r->nr_accesses > max_nr)
				max_nr = r->nr_accesses;
		}
	}
	return (int)max_nr;
}

/* A process is gone when its pidfd turns readable. */
static bool pidfd_alive(int pidfd)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };

	return poll(&pfd, 1, 0) == 0;
}

static bool proc_target_valid(struct dx_ctx *ctx, struct dx_target *t)
{
	struct proc_target *pt = t->priv;

	if (!pt || pt->pidfd < 0)
		return true;	/* physical memory does not go away */
	return pidfd_alive(pt->pidfd);
}

/* Advise [start, end) of a process; the bytes advised, or -errno. */
static int64_t advise_range(int pidfd, uint64_t start, uint64_t end, int advice)
{
	int64_t done = 0;

	while (start < end) {
		struct iovec iov = { (void *)(uintptr_t)start, end - start };
		/* one call advises at most about 2 GiB: go on where it stopped */
		ssize_t n = syscall(SYS_process_madvise, pidfd, &iov, 1, advice, 0);

		if (n <= 0)
			return done ? done : (n < 0 ? -errno : -EIO);
		done += n;
		start += (uint64_t)n;
	}
	return done;
}

/*
 * Advise the mapped parts of a region: a vaddr region spans the holes
 * between mappings, and advice on a hole fails with ENOMEM.
 */
static int64_t proc_apply_scheme(struct dx_ctx *ctx, struct dx_target *t,
				 struct dx_region *r, int action)
{
	struct proc_target *pt = t->priv;
	int64_t n, applied = 0, err = 0;
	int advice;
	size_t i;

	if (!pt || pt->pidfd < 0)
		return -EOPNOTSUPP;
	switch (action) {
	case DX_ACTION_WILLNEED:
		advice = MADV_WILLNEED;
		break;
	case DX_ACTION_COLD:
		advice = MADV_COLD;
		break;
	case DX_ACTION_PAGEOUT:
		advice = MADV_PAGEOUT;
		break;
	case DX_ACTION_HUGEPAGE:
		advice = MADV_COLLAPSE;
		break;
	default:
		return -EOPNOTSUPP;
	}
	if (!pt->maps)
		return advise_range(pt->pidfd, r->start, r->end, advice);
	for (i = 0; i < pt->nr_maps && pt->maps[i].start < r->end; i++) {
		uint64_t lo = pt->maps[i].start > r->start ? pt->maps[i].start : r->start;
		uint64_t hi = pt->maps[i].end < r->end ? pt->maps[i].end : r->end;

		if (lo >= hi)
			continue;
		n = advise_range(pt->pidfd, lo, hi, advice);
		if (n < 0)
			err = n;
		else
			applied += n;
	}
	return applied ? applied : err;
}

static void free_proc_target(struct proc_target *pt)
{
	if (!pt)
		return;
	if (pt->pidfd >= 0)
		close(pt->pidfd);
	if (pt->pagemap_fd >= 0)
		close(pt->pagemap_fd);
	free(pt->fixed);
	free(pt->maps);
	free(pt);
}

static void proc_target_cleanup(struct dx_ctx *ctx, struct dx_target *t)
{
	free_proc_target(t->priv);
	t->priv = NULL;
}

static void proc_cleanup(struct dx_ctx *ctx)
{
	struct proc_ops *po = ctx->ops_priv;

	if (!po)
		return;
	if (po->bitmap_fd >= 0)
		close(po->bitmap_fd);
	if (po->kpageflags_fd >= 0)
		close(po->kpageflags_fd);
	free(po);
	ctx->ops_priv = NULL;
}

/* --------------------------------------------------------------- set up */

int dx_proc_attach(struct dx_ctx *ctx, int mode, const char *procfs,
		   const char *sysfs)
{
	struct dx_operations ops = {
		.name = mode == DX_PROC_PADDR ? "paddr" :
			mode == DX_PROC_FVADDR ? "fvaddr" : "vaddr",
		.init = proc_init,
		.update = proc_update,
		.prepare_access_checks = proc_prepare_access_checks,
		.check_accesses = proc_check_accesses,
		.target_valid = proc_target_valid,
		.apply_scheme = proc_apply_scheme,
		.target_cleanup = proc_target_cleanup,
		.cleanup = proc_cleanup,
	};
	struct proc_ops *po;
	char path[300];
	int err;

	if (mode < DX_PROC_VADDR || mode > DX_PROC_PADDR ||
	    strlen(procfs) >= sizeof(po->procfs))
		return -EINVAL;
	po = calloc(1, sizeof(*po));
	if (!po)
		return -ENOMEM;
	po->mode = mode;
	po->page_size = ctx->attrs.min_region_sz;
	po->kpageflags_fd = -1;
	snprintf(po->procfs, sizeof(po->procfs), "%s", procfs);
	snprintf(path, sizeof(path), "%s/kernel/mm/page_idle/bitmap", sysfs);
	po->bitmap_fd = open(path, O_RDWR | O_CLOEXEC);
	if (po->bitmap_fd < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/kpageflags", procfs);
	po->kpageflags_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (po->kpageflags_fd < 0)
		goto fail;
	dx_ctx_set_ops(ctx, &ops, po);
	return 0;
fail:
	err = -errno;
	if (po->bitmap_fd >= 0)
		close(po->bitmap_fd);
	free(po);
	return err;
}

static struct proc_target *new_proc_target(const struct dx_range *ranges,
					   size_t nr_ranges)
{
	struct proc_target *pt = calloc(1, sizeof(*pt));

	if (!pt)
		return NULL;
	pt->pidfd = pt->pagemap_fd = -1;
	if (nr_ranges) {
		pt->fixed = malloc(nr_ranges * sizeof(*ranges));
		if (!pt->fixed) {
			free(pt);
			return NULL;
		}
		memcpy(pt->fixed, ranges, nr_ranges * sizeof(*ranges));
		pt->nr_fixed = nr_ranges;
	}
	return pt;
}

int dx_proc_add_pid(struct dx_ctx *ctx, int pid, const struct dx_range *ranges,
		    size_t nr_ranges)
{
	struct proc_ops *po = ctx->ops_priv;
	struct proc_target *pt;
	char path[300];
	int err;

	if (!po || po->mode == DX_PROC_PADDR || pid <= 0 ||
	    (po->mode == DX_PROC_FVADDR) != (nr_ranges > 0))
		return -EINVAL;
	pt = new_proc_target(ranges, nr_ranges);
	if (!pt)
		return -ENOMEM;
	pt->pid = pid;
	pt->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pt->pidfd < 0)
		goto fail_errno;
	snprintf(path, sizeof(path), "%s/%d/pagemap", po->procfs, pid);
	pt->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pt->pagemap_fd < 0)
		goto fail_errno;
	/* the pagemap is this process's only if it still ran once it was open */
	if (!pidfd_alive(pt->pidfd)) {
		err = -ESRCH;
		goto fail;
	}
	err = dx_ctx_add_target(ctx, pid, pt);
	if (err)
		goto fail;
	return 0;
fail_errno:
	err = errno == ENOENT ? -ESRCH : -errno;
fail:
	free_proc_target(pt);
	return err;
}

int dx_proc_add_ranges(struct dx_ctx *ctx, int64_t id,
		       const struct dx_range *ranges, size_t nr_ranges)
{
	struct proc_ops *po = ctx->ops_priv;
	struct proc_target *pt;
	int err;

	if (!po || po->mode != DX_PROC_PADDR || !nr_ranges)
		return -EINVAL;
	pt = new_proc_target(ranges, nr_ranges);
	if (!pt)
		return -ENOMEM;
	err = dx_ctx_add_target(ctx, id, pt);
	if (err)
		free_proc_target(pt);
	return err;
}

const struct dx_proc_stats *dx_proc_get_stats(const struct dx_ctx *ctx)
{
	const struct proc_ops *po = ctx->ops_priv;

	return po ? &po->stats : NULL;
}
