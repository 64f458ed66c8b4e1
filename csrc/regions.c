// SPDX-License-Identifier: MIT
/*
 * damonx core: the rules that adapt the regions (split, merge, and the
 * fitting of regions to a target's mappings).
 *
 * The rules follow the Linux kernel's mm/damon/core.c (6.12) so that damonx
 * and the kernel's DAMON can be compared like for like.  Regions of a target
 * live in one sorted array; split and merge rebuild or compact it in one
 * pass, so an aggregation costs O(nr_regions).
 */
#include "damonx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DX_ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define DX_ALIGN_UP(x, a) DX_ALIGN_DOWN((x) + (a) - 1, (a))

static inline uint64_t sz_region(const struct dx_region *r)
{
	return r->end - r->start;
}

static inline uint32_t abs_diff(uint32_t a, uint32_t b)
{
	return a > b ? a - b : b - a;
}

/* --------------------------------------------------------------- regions */

static int reserve_regions(struct dx_target *t, size_t nr)
{
	struct dx_region *n;
	size_t cap;

	if (nr <= t->cap_regions)
		return 0;
	cap = t->cap_regions ? t->cap_regions : 16;
	while (cap < nr)
		cap *= 2;
	n = realloc(t->regions, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	t->regions = n;
	t->cap_regions = cap;
	return 0;
}

static int insert_region(struct dx_target *t, size_t idx,
			 const struct dx_region *r)
{
	int err = reserve_regions(t, t->nr_regions + 1);

	if (err)
		return err;
	memmove(&t->regions[idx + 1], &t->regions[idx],
		(t->nr_regions - idx) * sizeof(*r));
	t->regions[idx] = *r;
	t->nr_regions++;
	return 0;
}

static struct dx_region new_region(uint64_t start, uint64_t end)
{
	struct dx_region r = { .start = start, .end = end };

	return r;
}

int dx_target_add_region(struct dx_target *t, uint64_t start, uint64_t end)
{
	struct dx_region r = new_region(start, end);

	if (start >= end)
		return -EINVAL;
	if (t->nr_regions && t->regions[t->nr_regions - 1].end > start)
		return -EINVAL;
	return insert_region(t, t->nr_regions, &r);
}

void dx_target_clear_regions(struct dx_target *t)
{
	free(t->regions);
	t->regions = NULL;
	t->nr_regions = 0;
	t->cap_regions = 0;
}

/* Split regions[idx] so that its left part is sz_left bytes long. */
int dx_split_region_at(struct dx_target *t, size_t idx, uint64_t sz_left)
{
	struct dx_region right;

	if (idx >= t->nr_regions || !sz_left ||
	    sz_left >= sz_region(&t->regions[idx]))
		return -EINVAL;
	right = t->regions[idx];
	right.start = t->regions[idx].start + sz_left;
	t->regions[idx].end = right.start;
	return insert_region(t, idx + 1, &right);
}

int dx_split_evenly(struct dx_target *t, size_t idx, size_t nr_pieces,
		    uint64_t min_region_sz)
{
	uint64_t sz_piece, orig_end, start;
	size_t i;
	int err;

	if (idx >= t->nr_regions || !nr_pieces)
		return -EINVAL;
	sz_piece = DX_ALIGN_DOWN(sz_region(&t->regions[idx]) / nr_pieces,
				 min_region_sz);
	if (!sz_piece)
		return -EINVAL;
	err = reserve_regions(t, t->nr_regions + nr_pieces - 1);
	if (err)
		return err;
	orig_end = t->regions[idx].end;
	t->regions[idx].end = t->regions[idx].start + sz_piece;
	start = t->regions[idx].end;
	for (i = 1; i < nr_pieces; i++, start += sz_piece) {
		struct dx_region n = new_region(start, start + sz_piece);

		insert_region(t, idx + i, &n);
	}
	/* the last piece takes what the rounding left */
	t->regions[idx + nr_pieces - 1].end = orig_end;
	return 0;
}

void dx_target_replace_regions(struct dx_target *t, struct dx_region *regions,
			       size_t nr, size_t cap)
{
	free(t->regions);
	t->regions = regions;
	t->nr_regions = nr;
	t->cap_regions = cap;
}

/* ----------------------------------------------------------------- merge */

/* The size-weighted mean of a and b, rounded down. */
static uint32_t mean_of(uint32_t a, uint64_t sz_a, uint32_t b, uint64_t sz_b)
{
	unsigned __int128 sum =
		(unsigned __int128)a * sz_a + (unsigned __int128)b * sz_b;

	return (uint32_t)(sum / ((unsigned __int128)sz_a + sz_b));
}

/*
 * The exact size-weighted sums of the counts of a run of regions merged into
 * one, for damonx's KEEP rule: rounding each merge of two to the nearest
 * would keep a count of 1 in a run of cold regions that is merged one by one
 * (1 and 0 make 0.5, rounded up, and so on).
 */
struct merge_sums {
	unsigned __int128 nr_accesses, last_nr_accesses;
};

static void start_sums(struct merge_sums *sums, const struct dx_region *r)
{
	sums->nr_accesses = (unsigned __int128)r->nr_accesses * sz_region(r);
	sums->last_nr_accesses =
		(unsigned __int128)r->last_nr_accesses * sz_region(r);
}

static uint32_t rounded(unsigned __int128 sum, uint64_t sz)
{
	return (uint32_t)((sum + sz / 2) / sz);
}

/*
 * Merge r into its left neighbour l.  The kernel rounds the mean access
 * count down at each merge; damonx's KEEP rule (sums, when not NULL) rounds
 * the mean of the whole run to the nearest, so that an unbiased count stays
 * unbiased, and averages the counts of the last aggregation too, which it
 * compares (sampling.c).
 */
static void merge_into(struct dx_region *l, const struct dx_region *r,
		       struct merge_sums *sums)
{
	uint64_t sz_l = sz_region(l), sz_r = sz_region(r);

	if (sums) {
		sums->nr_accesses += (unsigned __int128)r->nr_accesses * sz_r;
		sums->last_nr_accesses +=
			(unsigned __int128)r->last_nr_accesses * sz_r;
		l->nr_accesses = rounded(sums->nr_accesses, sz_l + sz_r);
		l->last_nr_accesses =
			rounded(sums->last_nr_accesses, sz_l + sz_r);
	} else {
		l->nr_accesses =
			mean_of(l->nr_accesses, sz_l, r->nr_accesses, sz_r);
	}
	l->nr_accesses_bp = l->nr_accesses * 10000;
	l->age = mean_of(l->age, sz_l, r->age, sz_r);
	l->end = r->end;
	/* what the checks of the two found, for damonx's rules */
	if (!l->nr_hits)
		l->hit_addr = r->hit_addr;
	l->nr_hits += r->nr_hits;
	l->nr_checks += r->nr_checks;
}

void dx_merge_two(struct dx_target *t, size_t left)
{
	if (left + 1 >= t->nr_regions)
		return;
	merge_into(&t->regions[left], &t->regions[left + 1], NULL);
	memmove(&t->regions[left + 1], &t->regions[left + 2],
		(t->nr_regions - left - 2) * sizeof(struct dx_region));
	t->nr_regions--;
}

/*
 * Merge each region into its left neighbour when they are adjacent, their
 * access counts differ by no more than threshold and the result stays within
 * sz_limit.  The age of a region restarts when its access count moved by more
 * than threshold since the last aggregation.  Compacts the array in place.
 */
static void merge_regions_of(const struct dx_ctx *ctx, struct dx_target *t,
			     uint32_t threshold, uint64_t sz_limit,
			     bool count_age)
{
	bool keep = ctx && ctx->attrs.rules & DX_RULE_KEEP;
	struct merge_sums sums = { 0 };
	size_t i, nr_kept = 0;

	for (i = 0; i < t->nr_regions; i++) {
		struct dx_region r = t->regions[i];
		struct dx_region *prev = nr_kept ? &t->regions[nr_kept - 1] :
						   NULL;

		if (count_age) {
			if (!dx_counts_alike(ctx, r.nr_accesses, r.nr_checks,
					     r.last_nr_accesses, r.nr_checks,
					     threshold))
				r.age = 0;
			else
				r.age++;
		}
		if (prev && prev->end == r.start &&
		    dx_regions_alike(ctx, prev, &r, threshold) &&
		    sz_region(prev) + sz_region(&r) <= sz_limit) {
			merge_into(prev, &r, keep ? &sums : NULL);
		} else {
			t->regions[nr_kept++] = r;
			start_sums(&sums, &r);
		}
	}
	t->nr_regions = nr_kept;
}

void dx_merge_regions_of(struct dx_target *t, uint32_t threshold,
			 uint64_t sz_limit, bool count_age)
{
	merge_regions_of(NULL, t, threshold, sz_limit, count_age);
}

/*
 * Merge all targets; while more than max_nr_regions remain (the user lowered
 * the limit, or mappings grew), merge again with a doubled threshold, up to
 * the largest possible access count.
 */
void dx_merge_regions(struct dx_ctx *ctx, uint32_t threshold, uint64_t sz_limit)
{
	uint32_t max_thres = dx_max_nr_accesses(&ctx->attrs);
	bool count_age = true;

	for (;;) {
		struct dx_target *t;
		size_t nr_regions = 0;

		/*
		 * damonx's own rules keep regions apart in the first pass only:
		 * max_nr_regions comes first
		 */
		dx_for_each_target(t, ctx) {
			if (count_age)
				dx_mark_dust(ctx, t);
			merge_regions_of(count_age ? ctx : NULL, t, threshold,
					 sz_limit, count_age);
			nr_regions += t->nr_regions;
		}
		count_age = false;
		if (nr_regions <= ctx->attrs.max_nr_regions ||
		    max_thres <= threshold)
			break;
		if (threshold < max_thres / 2)
			threshold = threshold ? threshold * 2 : 1;
		else
			threshold = max_thres;
	}
}

/* Regions may not grow past the total size divided by min_nr_regions. */
uint64_t dx_region_sz_limit(const struct dx_ctx *ctx)
{
	const struct dx_target *t;
	const struct dx_region *r;
	uint64_t sz = 0;

	dx_for_each_target(t, ctx)
		dx_for_each_region(r, t)
			sz += sz_region(r);
	sz /= ctx->attrs.min_nr_regions;
	if (sz < ctx->attrs.min_region_sz)
		sz = ctx->attrs.min_region_sz;
	return sz;
}

/* ----------------------------------------------------------------- split */

/*
 * Split every region of a target into nr_subs pieces at random points
 * between 10% and 90% of what is left of it (the kernel cuts the left part
 * again each time), so that a hot sub-range inside a region gets a chance
 * to show.  Regions of two pages or less stay whole.  Builds a new array.
 */
int dx_split_regions_of(struct dx_ctx *ctx, struct dx_target *t, int nr_subs)
{
	uint64_t min_sz = ctx->attrs.min_region_sz;
	struct dx_region *out;
	size_t i, nr_out = 0, cap;

	if (nr_subs < 2 || !t->nr_regions)
		return 0;
	cap = t->nr_regions * (size_t)nr_subs;
	out = malloc(cap * sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (i = 0; i < t->nr_regions; i++) {
		struct dx_region r = t->regions[i];
		uint64_t cuts[8], sz_left = sz_region(&r);
		int nr_cuts = 0, k;

		for (k = 0; k < nr_subs - 1 && sz_left > 2 * min_sz; k++) {
			uint64_t sz_sub = DX_ALIGN_DOWN(
				(uint64_t)((unsigned __int128)dx_rand_range(
						   ctx, 1, 10) *
					   sz_left / 10),
				min_sz);

			if (!sz_sub || sz_sub >= sz_left)
				continue;
			cuts[nr_cuts++] = r.start + sz_sub;
			sz_left = sz_sub;
		}
		/* cuts are in decreasing address order; emit pieces ascending */
		out[nr_out] = r;
		out[nr_out].end = nr_cuts ? cuts[nr_cuts - 1] : r.end;
		nr_out++;
		for (k = nr_cuts - 1; k >= 0; k--) {
			out[nr_out] = r;
			out[nr_out].start = cuts[k];
			out[nr_out].end = k ? cuts[k - 1] : r.end;
			nr_out++;
		}
	}
	dx_target_replace_regions(t, out, nr_out, cap);
	return 0;
}

/*
 * Split only while at most half of max_nr_regions are used, so that a
 * split can never overshoot the limit.  When the count did not change since
 * the last split (merges undid it) and there is room, split in three: the
 * middle of a region may differ from both of its ends.
 */
static int split_regions(struct dx_ctx *ctx)
{
	size_t nr_regions = dx_ctx_nr_regions(ctx);
	struct dx_target *t;
	int nr_subs = 2, err;

	if (nr_regions > ctx->attrs.max_nr_regions / 2)
		return 0;
	if (ctx->last_nr_regions == nr_regions &&
	    nr_regions < ctx->attrs.max_nr_regions / 3)
		nr_subs = 3;
	dx_for_each_target(t, ctx) {
		err = dx_split_regions_of(ctx, t, nr_subs);
		if (err)
			return err;
	}
	ctx->last_nr_regions = nr_regions;
	return 0;
}

/*
 * The splits at the end of an aggregation: damonx's own cuts around what
 * was found accessed first (sampling.c; none under the kernel's rules),
 * then the kernel's random ones; then the checks of the next aggregation
 * are planned.
 */
int dx_split_regions(struct dx_ctx *ctx)
{
	int err = dx_split_guided(ctx);

	if (!err)
		err = split_regions(ctx);
	if (!err)
		err = dx_split_search(ctx);
	dx_sampling_plan(ctx);
	return err;
}

/* -------------------------------------------------------- mapping updates */

static uint64_t sz_range(const struct dx_range *r)
{
	return r->end - r->start;
}

int dx_three_regions(const struct dx_range *maps, size_t nr_maps,
		     uint64_t min_sz, struct dx_range out[3])
{
	struct dx_range first_gap = { 0, 0 }, second_gap = { 0, 0 };
	uint64_t start, end;
	size_t i;

	if (!nr_maps)
		return -EINVAL;
	for (i = 1; i < nr_maps; i++) {
		struct dx_range gap = { maps[i - 1].end, maps[i].start };

		if (maps[i].start < maps[i - 1].end)
			return -EINVAL; /* not sorted */
		if (sz_range(&gap) > sz_range(&first_gap)) {
			second_gap = first_gap;
			first_gap = gap;
		} else if (sz_range(&gap) > sz_range(&second_gap)) {
			second_gap = gap;
		}
	}
	start = DX_ALIGN_UP(maps[0].start, min_sz);
	end = DX_ALIGN_UP(maps[nr_maps - 1].end, min_sz);
	if (!sz_range(&first_gap)) {
		out[0].start = start;
		out[0].end = end;
		return 1;
	}
	if (!sz_range(&second_gap)) {
		out[0].start = start;
		out[0].end = DX_ALIGN_UP(first_gap.start, min_sz);
		out[1].start = DX_ALIGN_UP(first_gap.end, min_sz);
		out[1].end = end;
		return 2;
	}
	if (first_gap.start > second_gap.start) {
		struct dx_range tmp = first_gap;

		first_gap = second_gap;
		second_gap = tmp;
	}
	out[0].start = start;
	out[0].end = DX_ALIGN_UP(first_gap.start, min_sz);
	out[1].start = DX_ALIGN_UP(first_gap.end, min_sz);
	out[1].end = DX_ALIGN_UP(second_gap.start, min_sz);
	out[2].start = DX_ALIGN_UP(second_gap.end, min_sz);
	out[2].end = end;
	return 3;
}

size_t dx_first_range_after(const struct dx_range *ranges, size_t nr_ranges,
			    uint64_t addr)
{
	size_t lo = 0, hi = nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ranges[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

long dx_find_range(const struct dx_range *ranges, size_t nr_ranges,
		   uint64_t addr)
{
	size_t i = dx_first_range_after(ranges, nr_ranges, addr);

	return i < nr_ranges && ranges[i].start <= addr ? (long)i : -1;
}

static bool intersects(const struct dx_region *r, uint64_t start, uint64_t end)
{
	return !(r->end <= start || end <= r->start);
}

/*
 * Make a target's regions fit sorted ranges: regions outside every range go,
 * a range with no region gets a new one, otherwise the first and last regions
 * in it are stretched to its edges and holes between them are filled.
 * Surviving regions keep their access history.
 */
int dx_set_regions(struct dx_target *t, const struct dx_range *ranges,
		   size_t nr_ranges, uint64_t min_sz)
{
	struct dx_region *out = NULL;
	size_t i, j, k, nr_kept = 0, nr_out = 0, cap;
	uint64_t last_end = 0;

	for (i = 0; i < nr_ranges; i++) {
		uint64_t start = DX_ALIGN_DOWN(ranges[i].start, min_sz);
		uint64_t end = DX_ALIGN_UP(ranges[i].end, min_sz);

		if (start >= end || (i && last_end > start))
			return -EINVAL;
		last_end = end;
	}
	/* drop the regions that intersect no range */
	for (j = 0; j < t->nr_regions; j++) {
		for (i = 0; i < nr_ranges; i++)
			if (intersects(&t->regions[j], ranges[i].start,
				       ranges[i].end))
				break;
		if (i < nr_ranges)
			t->regions[nr_kept++] = t->regions[j];
	}
	t->nr_regions = nr_kept;

	/* each range: its regions plus at most one filler per hole, or one */
	cap = 2 * nr_kept + nr_ranges + 1;
	out = malloc(cap * sizeof(*out));
	if (!out)
		return -ENOMEM;
	k = 0;
	for (i = 0; i < nr_ranges; i++) {
		uint64_t start = DX_ALIGN_DOWN(ranges[i].start, min_sz);
		uint64_t end = DX_ALIGN_UP(ranges[i].end, min_sz);
		size_t first = nr_out;

		while (k < t->nr_regions &&
		       t->regions[k].start < ranges[i].end) {
			if (nr_out > first &&
			    out[nr_out - 1].end != t->regions[k].start) {
				out[nr_out] = new_region(out[nr_out - 1].end,
							 t->regions[k].start);
				nr_out++;
			}
			out[nr_out++] = t->regions[k++];
		}
		if (nr_out == first) {
			out[nr_out++] = new_region(start, end);
		} else {
			out[first].start = start;
			out[nr_out - 1].end = end;
		}
	}
	dx_target_replace_regions(t, out, nr_out, cap);
	return 0;
}

int dx_init_regions(struct dx_ctx *ctx, struct dx_target *t,
		    const struct dx_range *ranges, size_t nr_ranges)
{
	uint64_t sz = 0, min_sz = ctx->attrs.min_region_sz;
	size_t i;
	int err;

	dx_target_clear_regions(t);
	for (i = 0; i < nr_ranges; i++)
		sz += ranges[i].end - ranges[i].start;
	sz /= ctx->attrs.min_nr_regions;
	if (sz < min_sz)
		sz = min_sz;
	for (i = 0; i < nr_ranges; i++) {
		uint64_t start = DX_ALIGN_DOWN(ranges[i].start, min_sz);
		uint64_t end = DX_ALIGN_UP(ranges[i].end, min_sz);
		uint64_t nr_pieces = (end - start) / sz;

		err = dx_target_add_region(t, start, end);
		if (err)
			return err;
		if (nr_pieces > 1) {
			err = dx_split_evenly(t, t->nr_regions - 1, nr_pieces,
					      min_sz);
			if (err && err != -EINVAL)
				return err;
		}
	}
	return 0;
}
