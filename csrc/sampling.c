// SPDX-License-Identifier: MIT
/*
 * damonx core: where the access checks go, beyond the kernel's rules
 * (docs/kernel-differences.md).  Under the kernel's rules (attrs.rules 0)
 * every region is checked in every sample, and core.c and regions.c do what
 * the kernel does; the rules here (DX_RULE_* in damonx.h) each add one thing.
 *
 * Small hot sets in large memory (DX_RULE_HIT_GUIDED).  A uniformly random
 * check hits a hot set of a 1/16,384 share of the address space once in
 * 16,384 tries, times the chance that its page was accessed: a few thousand
 * checks a second see a hit every few seconds, so the information is there.
 * The kernel's rules throw it away: the hit is averaged into a huge region's
 * nr_accesses, the next merge erases it, and random splits at 10-90% of a
 * region of gigabytes never cut out a few megabytes.  So:
 *   - SEEDS: a sparse region (at most one in DX_SPARSE_RATIO of its checks
 *     found accessed) is cut around the page found accessed, which becomes
 *     a region of its own (reaching an accessed neighbour when close to it);
 *   - PROBES: a cold neighbour of a young run of accessed regions is cut at
 *     their shared edge, into a probe as large as the run: a probe that is
 *     accessed merges into the run, which so doubles per aggregation until
 *     it reaches the edges of what is accessed, where the kernel's random
 *     splits settle them;
 *   - SEARCH: the cold space of all targets is split into about
 *     DX_SEARCH_PER_MIN_REGION * min_nr_regions regions, so that it gets
 *     that many checks per sample whatever its size;
 *   - KEEP: two regions merge only if they were alike in the last
 *     aggregation too (a region just missed by chance is not merged away),
 *     and the count of a run of merged regions is rounded to the nearest
 *     (the kernel rounds down at each merge of two, which turns a few
 *     accesses in a large region into none; regions.c).
 *
 * Fewer checks for the same answer (DX_RULE_ADAPTIVE_CHECKS):
 *   - PERIODS: a region whose count has stayed alike for a while (its age)
 *     needs fewer samples to tell it stays so: it is checked in one of
 *     every 2 or 4 samples (a bounded staleness), at a random phase so that
 *     the checks spread over the samples.  A region checked in m of the n
 *     samples of an aggregation adds n / m for each check found accessed
 *     (the remainder of n / m spread over its first checks): nr_accesses
 *     and nr_accesses_bp stay unbiased estimates of what checking every
 *     sample would count, with the same range, 0 to n;
 *   - NOISE: two counts are alike (for merging and ageing) when they
 *     differ by no more than the noise of their checks, not only by the
 *     kernel's threshold of a tenth of the largest count: a region accessed
 *     in half of the samples reads 10 +- 2.2 of 20, and the kernel's rules
 *     keep cutting it into hundreds of regions that differ by noise alone.
 */
#include "damonx.h"

#include <errno.h>
#include <stdlib.h>

#define DX_ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))

static inline bool has_rule(const struct dx_ctx *ctx, uint32_t rule)
{
	return ctx && ctx->attrs.rules & rule;
}

static inline uint64_t sz_region(const struct dx_region *r)
{
	return r->end - r->start;
}

/* A region is sparse when at most 1 in this many of its checks hit. */
#define DX_SPARSE_RATIO 4
/* Runs of accessed regions are grown by probes while younger than this. */
#define DX_PROBE_AGE 3
/*
 * Seeds are this share of all monitored bytes (a page at least): the finest
 * structure the seeds chase.  A single page accessed among cold ones (an
 * interpreter's, a library's) then makes a seed whose count stays within
 * the noise of its neighbours', so it merges back, where a seed of its own
 * would keep a region and its checks; a hot set of a 1/65,536 share fills
 * its seed.
 */
#define DX_SEED_SHARE 65536
/* A seed this many seeds or fewer from an accessed neighbour reaches it. */
#define DX_SEED_TO_EDGE 4

/*
 * At the end of an aggregation, after its counts moved to
 * last_nr_accesses: whether a region was found accessed, or not at all.
 */
static bool accessed(const struct dx_region *r)
{
	return r->last_nr_accesses > 0;
}

static bool cold(const struct dx_region *r)
{
	return !r->last_nr_accesses && !r->nr_hits;
}

/* --------------------------------------------------------------- periods */

/*
 * Ages (aggregations) from which a region is checked in one of 2, or of 4,
 * samples: the longest period leaves a region unchecked for at most 3
 * samples.  A region with accesses keeps enough checks to expect
 * DX_MIN_HITS hits per aggregation, so that its count does not drop to 0
 * by chance.  The cold space is where small hot sets hide: it keeps being
 * checked in every sample for its first DX_COLD_STABLE_AGE aggregations
 * (5 s by default), and from DX_COLD_OLD_AGE on (20 s) the search gives it
 * half as many regions (see dx_split_search()).
 */
#define DX_STABLE_AGE 5
#define DX_STEADY_AGE 10
#define DX_COLD_STABLE_AGE 50
#define DX_COLD_STEADY_AGE 100
#define DX_COLD_OLD_AGE 200
#define DX_MAX_PERIOD 4
#define DX_MIN_HITS 4

static uint32_t period_of(const struct dx_ctx *ctx, const struct dx_region *r,
			  uint32_t nr_samples)
{
	bool is_cold = cold(r);
	uint32_t period = 1;

	if (!has_rule(ctx, DX_RULE_PERIODS) || r->kind != DX_REGION_PLAIN)
		return 1;
	if (r->age >= (is_cold ? DX_COLD_STEADY_AGE : DX_STEADY_AGE))
		period = DX_MAX_PERIOD;
	else if (r->age >= (is_cold ? DX_COLD_STABLE_AGE : DX_STABLE_AGE))
		period = 2;
	while (period > 1 && !is_cold &&
	       r->last_nr_accesses < DX_MIN_HITS * period)
		period /= 2;
	while (period > nr_samples)
		period /= 2;
	return period;
}

/* Checks of a region at the samples j < n where (j + phase) % period == 0. */
static uint32_t nr_planned_checks(uint32_t n, uint32_t period, uint32_t phase)
{
	uint32_t first = (period - phase % period) % period;

	return first < n ? (n - 1 - first) / period + 1 : 0;
}

void dx_sampling_plan(struct dx_ctx *ctx)
{
	uint32_t n = dx_max_nr_accesses(&ctx->attrs);
	struct dx_target *t;
	struct dx_region *r;

	ctx->plan_nr_samples = n;
	ctx->sample_in_aggr = 0;
	ctx->sz_seed = 0;
	dx_for_each_target(t, ctx) {
		t->nr_checks = 0;
		dx_for_each_region(r, t) {
			uint32_t period = period_of(ctx, r, n);

			ctx->sz_seed += sz_region(r);

			r->period = (uint16_t)period;
			r->phase = period > 1 ?
					   (uint16_t)dx_rand_range(ctx, 0,
								   period) :
					   0;
			r->nr_planned = nr_planned_checks(n, period, r->phase);
			r->nr_checks = 0;
			r->nr_hits = 0;
		}
	}
	ctx->sz_seed = DX_ALIGN_DOWN(ctx->sz_seed / DX_SEED_SHARE,
				     ctx->attrs.min_region_sz);
	if (!ctx->sz_seed)
		ctx->sz_seed = ctx->attrs.min_region_sz;
}

size_t dx_sampling_pick(struct dx_ctx *ctx)
{
	uint32_t j = ctx->sample_in_aggr++;
	struct dx_target *t;
	struct dx_region *r;
	size_t nr = 0;

	dx_for_each_target(t, ctx) {
		dx_for_each_region(r, t) {
			r->skip = r->period > 1 && (j + r->phase) % r->period;
			if (r->skip)
				continue;
			r->sampling_addr = dx_rand_range(ctx, r->start, r->end);
			t->nr_checks++;
			nr++;
		}
	}
	ctx->nr_sample_checks = nr;
	return nr;
}

uint32_t dx_sampling_weight(const struct dx_ctx *ctx, const struct dx_region *r)
{
	uint32_t n = ctx->plan_nr_samples, m = r->nr_planned, i = r->nr_checks;

	if (r->period <= 1 || !m || i >= m)
		return 1;
	return n / m + (i < n % m);
}

/* ---------------------------------------------------------------- alike */

/*
 * Two counts of n samples, from m_a and m_b checks, differ by noise alone
 * when their difference is within DX_NOISE_Z standard deviations of the
 * difference of two binomial estimates:
 * var = n^2 (p_a (1 - p_a) / m_a + p_b (1 - p_b) / m_b), p = count / n.
 * A count of 0 (or n) has no variance of its own: a region found cold is
 * not alike a neighbour whose checks found it clearly accessed.
 */
#define DX_NOISE_Z 2.0

static double var_of(uint32_t n, uint32_t x, uint32_t m)
{
	double p = x >= n ? 1.0 : (double)x / n;

	return (double)n * n * p * (1 - p) / m;
}

bool dx_counts_alike(const struct dx_ctx *ctx, uint32_t a, uint32_t m_a,
		     uint32_t b, uint32_t m_b, uint32_t threshold)
{
	uint32_t n = ctx ? ctx->plan_nr_samples : 0;
	double d = (double)a - b;

	if ((a > b ? a - b : b - a) <= threshold)
		return true;
	if (!has_rule(ctx, DX_RULE_NOISE) || !m_a || !m_b || !n)
		return false;
	return d * d <= DX_NOISE_Z * DX_NOISE_Z *
				(var_of(n, a, m_a) + var_of(n, b, m_b));
}

/*
 * Dust: a run of adjacent regions found accessed (in this aggregation or the
 * last) smaller than half a seed, that stopped growing, such as a single
 * page accessed among cold ones (an interpreter's, a library's).  It is
 * real, but not worth regions and their checks: its regions merge into a
 * neighbour whatever their counts, as under the kernel's rules.  A hot set
 * of a seed or more keeps its regions.
 */
static bool recently_accessed(const struct dx_region *r)
{
	return r->nr_accesses || r->last_nr_accesses;
}

void dx_mark_dust(struct dx_ctx *ctx, struct dx_target *t)
{
	size_t i = 0, j, k;

	while (i < t->nr_regions) {
		uint64_t sz = 0;
		bool old = true;

		if (!recently_accessed(&t->regions[i])) {
			t->regions[i++].dust = false;
			continue;
		}
		for (j = i;
		     j < t->nr_regions && recently_accessed(&t->regions[j]) &&
		     (j == i || t->regions[j].start == t->regions[j - 1].end);
		     j++) {
			sz += sz_region(&t->regions[j]);
			old = old && t->regions[j].age >= DX_PROBE_AGE;
		}
		for (k = i; k < j; k++)
			t->regions[k].dust = has_rule(ctx, DX_RULE_SEEDS) &&
					     old && 2 * sz < ctx->sz_seed;
		i = j;
	}
}

bool dx_regions_alike(const struct dx_ctx *ctx, const struct dx_region *a,
		      const struct dx_region *b, uint32_t threshold)
{
	if (a->dust || b->dust)
		return true;
	if (!dx_counts_alike(ctx, a->nr_accesses, a->nr_checks, b->nr_accesses,
			     b->nr_checks, threshold))
		return false;
	/*
	 * A region accessed in the last aggregation and not in this one may
	 * have been missed by chance: it is not merged into a neighbour that
	 * was not accessed either, until a second aggregation tells.
	 */
	if (!has_rule(ctx, DX_RULE_KEEP))
		return true;
	return dx_counts_alike(ctx, a->last_nr_accesses, a->nr_checks,
			       b->last_nr_accesses, b->nr_checks, threshold);
}

/* ------------------------------------------------------ seeds and probes */

/*
 * The bytes of the run of adjacent accessed regions that ends at (dir -1) or
 * starts at (dir +1) regions[i], if it is young enough to grow; 0 otherwise.
 */
static uint64_t run_to_grow(const struct dx_target *t, size_t i, int dir)
{
	const struct dx_region *r = &t->regions[i], *next;
	uint64_t sz = 0;

	if (!accessed(r) || r->age >= DX_PROBE_AGE)
		return 0;
	for (;;) {
		sz += sz_region(r);
		if (dir < 0 ? r == t->regions :
			      r == t->regions + t->nr_regions - 1)
			break;
		next = r + dir;
		if (!accessed(next) ||
		    (dir < 0 ? next->end != r->start : next->start != r->end))
			break;
		r = next;
	}
	return sz;
}

struct cut {
	uint64_t at;
	uint8_t kind; /* of the piece that starts here */
};

/*
 * Where to cut a region: around its hit (a seed), or at its edges next to
 * accessed runs that grow (probes).  Returns the number of cuts, sorted, at
 * most 2, each with the kind of the piece it starts; *first is the kind of
 * the first piece.
 */
static int plan_cuts(const struct dx_ctx *ctx, const struct dx_target *t,
		     size_t i, struct cut cuts[2], uint8_t *first)
{
	const struct dx_region *r = &t->regions[i];
	uint64_t min_sz = ctx->attrs.min_region_sz, sz_l = 0, sz_r = 0;
	int nr = 0;

	*first = DX_REGION_PLAIN;
	if (sz_region(r) <= 2 * min_sz)
		return 0;
	if (cold(r) && has_rule(ctx, DX_RULE_PROBES)) {
		if (i > 0 && r[-1].end == r->start)
			sz_l = DX_ALIGN_DOWN(run_to_grow(t, i - 1, -1), min_sz);
		if (i + 1 < t->nr_regions && r[1].start == r->end)
			sz_r = DX_ALIGN_DOWN(run_to_grow(t, i + 1, +1), min_sz);
		/* a probe takes at most a third of the region */
		if (sz_l && 3 * sz_l <= sz_region(r)) {
			*first = DX_REGION_PROBE;
			cuts[nr++] = (struct cut){ r->start + sz_l,
						   DX_REGION_PLAIN };
		}
		if (sz_r && 3 * sz_r <= sz_region(r))
			cuts[nr++] =
				(struct cut){ r->end - sz_r, DX_REGION_PROBE };
		return nr;
	}
	if (r->nr_hits && r->nr_hits * DX_SPARSE_RATIO <= r->nr_checks &&
	    ctx->sz_seed && sz_region(r) >= 2 * ctx->sz_seed &&
	    has_rule(ctx, DX_RULE_SEEDS)) {
		/* sz_seed around the page found accessed, inside r */
		uint64_t lo = DX_ALIGN_DOWN(r->hit_addr, min_sz), hi;

		lo = lo - r->start > ctx->sz_seed / 2 ?
			     DX_ALIGN_DOWN(lo - ctx->sz_seed / 2, min_sz) :
			     r->start;
		if (lo + ctx->sz_seed > r->end)
			lo = r->end - ctx->sz_seed;
		hi = lo + ctx->sz_seed;
		/*
		 * a hit next to an accessed neighbour is most likely its edge,
		 * which the random splits left in r: the seed reaches it
		 */
		if (i > 0 && r[-1].end == r->start && accessed(&r[-1]) &&
		    lo - r->start <= DX_SEED_TO_EDGE * ctx->sz_seed)
			lo = r->start;
		if (i + 1 < t->nr_regions && r[1].start == r->end &&
		    accessed(&r[1]) &&
		    r->end - hi <= DX_SEED_TO_EDGE * ctx->sz_seed)
			hi = r->end;
		if (lo > r->start)
			cuts[nr++] = (struct cut){ lo, DX_REGION_SEED };
		else
			*first = DX_REGION_SEED;
		if (hi < r->end)
			cuts[nr++] = (struct cut){ hi, DX_REGION_PLAIN };
	}
	return nr;
}

/* Regions the context may still add under max_nr_regions. */
static size_t room_for_regions(const struct dx_ctx *ctx)
{
	size_t nr = dx_ctx_nr_regions(ctx);

	return ctx->attrs.max_nr_regions > nr ? ctx->attrs.max_nr_regions - nr :
						0;
}

int dx_split_guided(struct dx_ctx *ctx)
{
	size_t room = room_for_regions(ctx);
	struct dx_target *t;

	if (!has_rule(ctx, DX_RULE_SEEDS | DX_RULE_PROBES))
		return 0;
	dx_for_each_live_target(t, ctx) {
		size_t i, nr_out = 0, cap = t->nr_regions * 3;
		struct dx_region *out;

		if (!t->nr_regions)
			continue;
		out = malloc(cap * sizeof(*out));
		if (!out)
			return -ENOMEM;
		for (i = 0; i < t->nr_regions; i++) {
			struct dx_region r = t->regions[i];
			struct cut cuts[2];
			uint8_t first;
			int k, nr_cuts = plan_cuts(ctx, t, i, cuts, &first);

			if ((size_t)nr_cuts > room) {
				nr_cuts = 0;
				first = DX_REGION_PLAIN;
			}
			room -= (size_t)nr_cuts;
			out[nr_out] = r;
			out[nr_out].kind = first;
			for (k = 0; k < nr_cuts; k++) {
				out[nr_out++].end = cuts[k].at;
				out[nr_out] = r;
				out[nr_out].start = cuts[k].at;
				out[nr_out].kind = cuts[k].kind;
			}
			nr_out++;
		}
		dx_target_replace_regions(t, out, nr_out, cap);
	}
	return 0;
}

/* ---------------------------------------------------------------- search */

/*
 * Checks per sample, per min_nr_regions, that search the cold space.  The
 * kernel's rules leave a cold space in min_nr_regions to 1.3 times as many
 * regions after merging, split in two or three: about 3 checks per sample
 * per min_nr_regions.  A hot set of a 1/16,384 share whose pages are
 * accessed in half of the samples is hit after 16,384 * 2 / 80 = 410
 * samples on average with 80 (2 s at 5 ms), and within 8.5 s with a chance
 * of 98%.
 */
#define DX_SEARCH_PER_MIN_REGION 8

static bool searched(const struct dx_region *r)
{
	return cold(r) && r->kind == DX_REGION_PLAIN;
}

/* Split regions[i] of a target into nr even pieces, into out. */
static size_t split_even(const struct dx_region *r, uint64_t nr,
			 uint64_t min_sz, struct dx_region *out)
{
	uint64_t sz_piece = DX_ALIGN_DOWN(sz_region(r) / nr, min_sz), k;

	for (k = 0; k < nr; k++) {
		out[k] = *r;
		out[k].start = r->start + k * sz_piece;
		if (k + 1 < nr)
			out[k].end = out[k].start + sz_piece;
	}
	return nr;
}

/*
 * Split the cold regions (not accessed, no hit) evenly so that the cold
 * space of all targets gets about DX_SEARCH_PER_MIN_REGION *
 * min_nr_regions regions, each as large as its share of the cold space
 * (half of that for regions cold for DX_COLD_OLD_AGE).  With the periods of
 * cold regions, a cold space is checked 80, 40, 20 and, after 20 s, 10 times
 * per sample by default: as many times as min_nr_regions.
 */
int dx_split_search(struct dx_ctx *ctx)
{
	uint64_t sz_cold = 0, min_sz = ctx->attrs.min_region_sz;
	uint64_t nr_search =
		(uint64_t)DX_SEARCH_PER_MIN_REGION * ctx->attrs.min_nr_regions;
	size_t room = room_for_regions(ctx);
	struct dx_target *t;
	struct dx_region *r;

	if (!has_rule(ctx, DX_RULE_SEARCH))
		return 0;
	dx_for_each_live_target(t, ctx)
		dx_for_each_region(r, t)
			if (searched(r))
				sz_cold += sz_region(r);
	if (!sz_cold)
		return 0;
	dx_for_each_live_target(t, ctx) {
		size_t i, nr_out = 0, cap = t->nr_regions;
		uint64_t *nr_pieces = calloc(t->nr_regions, sizeof(*nr_pieces));
		struct dx_region *out;

		if (!nr_pieces)
			return -ENOMEM;
		/* each cold region gets its share of the searching regions */
		for (i = 0; i < t->nr_regions; i++) {
			uint64_t n;

			r = &t->regions[i];
			nr_pieces[i] = 1;
			if (!searched(r))
				continue;
			n = (uint64_t)(((unsigned __int128)nr_search *
						sz_region(r) +
					sz_cold / 2) /
				       sz_cold);
			if (r->age >= DX_COLD_OLD_AGE)
				n /= 2;
			if (n > sz_region(r) / min_sz)
				n = sz_region(r) / min_sz;
			if (n > 1 && n - 1 <= room) {
				room -= n - 1;
				nr_pieces[i] = n;
				cap += n - 1;
			}
		}
		out = cap > t->nr_regions ? malloc(cap * sizeof(*out)) : NULL;
		if (out) {
			for (i = 0; i < t->nr_regions; i++)
				nr_out += split_even(&t->regions[i],
						     nr_pieces[i], min_sz,
						     out + nr_out);
			dx_target_replace_regions(t, out, nr_out, cap);
		}
		free(nr_pieces);
		if (cap > t->nr_regions && !out)
			return -ENOMEM;
	}
	return 0;
}
