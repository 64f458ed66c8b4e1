// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "bench_fullscan.h"
#include "clock.h"
#include "ops-common.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096ULL
#define PM_BATCH 512 /* pagemap entries per pread */
#define BM_BLOCK 512 /* bitmap words per 4 KiB block */

struct fs_page {
	uint64_t vaddr;
	uint64_t pfn;
};

struct fs_state {
	struct fs_page *pages;
	size_t nr_pages, cap_pages;
	uint64_t *mark, *seen; /* bitmap words: marked by us, read back */
	size_t nr_words; /* length of mark and seen */
	struct dx_range *vmas;
	size_t nr_vmas;
};

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

/* The process's mappings; -ESRCH when it is gone. */
static int read_vmas(struct fs_state *st, const char *path)
{
	int err;

	free(st->vmas);
	st->vmas = NULL;
	st->nr_vmas = 0;
	err = dx_read_maps(path, &st->vmas, &st->nr_vmas);
	if (err == -ENOENT || (!err && !st->nr_vmas))
		return -ESRCH; /* gone, or a zombie: no mappings */
	return err;
}

/* Every present page with a PFN, in address order. */
static int read_pages(struct fs_state *st, int pagemap, uint64_t *nr_reads)
{
	uint64_t buf[PM_BATCH];
	size_t v;

	st->nr_pages = 0;
	for (v = 0; v < st->nr_vmas; v++) {
		uint64_t page = st->vmas[v].start / PAGE,
			 end = st->vmas[v].end / PAGE;

		while (page < end) {
			size_t n = end - page < PM_BATCH ? end - page :
							   PM_BATCH,
			       i;
			ssize_t got =
				pread(pagemap, buf, n * 8, (off_t)(page * 8));

			(*nr_reads)++;
			if (got < 0)
				return errno == ESRCH ? -ESRCH : -errno;
			if (got == 0)
				break;
			n = (size_t)got / 8;
			for (i = 0; i < n; i++) {
				uint64_t pfn = buf[i] & PM_PFN_MASK;
				int err;

				if (!(buf[i] & PM_PRESENT) || !pfn)
					continue;
				err = grow((void **)&st->pages, &st->cap_pages,
					   st->nr_pages + 1,
					   sizeof(*st->pages));
				if (err)
					return err;
				st->pages[st->nr_pages++] =
					(struct fs_page){ (page + i) * PAGE,
							  pfn };
			}
			page += n;
		}
	}
	return 0;
}

/*
 * Read back the idle bits of the pages found, then mark them all idle: one
 * pread and one pwrite per run of words inside each 4 KiB bitmap block.
 */
static int scan_bitmap(struct fs_state *st, int bitmap, uint64_t *nr_reads,
		       uint64_t *nr_writes)
{
	size_t i, max_word = 0, blk;

	for (i = 0; i < st->nr_pages; i++)
		if (st->pages[i].pfn / 64 > max_word)
			max_word = st->pages[i].pfn / 64;
	if (max_word + 1 > st->nr_words) {
		size_t n = max_word + 1 + 1024;
		uint64_t *m = realloc(st->mark, n * 8), *s;

		if (!m)
			return -ENOMEM;
		st->mark = m;
		s = realloc(st->seen, n * 8);
		if (!s)
			return -ENOMEM;
		st->seen = s;
		st->nr_words = n;
	}
	memset(st->mark, 0, st->nr_words * 8);
	for (i = 0; i < st->nr_pages; i++)
		st->mark[st->pages[i].pfn / 64] |= 1ULL
						   << (st->pages[i].pfn % 64);
	for (blk = 0; blk * BM_BLOCK < st->nr_words; blk++) {
		size_t lo = blk * BM_BLOCK, hi = lo + BM_BLOCK, a, b;
		ssize_t want, got;

		if (hi > st->nr_words)
			hi = st->nr_words;
		for (a = lo; a < hi && !st->mark[a]; a++)
			;
		if (a == hi)
			continue;
		for (b = hi; !st->mark[b - 1]; b--)
			;
		want = (ssize_t)((b - a) * 8);
		(*nr_reads)++;
		got = pread(bitmap, st->seen + a, (size_t)want, (off_t)(a * 8));
		if (got != want)
			return got < 0 ? -errno : -EIO;
		(*nr_writes)++;
		got = pwrite(bitmap, st->mark + a, (size_t)want,
			     (off_t)(a * 8));
		if (got != want)
			return got < 0 ? -errno : -EIO;
	}
	return 0;
}

static int stop_requested(int stop_fd, uint64_t wait_ns)
{
	struct pollfd pfd = { .fd = stop_fd, .events = POLLIN };
	struct timespec ts = dx_ns_to_timespec(wait_ns);

	if (stop_fd < 0) {
		if (wait_ns)
			nanosleep(&ts, NULL);
		return 0;
	}
	if (ppoll(&pfd, 1, &ts, NULL) > 0)
		return 1;
	return 0;
}

int dx_bench_fullscan(int pid, const char *procfs, const char *sysfs,
		      uint64_t interval_us, uint32_t max_intervals, int stop_fd,
		      const struct dx_range *probes, size_t nr_probes,
		      struct dx_fullscan_interval *iv, uint64_t *probe_accessed,
		      struct dx_fullscan_result *out)
{
	struct fs_state st = { 0 };
	char maps[300], path[300];
	int pagemap = -1, bitmap = -1, err = 0;
	uint64_t t_start, deadline, interval_ns = interval_us * 1000ULL;

	*out = (struct dx_fullscan_result){ 0 };
	if (!interval_us || !max_intervals)
		return -EINVAL;
	snprintf(maps, sizeof(maps), "%s/%d/maps", procfs, pid);
	snprintf(path, sizeof(path), "%s/%d/pagemap", procfs, pid);
	pagemap = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/kernel/mm/page_idle/bitmap", sysfs);
	bitmap = open(path, O_RDWR | O_CLOEXEC);
	if (pagemap < 0 || bitmap < 0) {
		err = -errno;
		goto out;
	}
	t_start = dx_clock_ns(CLOCK_MONOTONIC);
	deadline = t_start;
	while (out->nr_intervals < max_intervals) {
		struct dx_fullscan_interval *cur = &iv[out->nr_intervals];
		uint64_t *pa =
			probe_accessed + (size_t)out->nr_intervals * nr_probes;
		uint64_t c0 = dx_clock_ns(CLOCK_THREAD_CPUTIME_ID), now;
		size_t i, k = 0;

		err = read_vmas(&st, maps);
		if (!err)
			err = read_pages(&st, pagemap, &out->nr_pagemap_reads);
		if (!err)
			err = scan_bitmap(&st, bitmap, &out->nr_bitmap_reads,
					  &out->nr_bitmap_writes);
		if (err == -ESRCH) {
			err = 0; /* the process is gone */
			break;
		}
		if (err)
			break;
		memset(pa, 0, nr_probes * sizeof(*pa));
		cur->nr_present = st.nr_pages;
		cur->nr_accessed = 0;
		for (i = 0; i < st.nr_pages; i++) {
			uint64_t pfn = st.pages[i].pfn, va = st.pages[i].vaddr;

			if (st.seen[pfn / 64] >> (pfn % 64) & 1)
				continue; /* still idle */
			cur->nr_accessed++;
			while (k < nr_probes && probes[k].end <= va)
				k++;
			if (k < nr_probes && probes[k].start <= va)
				pa[k]++;
		}
		now = dx_clock_ns(CLOCK_MONOTONIC);
		cur->t_ns = now;
		cur->cpu_ns = dx_clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
		out->cpu_ns += cur->cpu_ns;
		out->nr_intervals++;
		deadline += interval_ns;
		if (deadline < now)
			deadline = now; /* late: the next scan starts at once */
		if (stop_requested(stop_fd, deadline - now))
			break;
	}
	out->wall_ns = dx_clock_ns(CLOCK_MONOTONIC) - t_start;
out:
	if (pagemap >= 0)
		close(pagemap);
	if (bitmap >= 0)
		close(bitmap);
	free(st.pages);
	free(st.mark);
	free(st.seen);
	free(st.vmas);
	return err;
}
