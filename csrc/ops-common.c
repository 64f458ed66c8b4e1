// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "ops-common.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Addresses from here up are the kernel's (x86-64 and arm64 alike). */
#define KERNEL_HALF_START 0xffff800000000000ULL

static int read_u64(int fd, uint64_t index, uint64_t *val)
{
	ssize_t n = pread(fd, val, sizeof(*val), (off_t)(index * sizeof(*val)));

	if (n == (ssize_t)sizeof(*val))
		return 0;
	return n < 0 ? -errno : -ENODATA;
}

/* ------------------------------------------------------------- mappings */

/* The whole of a file, NUL-terminated; *buf is the caller's to free. */
static int read_whole(const char *path, char **buf)
{
	size_t len = 0, bufsz = 1 << 16;
	char *b = malloc(bufsz + 1);
	int fd, err = 0;
	ssize_t n;

	if (!b)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(b);
		return -errno;
	}
	while ((n = read(fd, b + len, bufsz - len)) > 0) {
		len += (size_t)n;
		if (len == bufsz) {
			char *nb = realloc(b, bufsz * 2 + 1);

			if (!nb) {
				err = -ENOMEM;
				break;
			}
			b = nb;
			bufsz *= 2;
		}
	}
	if (n < 0)
		err = -errno;
	close(fd);
	if (err) {
		free(b);
		return err;
	}
	b[len] = '\0';
	*buf = b;
	return 0;
}

int dx_read_maps(const char *maps_path, struct dx_range **out, size_t *nr_out)
{
	size_t cap = 64, nr = 0;
	struct dx_range *ranges;
	char *buf = NULL, *line, *next;
	int err;

	err = read_whole(maps_path, &buf);
	if (err)
		return err;
	ranges = malloc(cap * sizeof(*ranges));
	if (!ranges) {
		free(buf);
		return -ENOMEM;
	}
	for (line = buf; line && *line; line = next) {
		uint64_t start, end;

		/* one line at a time: sscanf would skip a newline */
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (sscanf(line, "%" SCNx64 "-%" SCNx64, &start, &end) != 2)
			continue;
		/* the vsyscall page is no mapping of the process's own */
		if (start >= KERNEL_HALF_START || start >= end)
			continue;
		if (nr == cap) {
			struct dx_range *n =
				realloc(ranges, cap * 2 * sizeof(*n));

			if (!n) {
				err = -ENOMEM;
				break;
			}
			ranges = n;
			cap *= 2;
		}
		ranges[nr].start = start;
		ranges[nr].end = end;
		nr++;
	}
	free(buf);
	if (err) {
		free(ranges);
		return err;
	}
	*out = ranges;
	*nr_out = nr;
	return 0;
}

/* --------------------------------------------------------- page lookups */

uint64_t dx_pagemap_pfn(struct dx_access_check *ac, int pagemap_fd,
			uint64_t addr)
{
	uint64_t entry;

	ac->stats.nr_pagemap_reads++;
	if (read_u64(pagemap_fd, addr / ac->page_size, &entry))
		return 0;
	if (!(entry & PM_PRESENT))
		return 0; /* not present, or swapped out */
	return entry & PM_PFN_MASK;
}

static uint64_t kpageflags(struct dx_access_check *ac, uint64_t pfn, bool *ok)
{
	uint64_t flags = 0;

	ac->stats.nr_kpageflags_reads++;
	*ok = read_u64(ac->kpageflags_fd, pfn, &flags) == 0;
	return flags;
}

/*
 * Only the head's idle bit works (tails always read as accessed), and the
 * page cannot be tracked when it is no page, the zero page, hugetlb, or not
 * on an LRU list.
 *
 * Folios are naturally aligned: a folio of order k has its head at pfn with
 * the low k bits cleared, and every such candidate of a smaller order lies
 * inside the folio.  So the first candidate, from small orders up, that is
 * not a tail is the head.  A PMD-sized folio would take pmd_order reads that
 * way; two do: let b be the top set bit of pfn's offset in its PMD block; the
 * candidate of order b is a tail only if the folio is bigger than 2^b pages,
 * i.e. (folios being at most PMD-sized) it is the PMD-sized one whose head
 * starts the block.
 */
uint64_t dx_folio_head(struct dx_access_check *ac, uint64_t pfn)
{
	uint64_t flags, off = pfn & ((1ULL << ac->pmd_order) - 1), cand, cflags;
	bool ok;
	int order;

	flags = kpageflags(ac, pfn, &ok);
	if (!ok || flags & (KPF_NOPAGE | KPF_ZERO_PAGE | KPF_HUGE))
		return 0;
	if (!(flags & KPF_COMPOUND_TAIL))
		return flags & KPF_LRU ? pfn : 0;
	if (off) {
		cand = pfn & ~((1ULL << (63 - __builtin_clzll(off))) - 1);
		cflags = cand == pfn ? flags : kpageflags(ac, cand, &ok);
		if (ok && cflags & KPF_COMPOUND_TAIL) {
			cand = pfn - off;
			cflags = kpageflags(ac, cand, &ok);
			if (ok && cflags & KPF_COMPOUND_HEAD)
				return cflags & KPF_LRU ? cand : 0;
			return 0;
		}
	}
	for (order = 1; order <= ac->pmd_order; order++) {
		cand = pfn & ~((1ULL << order) - 1);
		if (cand == pfn)
			continue; /* a tail, as read above */
		cflags = kpageflags(ac, cand, &ok);
		if (!ok)
			return 0;
		if (!(cflags & KPF_COMPOUND_TAIL))
			return cflags & KPF_COMPOUND_HEAD && cflags & KPF_LRU ?
				       cand :
				       0;
	}
	return 0;
}

/* ---------------------------------------------------------- page filters */

static int flush_idle_word(struct dx_access_check *ac, uint64_t word,
			   uint64_t bits);

/* The head of the folio holding pfn, whatever lists it is on; 0 if none. */
static uint64_t any_folio_head(struct dx_access_check *ac, uint64_t pfn,
			       uint64_t flags)
{
	uint64_t cand, cflags;
	bool ok;
	int order;

	if (!(flags & KPF_COMPOUND_TAIL))
		return pfn;
	for (order = 1; order <= ac->pmd_order; order++) {
		cand = pfn & ~((1ULL << order) - 1);
		if (cand == pfn)
			continue;
		cflags = kpageflags(ac, cand, &ok);
		if (!ok)
			return 0;
		if (!(cflags & KPF_COMPOUND_TAIL))
			return cflags & KPF_COMPOUND_HEAD ? cand : 0;
	}
	return 0;
}

/* The pages of the folio headed by head: its tails in one read. */
static uint64_t folio_nr_pages(struct dx_access_check *ac, uint64_t head)
{
	size_t max_tails = ((size_t)1 << ac->pmd_order) - 1, nr_read, i;
	uint64_t *flags = malloc(max_tails * sizeof(*flags));
	ssize_t n;

	if (!flags)
		return 1;
	ac->stats.nr_kpageflags_reads++;
	n = pread(ac->kpageflags_fd, flags, max_tails * sizeof(*flags),
		  (off_t)((head + 1) * sizeof(*flags)));
	nr_read = n > 0 ? (size_t)n / sizeof(*flags) : 0;
	for (i = 0; i < nr_read && flags[i] & KPF_COMPOUND_TAIL; i++)
		;
	free(flags);
	return 1 + i;
}

void dx_ac_page_info(struct dx_access_check *ac, uint64_t pfn, uint32_t types,
		     struct dx_page_info *out)
{
	uint64_t head, bits;
	bool ok;

	memset(out, 0, sizeof(*out));
	out->kpageflags = kpageflags(ac, pfn, &ok);
	out->folio_sz = ac->page_size;
	out->head_pfn = pfn;
	out->nr_pages = 1;
	if (!(types & (DX_FILTER_BIT(DX_FILTER_HUGEPAGE_SIZE) |
		       DX_FILTER_BIT(DX_FILTER_YOUNG))))
		goto memcg;
	head = any_folio_head(ac, pfn, out->kpageflags);
	if (head && out->kpageflags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL)) {
		out->nr_pages = folio_nr_pages(ac, head);
		out->head_pfn = head;
		if (types & DX_FILTER_BIT(DX_FILTER_HUGEPAGE_SIZE))
			out->folio_sz = out->nr_pages * ac->page_size;
	}
	if (types & DX_FILTER_BIT(DX_FILTER_YOUNG) && head) {
		/* a clear idle bit: accessed since it was set (or never set) */
		ac->stats.nr_bitmap_reads++;
		if (read_u64(ac->bitmap_fd, head / 64, &bits))
			bits = ~0ULL;
		out->young = !(bits & (1ULL << (head % 64)));
		if (out->young)
			flush_idle_word(ac, head / 64, 1ULL << (head % 64));
	}
memcg:
	if (types & DX_FILTER_BIT(DX_FILTER_MEMCG) && ac->kpagecgroup_fd >= 0)
		read_u64(ac->kpagecgroup_fd, pfn, &out->memcg_ino);
}

/* -------------------------------------------------------- access checks */

static int flush_idle_word(struct dx_access_check *ac, uint64_t word,
			   uint64_t bits)
{
	ac->stats.nr_bitmap_writes++;
	if (pwrite(ac->bitmap_fd, &bits, sizeof(bits), (off_t)(word * 8)) == 8)
		return 0;
	/* a PFN past the end of memory, or a page gone meanwhile */
	return errno == EINVAL || errno == ENXIO ? 0 : -errno;
}

int dx_ac_prepare_access_checks(struct dx_ctx *ctx, dx_sample_pfn_fn pfn_of)
{
	struct dx_access_check *ac = ctx->ops_priv;
	uint64_t pending_word = UINT64_MAX, pending_bits = 0, last_head = 0;
	struct dx_target *t;
	struct dx_region *r;
	int err;

	dx_for_each_live_target(t, ctx) {
		dx_for_each_region(r, t) {
			uint64_t pfn, head;

			if (!dx_region_checked(r)) {
				r->ops_cookie[0] = 0;
				continue;
			}
			pfn = pfn_of(ac, t, r->sampling_addr);
			head = pfn ? dx_folio_head(ac, pfn) : 0;
			r->ops_cookie[0] = head ? head + 1 : 0;
			r->ops_cookie[1] = pfn;
			if (!head) {
				ac->stats.nr_absent++;
				continue;
			}
			if (head == last_head)
				continue; /* same folio as the last region */
			last_head = head;
			/* one write per word: bits of neighbours go together */
			if (head / 64 != pending_word) {
				if (pending_bits) {
					err = flush_idle_word(ac, pending_word,
							      pending_bits);
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
		return flush_idle_word(ac, pending_word, pending_bits);
	return 0;
}

void dx_ac_forget(struct dx_access_check *ac, struct dx_region *r)
{
	r->ops_cookie[0] = 0;
	ac->stats.nr_changed++;
}

void dx_confirm_pagemap(struct dx_access_check *ac, struct dx_target *t,
			int pagemap_fd)
{
	size_t i = 0, j;

	while (i < t->nr_regions) {
		uint64_t first, last, idx;
		size_t nr_read;
		ssize_t n;

		if (!t->regions[i].ops_cookie[0]) {
			i++;
			continue;
		}
		/* samples ascend with the regions: take those of one block */
		first = last = t->regions[i].sampling_addr / ac->page_size;
		for (j = i + 1; j < t->nr_regions; j++) {
			if (!t->regions[j].ops_cookie[0])
				continue;
			idx = t->regions[j].sampling_addr / ac->page_size;
			if (idx / DX_PAGEMAP_BATCH != first / DX_PAGEMAP_BATCH)
				break;
			last = idx;
		}
		ac->stats.nr_pagemap_reads++;
		n = pread(pagemap_fd, ac->batch, (last - first + 1) * 8,
			  (off_t)(first * 8));
		/* an exited process's pagemap reads nothing: all gone */
		nr_read = n > 0 ? (size_t)n / 8 : 0;
		for (; i < j; i++) {
			struct dx_region *r = &t->regions[i];
			uint64_t entry = 0;

			if (!r->ops_cookie[0])
				continue;
			idx = r->sampling_addr / ac->page_size - first;
			if (idx < nr_read)
				entry = ac->batch[idx];
			if (!(entry & PM_PRESENT) ||
			    (entry & PM_PFN_MASK) != r->ops_cookie[1])
				dx_ac_forget(ac, r);
		}
	}
}

/*
 * Whether the folio headed by head, sampled at pfn, is still one folio and
 * on an LRU list, so that its idle bit tells of accesses.
 */
static bool folio_still_tracked(struct dx_access_check *ac, uint64_t head,
				uint64_t pfn)
{
	bool ok;
	uint64_t flags = kpageflags(ac, head, &ok);

	if (!ok || !(flags & KPF_LRU) ||
	    flags & (KPF_NOPAGE | KPF_COMPOUND_TAIL))
		return false;
	return head == pfn || flags & KPF_COMPOUND_HEAD;
}

int dx_ac_check_accesses(struct dx_ctx *ctx, dx_confirm_fn confirm)
{
	struct dx_access_check *ac = ctx->ops_priv;
	uint64_t cached_word = UINT64_MAX, cached_bits = 0;
	uint32_t max_nr = 0;
	struct dx_target *t;
	struct dx_region *r;

	dx_for_each_live_target(t, ctx) {
		uint64_t last_head = 0;
		bool have_last = false, last_tracked = false, any = false;

		/* the bits: set, still idle; clear, accessed or off the LRU */
		dx_for_each_region(r, t) {
			uint64_t head = r->ops_cookie[0] - 1;

			if (!r->ops_cookie[0])
				continue;
			if (head / 64 == cached_word) {
				ac->stats.nr_shared++;
			} else {
				ac->stats.nr_bitmap_reads++;
				cached_word = head / 64;
				if (read_u64(ac->bitmap_fd, cached_word,
					     &cached_bits))
					cached_bits =
						~0ULL; /* unreadable: idle */
			}
			if (cached_bits & (1ULL << (head % 64)))
				r->ops_cookie[0] = 0;
			else
				any = true;
		}
		/* only then whether the pages are those that were marked */
		if (any && confirm)
			confirm(ctx, t);
		dx_for_each_region(r, t) {
			uint64_t head = r->ops_cookie[0] - 1;

			if (!r->ops_cookie[0])
				continue;
			if (!have_last || head != last_head) {
				have_last = true;
				last_head = head;
				last_tracked = folio_still_tracked(
					ac, head, r->ops_cookie[1]);
			}
			if (!last_tracked)
				dx_ac_forget(ac, r);
		}
		dx_for_each_region(r, t) {
			dx_region_account(ctx, r, r->ops_cookie[0] != 0);
			if (r->nr_accesses > max_nr)
				max_nr = r->nr_accesses;
		}
	}
	return (int)max_nr;
}

/* ---------------------------------------------------------------- setup */

int dx_ac_attach(struct dx_ctx *ctx, const struct dx_ops_env *env)
{
	struct dx_access_check *ac;
	uint64_t page_size;
	char path[300];
	int err;

	if (!env || strlen(env->procfs) >= sizeof(ac->procfs))
		return -EINVAL;
	page_size = env->page_size ? env->page_size :
				     (uint64_t)sysconf(_SC_PAGESIZE);
	if (page_size < 1024 || page_size & (page_size - 1) ||
	    ctx->attrs.min_region_sz < page_size)
		return -EINVAL;
	ac = calloc(1, sizeof(*ac));
	if (!ac)
		return -ENOMEM;
	ac->page_size = page_size;
	ac->pmd_order = __builtin_ctzll(page_size) - 3;
	ac->kpageflags_fd = -1;
	ac->kpagecgroup_fd = -1;
	snprintf(ac->procfs, sizeof(ac->procfs), "%s", env->procfs);
	snprintf(path, sizeof(path), "%s/kernel/mm/page_idle/bitmap",
		 env->sysfs);
	ac->bitmap_fd = open(path, O_RDWR | O_CLOEXEC);
	if (ac->bitmap_fd < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/kpageflags", env->procfs);
	ac->kpageflags_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ac->kpageflags_fd < 0)
		goto fail;
	/* only the memcg filter needs it: without it, there is no such filter */
	snprintf(path, sizeof(path), "%s/kpagecgroup", env->procfs);
	ac->kpagecgroup_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ac->kpagecgroup_fd < 0)
		ctx->ops.filters &= ~DX_FILTER_BIT(DX_FILTER_MEMCG);
	ctx->ops_priv = ac;
	return 0;
fail:
	err = -errno;
	if (ac->bitmap_fd >= 0)
		close(ac->bitmap_fd);
	free(ac);
	return err;
}

size_t dx_ac_get_counters(const struct dx_ctx *ctx, struct dx_counter *out,
			  size_t cap)
{
	const struct dx_access_check_stats *s =
		&((const struct dx_access_check *)ctx->ops_priv)->stats;
	const struct dx_counter all[] = {
		{ "nr_pagemap_reads", s->nr_pagemap_reads },
		{ "nr_kpageflags_reads", s->nr_kpageflags_reads },
		{ "nr_bitmap_writes", s->nr_bitmap_writes },
		{ "nr_bitmap_reads", s->nr_bitmap_reads },
		{ "nr_absent", s->nr_absent },
		{ "nr_unmapped", s->nr_unmapped },
		{ "nr_shared", s->nr_shared },
		{ "nr_maps_reads", s->nr_maps_reads },
		{ "nr_changed", s->nr_changed },
	};
	size_t i, nr = sizeof(all) / sizeof(all[0]);

	for (i = 0; i < nr && i < cap; i++)
		out[i] = all[i];
	return nr;
}

void dx_ac_cleanup(struct dx_ctx *ctx)
{
	struct dx_access_check *ac = ctx->ops_priv;

	if (!ac)
		return;
	close(ac->bitmap_fd);
	close(ac->kpageflags_fd);
	if (ac->kpagecgroup_fd >= 0)
		close(ac->kpagecgroup_fd);
	free(ac);
	ctx->ops_priv = NULL;
}
