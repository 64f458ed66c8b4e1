// SPDX-License-Identifier: MIT
/*
 * damonx core: the monitoring loop, and the rules that adapt the regions.
 *
 * The rules follow the Linux kernel's mm/damon/core.c (6.12) so that damonx
 * and the kernel's DAMON can be compared like for like.  Regions of a target
 * live in one sorted array; split and merge rebuild or compact it in one
 * pass, so an aggregation costs O(nr_regions).
 */
#define _GNU_SOURCE
#include "damonx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: fast, and good enough for picking sample addresses. */
uint64_t dx_rand_u64(struct dx_ctx *ctx)
{
	uint64_t *s = ctx->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t dx_rand_range(struct dx_ctx *ctx, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (uint64_t)(((unsigned __int128)dx_rand_u64(ctx) *
				(hi - lo)) >> 64);
}

/* ------------------------------------------------------------ attributes */

void dx_attrs_default(struct dx_attrs *attrs)
{
	attrs->sample_us = 5000;
	attrs->aggr_us = 100000;
	attrs->ops_update_us = 1000000;
	attrs->min_nr_regions = 10;
	attrs->max_nr_regions = 1000;
	attrs->min_region_sz = 4096;
}

int dx_attrs_validate(const struct dx_attrs *a)
{
	if (!a->sample_us || !a->aggr_us || !a->ops_update_us)
		return -EINVAL;
	if (a->sample_us > a->aggr_us)
		return -EINVAL;
	if (a->min_nr_regions < 3 || a->min_nr_regions > a->max_nr_regions)
		return -EINVAL;
	if (!a->min_region_sz || (a->min_region_sz & (a->min_region_sz - 1)))
		return -EINVAL;
	return 0;
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

/* ----------------------------------------------------------------- merge */

static void merge_into(struct dx_region *l, const struct dx_region *r)
{
	unsigned __int128 sz_l = sz_region(l), sz_r = sz_region(r);

	l->nr_accesses = (uint32_t)((l->nr_accesses * sz_l +
				     r->nr_accesses * sz_r) / (sz_l + sz_r));
	l->nr_accesses_bp = l->nr_accesses * 10000;
	l->age = (uint32_t)((l->age * sz_l + r->age * sz_r) / (sz_l + sz_r));
	l->end = r->end;
}

void dx_merge_two(struct dx_target *t, size_t left)
{
	if (left + 1 >= t->nr_regions)
		return;
	merge_into(&t->regions[left], &t->regions[left + 1]);
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
void dx_merge_regions_of(struct dx_target *t, uint32_t threshold,
			 uint64_t sz_limit, bool count_age)
{
	size_t i, nr_kept = 0;

	for (i = 0; i < t->nr_regions; i++) {
		struct dx_region r = t->regions[i];
		struct dx_region *prev = nr_kept ? &t->regions[nr_kept - 1] : NULL;

		if (count_age) {
			if (abs_diff(r.nr_accesses, r.last_nr_accesses) > threshold)
				r.age = 0;
			else
				r.age++;
		}
		if (prev && prev->end == r.start &&
		    abs_diff(prev->nr_accesses, r.nr_accesses) <= threshold &&
		    sz_region(prev) + sz_region(&r) <= sz_limit)
			merge_into(prev, &r);
		else
			t->regions[nr_kept++] = r;
	}
	t->nr_regions = nr_kept;
}

/*
 * Merge all targets; while more than max_nr_regions remain (the user lowered
 * the limit, or mappings grew), merge again with a doubled threshold, up to
 * the largest possible access count.
 */
void dx_merge_regions(struct dx_ctx *ctx, uint32_t threshold, uint64_t sz_limit)
{
	uint32_t max_thres = (uint32_t)(ctx->attrs.aggr_us / ctx->attrs.sample_us);
	bool count_age = true;

	for (;;) {
		size_t i, nr_regions = 0;

		for (i = 0; i < ctx->nr_targets; i++) {
			dx_merge_regions_of(&ctx->targets[i], threshold, sz_limit,
					    count_age);
			nr_regions += ctx->targets[i].nr_regions;
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
	uint64_t sz = 0;
	size_t i, j;

	for (i = 0; i < ctx->nr_targets; i++)
		for (j = 0; j < ctx->targets[i].nr_regions; j++)
			sz += sz_region(&ctx->targets[i].regions[j]);
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
			uint64_t sz_sub = DX_ALIGN_DOWN((uint64_t)(
				(unsigned __int128)dx_rand_range(ctx, 1, 10) *
				sz_left / 10), min_sz);

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
	free(t->regions);
	t->regions = out;
	t->nr_regions = nr_out;
	t->cap_regions = cap;
	return 0;
}

/*
 * Split only while at most half of max_nr_regions are used, so that a
 * split can never overshoot the limit.  When the count did not change since
 * the last split (merges undid it) and there is room, split in three: the
 * middle of a region may differ from both of its ends.
 */
int dx_split_regions(struct dx_ctx *ctx)
{
	size_t nr_regions = dx_ctx_nr_regions(ctx), i;
	int nr_subs = 2, err;

	if (nr_regions > ctx->attrs.max_nr_regions / 2)
		return 0;
	if (ctx->last_nr_regions == nr_regions &&
	    nr_regions < ctx->attrs.max_nr_regions / 3)
		nr_subs = 3;
	for (i = 0; i < ctx->nr_targets; i++) {
		err = dx_split_regions_of(ctx, &ctx->targets[i], nr_subs);
		if (err)
			return err;
	}
	ctx->last_nr_regions = nr_regions;
	return 0;
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
	size_t i;

	if (!nr_maps)
		return -EINVAL;
	for (i = 1; i < nr_maps; i++) {
		struct dx_range gap = { maps[i - 1].end, maps[i].start };

		if (maps[i].start < maps[i - 1].end)
			return -EINVAL;	/* not sorted */
		if (sz_range(&gap) > sz_range(&first_gap)) {
			second_gap = first_gap;
			first_gap = gap;
		} else if (sz_range(&gap) > sz_range(&second_gap)) {
			second_gap = gap;
		}
	}
	if (!sz_range(&first_gap) || !sz_range(&second_gap))
		return -EINVAL;
	if (first_gap.start > second_gap.start) {
		struct dx_range tmp = first_gap;

		first_gap = second_gap;
		second_gap = tmp;
	}
	out[0].start = DX_ALIGN_UP(maps[0].start, min_sz);
	out[0].end = DX_ALIGN_UP(first_gap.start, min_sz);
	out[1].start = DX_ALIGN_UP(first_gap.end, min_sz);
	out[1].end = DX_ALIGN_UP(second_gap.start, min_sz);
	out[2].start = DX_ALIGN_UP(second_gap.end, min_sz);
	out[2].end = DX_ALIGN_UP(maps[nr_maps - 1].end, min_sz);
	return 0;
}

long dx_find_range(const struct dx_range *ranges, size_t nr_ranges, uint64_t addr)
{
	size_t lo = 0, hi = nr_ranges;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (addr < ranges[mid].start)
			hi = mid;
		else if (addr >= ranges[mid].end)
			lo = mid + 1;
		else
			return (long)mid;
	}
	return -1;
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

		while (k < t->nr_regions && t->regions[k].start < ranges[i].end) {
			if (nr_out > first && out[nr_out - 1].end != t->regions[k].start) {
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
	free(t->regions);
	t->regions = out;
	t->nr_regions = nr_out;
	t->cap_regions = cap;
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
			err = dx_split_evenly(t, t->nr_regions - 1, nr_pieces, min_sz);
			if (err && err != -EINVAL)
				return err;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- contexts */

int dx_ctx_new(struct dx_ctx **out, const struct dx_attrs *attrs, uint64_t seed)
{
	struct dx_ctx *ctx;
	int err, i;

	err = dx_attrs_validate(attrs);
	if (err)
		return err;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->attrs = *attrs;
	for (i = 0; i < 4; i++)
		ctx->rng[i] = splitmix64(&seed);
	*out = ctx;
	return 0;
}

void dx_ctx_set_ops(struct dx_ctx *ctx, const struct dx_operations *ops,
		    void *ops_priv)
{
	ctx->ops = *ops;
	ctx->ops_priv = ops_priv;
}

int dx_ctx_add_target(struct dx_ctx *ctx, int64_t id, void *priv)
{
	if (ctx->started)
		return -EBUSY;
	if (ctx->nr_targets == ctx->cap_targets) {
		size_t cap = ctx->cap_targets ? ctx->cap_targets * 2 : 4;
		struct dx_target *n = realloc(ctx->targets, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ctx->targets = n;
		ctx->cap_targets = cap;
	}
	memset(&ctx->targets[ctx->nr_targets], 0, sizeof(struct dx_target));
	ctx->targets[ctx->nr_targets].id = id;
	ctx->targets[ctx->nr_targets].priv = priv;
	ctx->nr_targets++;
	return 0;
}

int dx_ctx_add_scheme(struct dx_ctx *ctx, const struct dx_scheme *scheme)
{
	struct dx_scheme *n;

	if (scheme->action < 0 || scheme->action >= DX_ACTION_NR ||
	    scheme->min_sz > scheme->max_sz ||
	    scheme->min_nr_accesses > scheme->max_nr_accesses ||
	    scheme->min_age > scheme->max_age)
		return -EINVAL;
	n = realloc(ctx->schemes, (ctx->nr_schemes + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->schemes = n;
	ctx->schemes[ctx->nr_schemes] = *scheme;
	ctx->schemes[ctx->nr_schemes].nr_tried = 0;
	ctx->schemes[ctx->nr_schemes].sz_tried = 0;
	ctx->schemes[ctx->nr_schemes].nr_applied = 0;
	ctx->schemes[ctx->nr_schemes].sz_applied = 0;
	ctx->nr_schemes++;
	return 0;
}

void dx_target_kill(struct dx_ctx *ctx, struct dx_target *t)
{
	if (t->dead)
		return;
	t->dead = true;
	dx_target_clear_regions(t);
	if (ctx->ops.target_cleanup)
		ctx->ops.target_cleanup(ctx, t);
	t->priv = NULL;
	ctx->stats.nr_targets_lost++;
}

void dx_ctx_free(struct dx_ctx *ctx)
{
	size_t i;

	if (!ctx)
		return;
	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		dx_target_clear_regions(t);
		if (!t->dead && ctx->ops.target_cleanup)
			ctx->ops.target_cleanup(ctx, t);
	}
	if (ctx->ops.cleanup)
		ctx->ops.cleanup(ctx);
	free(ctx->targets);
	free(ctx->schemes);
	free(ctx->snap);
	free(ctx->snap_nr);
	free(ctx);
}

void dx_ctx_request_stop(struct dx_ctx *ctx)
{
	ctx->stop = 1;
}

size_t dx_ctx_nr_regions(const struct dx_ctx *ctx)
{
	size_t i, nr = 0;

	for (i = 0; i < ctx->nr_targets; i++)
		nr += ctx->targets[i].nr_regions;
	return nr;
}

size_t dx_ctx_nr_live_targets(const struct dx_ctx *ctx)
{
	size_t i, nr = 0;

	for (i = 0; i < ctx->nr_targets; i++)
		nr += !ctx->targets[i].dead;
	return nr;
}

/* ------------------------------------------------------------------ loop */

void dx_region_account(struct dx_ctx *ctx, struct dx_region *r, bool accessed)
{
	uint32_t len_window = (uint32_t)(ctx->attrs.aggr_us / ctx->attrs.sample_us);

	/* a moving sum that assumes the last aggregation had no noise */
	r->nr_accesses_bp = r->nr_accesses_bp -
		r->last_nr_accesses * 10000 / len_window + (accessed ? 10000 : 0);
	if (accessed)
		r->nr_accesses++;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Sleep until the context time deadline_ns; -EINTR when a signal came. */
static int sleep_until(struct dx_ctx *ctx, uint64_t deadline_ns)
{
	struct timespec ts;
	int err;

	if (ctx->clock == DX_CLOCK_VIRTUAL) {
		if (deadline_ns > ctx->now_ns)
			ctx->now_ns = deadline_ns;
		return 0;
	}
	ts.tv_sec = (time_t)(deadline_ns / 1000000000ULL);
	ts.tv_nsec = (long)(deadline_ns % 1000000000ULL);
	err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	ctx->now_ns = monotonic_ns();
	if (err == EINTR)
		return -EINTR;
	return 0;
}

static int start(struct dx_ctx *ctx)
{
	uint64_t aggr_samples = ctx->attrs.aggr_us / ctx->attrs.sample_us;
	uint64_t update_samples = ctx->attrs.ops_update_us / ctx->attrs.sample_us;
	int err;

	if (!ctx->nr_targets)
		return -EINVAL;
	if (ctx->ops.init) {
		err = ctx->ops.init(ctx);
		if (err)
			return err;
	}
	ctx->now_ns = ctx->clock == DX_CLOCK_VIRTUAL ? 0 : monotonic_ns();
	ctx->aggr_start_ns = ctx->now_ns;
	ctx->next_aggr_sample = aggr_samples ? aggr_samples : 1;
	ctx->next_update_sample = update_samples ? update_samples : 1;
	ctx->sz_limit = dx_region_sz_limit(ctx);
	ctx->snap_nr = calloc(ctx->nr_targets, sizeof(*ctx->snap_nr));
	if (!ctx->snap_nr)
		return -ENOMEM;
	ctx->started = true;
	return 0;
}

/* Drop targets that are gone; return how many are left. */
static size_t reap_targets(struct dx_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		if (!t->dead && ctx->ops.target_valid &&
		    !ctx->ops.target_valid(ctx, t))
			dx_target_kill(ctx, t);
	}
	return dx_ctx_nr_live_targets(ctx);
}

static void pick_sampling_addrs(struct dx_ctx *ctx)
{
	size_t i, j;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		for (j = 0; j < t->nr_regions; j++) {
			struct dx_region *r = &t->regions[j];

			r->sampling_addr = dx_rand_range(ctx, r->start, r->end);
		}
	}
}

static int take_snapshot(struct dx_ctx *ctx)
{
	size_t nr = dx_ctx_nr_regions(ctx), i, j, k = 0;

	if (nr > ctx->snap_cap) {
		struct dx_region_out *n = realloc(ctx->snap, nr * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ctx->snap = n;
		ctx->snap_cap = nr;
	}
	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		ctx->snap_nr[i] = t->nr_regions;
		for (j = 0; j < t->nr_regions; j++, k++) {
			ctx->snap[k].start = t->regions[j].start;
			ctx->snap[k].end = t->regions[j].end;
			ctx->snap[k].nr_accesses = t->regions[j].nr_accesses;
			ctx->snap[k].age = t->regions[j].age;
		}
	}
	ctx->snap_start_ns = ctx->aggr_start_ns;
	ctx->snap_end_ns = ctx->now_ns;
	return 0;
}

static bool scheme_matches(const struct dx_scheme *s, const struct dx_region *r)
{
	uint64_t sz = sz_region(r);

	return s->min_sz <= sz && sz <= s->max_sz &&
	       s->min_nr_accesses <= r->nr_accesses &&
	       r->nr_accesses <= s->max_nr_accesses &&
	       s->min_age <= r->age && r->age <= s->max_age;
}

static void apply_schemes(struct dx_ctx *ctx)
{
	size_t i, j, k;

	for (k = 0; k < ctx->nr_schemes; k++) {
		struct dx_scheme *s = &ctx->schemes[k];

		for (i = 0; i < ctx->nr_targets; i++) {
			struct dx_target *t = &ctx->targets[i];

			for (j = 0; j < t->nr_regions; j++) {
				struct dx_region *r = &t->regions[j];
				int64_t applied;

				if (!scheme_matches(s, r))
					continue;
				s->nr_tried++;
				s->sz_tried += sz_region(r);
				if (s->action == DX_ACTION_STAT || !ctx->ops.apply_scheme)
					continue;
				applied = ctx->ops.apply_scheme(ctx, t, r, s->action);
				if (applied > 0) {
					s->nr_applied++;
					s->sz_applied += (uint64_t)applied;
				}
			}
		}
	}
}

static void reset_aggregated(struct dx_ctx *ctx)
{
	size_t i, j;

	for (i = 0; i < ctx->nr_targets; i++) {
		struct dx_target *t = &ctx->targets[i];

		for (j = 0; j < t->nr_regions; j++) {
			t->regions[j].last_nr_accesses = t->regions[j].nr_accesses;
			t->regions[j].nr_accesses = 0;
		}
	}
}

/* The end of an aggregation: merge, report, act, reset, split. */
static int aggregate(struct dx_ctx *ctx)
{
	int err;

	dx_merge_regions(ctx, ctx->max_nr_accesses / 10, ctx->sz_limit);
	err = take_snapshot(ctx);
	if (err)
		return err;
	apply_schemes(ctx);
	reset_aggregated(ctx);
	err = dx_split_regions(ctx);
	if (err)
		return err;
	ctx->aggr_start_ns = ctx->now_ns;
	ctx->next_aggr_sample += ctx->attrs.aggr_us / ctx->attrs.sample_us;
	ctx->stats.nr_aggregations++;
	return 0;
}

int dx_ctx_run_aggregation(struct dx_ctx *ctx)
{
	uint64_t sample_ns = ctx->attrs.sample_us * 1000;
	int err;

	if (!ctx->started) {
		err = start(ctx);
		if (err)
			return err;
	}
	for (;;) {
		bool aggregated = false;

		if (!ctx->checks_pending) {
			if (ctx->stop || !reap_targets(ctx))
				return 0;
			pick_sampling_addrs(ctx);
			if (ctx->ops.prepare_access_checks) {
				err = ctx->ops.prepare_access_checks(ctx);
				if (err)
					return err;
			}
			/* pages get a whole sampling interval to be accessed */
			if (ctx->clock == DX_CLOCK_REAL)
				ctx->now_ns = monotonic_ns();
			ctx->deadline_ns = ctx->now_ns + sample_ns;
			ctx->checks_pending = true;
		}
		/* a signal returns to the caller, which may come back to go on */
		err = sleep_until(ctx, ctx->deadline_ns);
		if (err)
			return err;
		ctx->checks_pending = false;
		if (ctx->stop)
			return 0;
		ctx->passed_samples++;
		ctx->stats.nr_samples++;
		ctx->stats.nr_region_checks += dx_ctx_nr_regions(ctx);
		if (ctx->ops.check_accesses) {
			err = ctx->ops.check_accesses(ctx);
			if (err < 0)
				return err;
			ctx->max_nr_accesses = (uint32_t)err;
		}
		if (ctx->passed_samples >= ctx->next_aggr_sample) {
			err = aggregate(ctx);
			if (err)
				return err;
			aggregated = true;
		}
		if (ctx->passed_samples >= ctx->next_update_sample) {
			ctx->next_update_sample +=
				ctx->attrs.ops_update_us / ctx->attrs.sample_us;
			if (ctx->ops.update) {
				err = ctx->ops.update(ctx);
				if (err)
					return err;
			}
			ctx->sz_limit = dx_region_sz_limit(ctx);
			ctx->stats.nr_updates++;
		}
		if (aggregated)
			return 1;
	}
}
