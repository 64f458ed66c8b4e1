// SPDX-License-Identifier: MIT
/*
 * Unit tests of damonx's own rules (sampling.c): which regions are checked
 * in which samples and what a check counts for, when counts are alike, and
 * the cuts around hits, at the edges of accessed runs and in the cold
 * space; then, end to end on the sim backend, that the kernel's rules stay
 * the kernel's and that damonx's find what they are for.
 *
 * Build and run: make -C csrc test   (AddressSanitizer + UBSan)
 */
#include "../sampling.c"
#include "../sim.h"
#include "test-ctx.h"
#include "test.h"

#include <math.h>

/* a target of ctx with regions [pairs[2i], pairs[2i+1]) */
static struct dx_target *add_target(struct dx_ctx *ctx, const uint64_t *pairs,
				    size_t nr_pairs)
{
	struct dx_target *t;
	size_t i;

	EXPECT_EQ(dx_ctx_add_target(ctx, (int64_t)ctx->nr_targets, NULL, NULL,
				    0),
		  0);
	t = &ctx->targets[ctx->nr_targets - 1];
	for (i = 0; i < nr_pairs; i++)
		dx_target_add_region(t, pairs[2 * i], pairs[2 * i + 1]);
	return t;
}

static void expect_cover(const struct dx_target *t, uint64_t start,
			 uint64_t end)
{
	size_t i;

	EXPECT(t->nr_regions > 0);
	EXPECT_EQ(t->regions[0].start, start);
	EXPECT_EQ(t->regions[t->nr_regions - 1].end, end);
	for (i = 0; i < t->nr_regions; i++) {
		EXPECT(t->regions[i].start < t->regions[i].end);
		if (i)
			EXPECT_EQ(t->regions[i].start, t->regions[i - 1].end);
	}
}

/* ---------------------------------------------------------------- tests */

static void test_rules_are_validated(void)
{
	struct dx_attrs a;

	dx_attrs_default(&a);
	EXPECT_EQ(a.rules, DX_RULES_ALL);
	a.rules = 0;
	EXPECT_EQ(dx_attrs_validate(&a), 0);
	a.rules = DX_RULE_SEEDS;
	EXPECT_EQ(dx_attrs_validate(&a), 0);
	a.rules = DX_RULES_ALL << 1;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	/* KEEP belongs to both groups */
	EXPECT(DX_RULE_HIT_GUIDED & DX_RULE_KEEP);
	EXPECT(DX_RULE_ADAPTIVE_CHECKS & DX_RULE_KEEP);
}

/* The checks of a period spread over an aggregation and count for all. */
static void test_planned_checks_and_weights(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULES_ALL, 3, 100, 1);
	uint32_t n, period, phase;

	for (n = 1; n <= 30; n++) {
		for (period = 1; period <= 4 && period <= n; period++) {
			for (phase = 0; phase < period; phase++) {
				struct dx_region r = {
					.period = (uint16_t)period,
					.phase = (uint16_t)phase
				};
				uint32_t j, m = 0, sum = 0;

				for (j = 0; j < n; j++)
					m += (j + phase) % period == 0;
				r.nr_planned =
					nr_planned_checks(n, period, phase);
				EXPECT_EQ(r.nr_planned, m);
				ctx->plan_nr_samples = n;
				for (r.nr_checks = 0; r.nr_checks < m;
				     r.nr_checks++)
					sum += dx_sampling_weight(ctx, &r);
				/* every check found accessed: all n samples */
				EXPECT_EQ(sum, period > 1 ? n : m);
			}
		}
	}
	dx_ctx_free(ctx);
}

/* A region checked in every fourth sample counts 0 to 20, unbiased. */
static void test_counts_scale_to_all_samples(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULES_ALL, 3, 100, 1);
	double sum = 0;
	int round, j;

	ctx->plan_nr_samples = 20;
	for (round = 0; round < 4000; round++) {
		struct dx_region r = { .start = 0, .end = 100, .period = 4 };

		r.phase = (uint16_t)(round % 4);
		r.nr_planned = nr_planned_checks(20, 4, r.phase);
		EXPECT_EQ(r.nr_planned, 5);
		for (j = 0; j < 20; j++) {
			r.skip = (j + r.phase) % 4 != 0;
			/* accessed in 30% of the samples */
			dx_region_account(ctx, &r,
					  !r.skip && dx_rand_range(ctx, 0, 10) <
							     3);
		}
		EXPECT_EQ(r.nr_checks, 5);
		EXPECT(r.nr_accesses <= 20 && r.nr_accesses % 4 == 0);
		EXPECT_EQ(r.nr_accesses_bp, r.nr_accesses * 10000);
		sum += r.nr_accesses;
	}
	/* the mean is 6 of 20 (sd of the mean 0.07) */
	EXPECT(fabs(sum / 4000 - 6.0) < 0.3);
	dx_ctx_free(ctx);
}

static void test_periods_follow_age_and_count(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULES_ALL, 3, 100, 1);
	struct dx_ctx *kernel = test_ctx_new(0, 3, 100, 1);
	struct {
		uint32_t age, last_nr, nr_hits, kind, want;
	} cases[] = {
		/* accessed: by age, keeping 4 hits expected per aggregation */
		{ 0, 20, 20, DX_REGION_PLAIN, 1 },
		{ 5, 20, 20, DX_REGION_PLAIN, 2 },
		{ 10, 20, 20, DX_REGION_PLAIN, 4 },
		{ 10, 10, 10, DX_REGION_PLAIN, 2 },
		{ 10, 7, 7, DX_REGION_PLAIN, 1 },
		{ 10, 1, 1, DX_REGION_PLAIN, 1 },
		/* cold: checked in every sample for 50 aggregations */
		{ 49, 0, 0, DX_REGION_PLAIN, 1 },
		{ 50, 0, 0, DX_REGION_PLAIN, 2 },
		{ 100, 0, 0, DX_REGION_PLAIN, 4 },
		/* new regions are checked in every sample */
		{ 100, 0, 0, DX_REGION_SEED, 1 },
		{ 100, 20, 20, DX_REGION_PROBE, 1 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dx_region r = { .age = cases[i].age,
				       .last_nr_accesses = cases[i].last_nr,
				       .nr_hits = cases[i].nr_hits,
				       .kind = (uint8_t)cases[i].kind };

		EXPECT_EQ(period_of(ctx, &r, 20), cases[i].want);
		EXPECT_EQ(period_of(kernel, &r, 20), 1);
		/* never longer than an aggregation */
		EXPECT(period_of(ctx, &r, 3) <= 3);
	}
	dx_ctx_free(ctx);
	dx_ctx_free(kernel);
}

/* Under the kernel's rules every region is checked, with one draw each. */
static void test_kernel_rules_check_every_region(void)
{
	struct dx_ctx *ctx = test_ctx_new(0, 3, 100, 1);
	struct dx_ctx *again = test_ctx_new(0, 3, 100, 1);
	uint64_t pairs[] = { 0, 100, 100, 300, 300, 1000 };
	struct dx_target *t = add_target(ctx, pairs, 3);
	size_t i;
	int round;

	for (round = 0; round < 30; round++) {
		EXPECT_EQ(dx_sampling_pick(ctx), 3);
		for (i = 0; i < 3; i++) {
			EXPECT(!t->regions[i].skip);
			/* the draws of the kernel's rules: one per region */
			EXPECT_EQ(t->regions[i].sampling_addr,
				  dx_rand_range(again, t->regions[i].start,
						t->regions[i].end));
		}
		if (round % 20 == 19)
			dx_sampling_plan(ctx);
	}
	dx_ctx_free(ctx);
	dx_ctx_free(again);
}

/* Regions of different periods: the checks of a sample, and of an aggregation. */
static void test_pick_follows_the_plan(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULES_ALL, 3, 100, 1);
	uint64_t pairs[] = { 0, 100, 100, 200, 200, 300 };
	struct dx_target *t = add_target(ctx, pairs, 3);
	size_t total = 0;
	int j;

	t->regions[0].age = 0; /* accessed, young: every sample */
	t->regions[0].last_nr_accesses = 20;
	t->regions[1].age = 10; /* accessed, steady: every 4th */
	t->regions[1].last_nr_accesses = 20;
	t->regions[2].age = 60; /* cold, stable: every 2nd */
	dx_sampling_plan(ctx);
	EXPECT_EQ(t->regions[0].period, 1);
	EXPECT_EQ(t->regions[1].period, 4);
	EXPECT_EQ(t->regions[2].period, 2);
	for (j = 0; j < 20; j++) {
		size_t nr = dx_sampling_pick(ctx);
		size_t i;

		total += nr;
		EXPECT_EQ(nr, ctx->nr_sample_checks);
		for (i = 0; i < 3; i++) {
			struct dx_region *r = &t->regions[i];

			if (!r->skip)
				EXPECT(r->sampling_addr >= r->start &&
				       r->sampling_addr < r->end);
			dx_region_account(ctx, r, true);
		}
	}
	EXPECT_EQ(total, 20 + 5 + 10);
	EXPECT_EQ(t->nr_checks, 35);
	/* every check found accessed: 20 of 20 for each */
	EXPECT_EQ(t->regions[0].nr_accesses, 20);
	EXPECT_EQ(t->regions[1].nr_accesses, 20);
	EXPECT_EQ(t->regions[2].nr_accesses, 20);
	EXPECT_EQ(t->regions[1].nr_hits, 5);
	dx_ctx_free(ctx);
}

static void test_counts_alike(void)
{
	struct dx_ctx *kernel = test_ctx_new(0, 3, 100, 1);
	struct dx_ctx *noise = test_ctx_new(DX_RULE_NOISE, 3, 100, 1);

	noise->plan_nr_samples = 20;
	/* the kernel's threshold */
	EXPECT(dx_counts_alike(kernel, 10, 20, 12, 20, 2));
	EXPECT(!dx_counts_alike(kernel, 10, 20, 13, 20, 2));
	EXPECT(!dx_counts_alike(NULL, 10, 20, 13, 20, 2));
	/* 10 and 14 of 20 differ by noise: 2 sd is 6.1 */
	EXPECT(dx_counts_alike(noise, 10, 20, 14, 20, 1));
	EXPECT(!dx_counts_alike(noise, 10, 20, 17, 20, 1));
	/* fewer checks, more noise */
	EXPECT(dx_counts_alike(noise, 8, 5, 16, 5, 1));
	/* a count of 0 has no noise of its own: 0 and 4 of 20 differ */
	EXPECT(dx_counts_alike(noise, 0, 20, 2, 20, 1));
	EXPECT(!dx_counts_alike(noise, 0, 20, 4, 20, 1));
	/* a region found cold and one clearly accessed, few checks */
	EXPECT(!dx_counts_alike(noise, 0, 5, 8, 10, 1));
	/* not checked at all: the threshold alone */
	EXPECT(!dx_counts_alike(noise, 0, 0, 4, 20, 1));
	dx_ctx_free(kernel);
	dx_ctx_free(noise);
}

/* KEEP: a region just missed is not merged into cold ones; means round. */
static void test_keep_merges(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULE_KEEP, 3, 100, 1);
	uint64_t pairs[] = { 0, 100, 100, 200, 200, 300, 300, 400 };
	struct dx_target *t = add_target(ctx, pairs, 4);

	ctx->plan_nr_samples = 20;
	/* region 1 was accessed in the last aggregation, reads 0 now */
	t->regions[1].last_nr_accesses = 10;
	/* regions 2 and 3: 1 and 0 accesses, merged: 0.5 rounds to 1 */
	t->regions[2].nr_accesses = 1;
	t->regions[2].last_nr_accesses = 1;
	t->regions[3].last_nr_accesses = 1;
	dx_merge_regions(ctx, 1, UINT64_MAX);
	EXPECT_EQ(t->nr_regions, 3);
	EXPECT_EQ(t->regions[0].end, 100);
	EXPECT_EQ(t->regions[1].end, 200);
	EXPECT_EQ(t->regions[2].start, 200);
	EXPECT_EQ(t->regions[2].nr_accesses, 1);
	dx_ctx_free(ctx);

	/*
	 * a count of 1 and eight of 0, merged one by one: the mean of the run
	 * (1/9) rounds to 0, not each mean of two (1/2, then 2/3...) to 1
	 */
	ctx = test_ctx_new(DX_RULE_KEEP, 3, 100, 1);
	t = add_target(ctx, NULL, 0);
	for (int k = 0; k < 9; k++)
		dx_target_add_region(t, k * 100, (k + 1) * 100);
	ctx->plan_nr_samples = 20;
	t->regions[0].nr_accesses = 1;
	dx_merge_regions(ctx, 2, UINT64_MAX);
	EXPECT_EQ(t->nr_regions, 1);
	EXPECT_EQ(t->regions[0].nr_accesses, 0);
	dx_ctx_free(ctx);

	/* the kernel's rules merge all four, and round 0.25 down */
	ctx = test_ctx_new(0, 3, 100, 1);
	t = add_target(ctx, pairs, 4);
	t->regions[1].last_nr_accesses = 10;
	t->regions[2].nr_accesses = 1;
	dx_merge_regions(ctx, 1, UINT64_MAX);
	EXPECT_EQ(t->nr_regions, 1);
	EXPECT_EQ(t->regions[0].nr_accesses, 0);
	dx_ctx_free(ctx);
}

/*
 * A sparse region of t (1 hit in 20 checks, at hit), after the plan of the
 * aggregation (which sets the size of seeds and clears the counters).
 */
static void plan_with_sparse_hit(struct dx_ctx *ctx, struct dx_target *t,
				 size_t i, uint64_t hit)
{
	dx_sampling_plan(ctx);
	t->regions[i].nr_hits = 1;
	t->regions[i].nr_checks = 20;
	t->regions[i].last_nr_accesses = 1;
	t->regions[i].hit_addr = hit;
}

/* SEEDS: a sparse region is cut around the page found accessed. */
static void test_seed_around_a_hit(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULE_SEEDS, 3, 100, 4096);
	uint64_t pairs[] = { 0, 1 << 30, 1 << 30, 2ULL << 30 };
	struct dx_target *t = add_target(ctx, pairs, 2);
	uint64_t hit = (123456789ULL / 4096) * 4096 + 100, page = hit - 100;

	/* region 0: 1 hit in 20 checks; region 1: dense, 10 in 20 */
	plan_with_sparse_hit(ctx, t, 0, hit);
	/* a 1/65,536 share of the 2 GiB monitored */
	EXPECT_EQ(ctx->sz_seed, 32768);
	t->regions[1].nr_hits = 10;
	t->regions[1].nr_checks = 20;
	t->regions[1].last_nr_accesses = 10;
	t->regions[1].hit_addr = (1ULL << 30) + 8192;
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 4);
	expect_cover(t, 0, 2ULL << 30);
	/* the seed is centred on the page found accessed */
	EXPECT_EQ(t->regions[1].start, page - 16384);
	EXPECT_EQ(t->regions[1].end, page + 16384);
	EXPECT_EQ(t->regions[1].kind, DX_REGION_SEED);
	EXPECT_EQ(t->regions[0].kind, DX_REGION_PLAIN);
	EXPECT_EQ(t->regions[2].kind, DX_REGION_PLAIN);
	/* the dense region is not cut */
	EXPECT_EQ(t->regions[3].start, 1ULL << 30);
	/* the pieces keep the history of the region they were cut from */
	EXPECT_EQ(t->regions[1].last_nr_accesses, 1);
	/* a seed is checked in every sample, however old */
	t->regions[1].age = 1000;
	dx_sampling_plan(ctx);
	EXPECT_EQ(t->regions[1].period, 1);
	dx_ctx_free(ctx);

	/* a hit on the first page: the seed is the first piece */
	ctx = test_ctx_new(DX_RULE_SEEDS, 3, 100, 4096);
	t = add_target(ctx, pairs, 1);
	plan_with_sparse_hit(ctx, t, 0, 5);
	EXPECT_EQ(ctx->sz_seed, 16384);
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 2);
	expect_cover(t, 0, 1 << 30);
	EXPECT_EQ(t->regions[0].end, 16384);
	EXPECT_EQ(t->regions[0].kind, DX_REGION_SEED);
	dx_ctx_free(ctx);

	/* a hit on the last page: the seed is the last piece */
	ctx = test_ctx_new(DX_RULE_SEEDS, 3, 100, 4096);
	t = add_target(ctx, pairs, 1);
	plan_with_sparse_hit(ctx, t, 0, (1 << 30) - 1);
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 2);
	EXPECT_EQ(t->regions[1].start, (1 << 30) - 16384);
	EXPECT_EQ(t->regions[1].kind, DX_REGION_SEED);
	dx_ctx_free(ctx);

	/*
	 * a hit 3 seeds from an accessed neighbour: the seed reaches it (the
	 * edge of what is accessed); 5 seeds away it does not
	 */
	ctx = test_ctx_new(DX_RULE_SEEDS, 3, 100, 4096);
	t = add_target(ctx, pairs, 2);
	plan_with_sparse_hit(ctx, t, 1, (1ULL << 30) + 3 * 32768);
	t->regions[0].last_nr_accesses = 15;
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 3);
	EXPECT_EQ(t->regions[1].start, 1ULL << 30);
	EXPECT_EQ(t->regions[1].end, (1ULL << 30) + 3 * 32768 + 16384);
	EXPECT_EQ(t->regions[1].kind, DX_REGION_SEED);
	dx_ctx_free(ctx);
	ctx = test_ctx_new(DX_RULE_SEEDS, 3, 100, 4096);
	t = add_target(ctx, pairs, 2);
	plan_with_sparse_hit(ctx, t, 1, (1ULL << 30) + 5 * 32768);
	t->regions[0].last_nr_accesses = 15;
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 4);
	EXPECT_EQ(t->regions[2].start, (1ULL << 30) + 5 * 32768 - 16384);
	EXPECT_EQ(t->regions[2].kind, DX_REGION_SEED);
	dx_ctx_free(ctx);

	/* without the rule, or with no room under max_nr_regions: no cut */
	ctx = test_ctx_new(DX_RULE_PROBES, 3, 100, 4096);
	t = add_target(ctx, pairs, 2);
	plan_with_sparse_hit(ctx, t, 0, hit);
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 2);
	dx_ctx_free(ctx);
	ctx = test_ctx_new(DX_RULE_SEEDS, 3, 3, 4096);
	t = add_target(ctx, pairs, 2);
	plan_with_sparse_hit(ctx, t, 0, hit);
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 2);
	dx_ctx_free(ctx);
}

/* PROBES: cold neighbours of a young accessed run are cut at its edges. */
static void test_probes_grow_a_young_run(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULE_PROBES, 3, 100, 1);
	/* cold | run of two accessed (40 bytes) | cold, too small | far */
	uint64_t pairs[] = { 0, 1000, 1000, 1010, 1010, 1040, 1040, 1100 };
	struct dx_target *t = add_target(ctx, pairs, 4);

	t->regions[1].last_nr_accesses = 10;
	t->regions[2].last_nr_accesses = 12;
	t->regions[2].age = 4;
	t->regions[1].age = 0;
	EXPECT_EQ(dx_split_guided(ctx), 0);
	expect_cover(t, 0, 1100);
	/* left: a probe of 40 at the edge; right: 60 < 3 * 40, no cut */
	EXPECT_EQ(t->nr_regions, 5);
	EXPECT_EQ(t->regions[1].start, 960);
	EXPECT_EQ(t->regions[1].end, 1000);
	EXPECT_EQ(t->regions[1].kind, DX_REGION_PROBE);
	EXPECT_EQ(t->regions[0].kind, DX_REGION_PLAIN);
	EXPECT_EQ(t->regions[4].start, 1040);
	dx_ctx_free(ctx);

	/* a run that is old (its edges known) gets no probe */
	ctx = test_ctx_new(DX_RULE_PROBES, 3, 100, 1);
	t = add_target(ctx, pairs, 4);
	t->regions[1].last_nr_accesses = 10;
	t->regions[1].age = 5;
	EXPECT_EQ(dx_split_guided(ctx), 0);
	EXPECT_EQ(t->nr_regions, 4);
	dx_ctx_free(ctx);
}

/* SEARCH: the cold space gets its share of 8 * min_nr_regions regions. */
static void test_search_splits_the_cold_space(void)
{
	struct dx_ctx *ctx = test_ctx_new(DX_RULE_SEARCH, 10, 1000, 4096);
	uint64_t pairs[] = { 0, 3ULL << 30, 3ULL << 30, 4ULL << 30 };
	struct dx_target *t = add_target(ctx, pairs, 2), *u;
	size_t i, nr_cold = 0;

	u = add_target(ctx, (const uint64_t[]){ 0, 4ULL << 30 }, 1);
	t = &ctx->targets[0]; /* the array moved */
	t->regions[1].last_nr_accesses = 5; /* accessed: not searched */
	EXPECT_EQ(dx_split_search(ctx), 0);
	expect_cover(t, 0, 4ULL << 30);
	expect_cover(u, 0, 4ULL << 30);
	/* 7 GiB of cold space in 80 pieces: 34 and 46 */
	for (i = 0; i < t->nr_regions; i++)
		nr_cold += !t->regions[i].last_nr_accesses;
	EXPECT_EQ(nr_cold, 34);
	EXPECT_EQ(u->nr_regions, 46);
	EXPECT_EQ(t->regions[t->nr_regions - 1].start, 3ULL << 30);
	dx_ctx_free(ctx);

	/* max_nr_regions holds */
	ctx = test_ctx_new(DX_RULE_SEARCH, 10, 20, 4096);
	t = add_target(ctx, pairs, 2);
	EXPECT_EQ(dx_split_search(ctx), 0);
	EXPECT(t->nr_regions <= 20);
	dx_ctx_free(ctx);
}

/* Run a sim context until now_s; the last snapshot's regions into out. */
static size_t run_sim(struct dx_ctx *ctx, double now_s,
		      struct dx_region_out *out, size_t cap)
{
	while (dx_ctx_now_ns(ctx) < now_s * 1e9)
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	return dx_ctx_snapshot_fill(ctx, 0, out, cap);
}

static struct dx_ctx *sim_ctx(uint32_t rules, uint64_t size,
			      const struct dx_sim_range *hot, uint64_t seed)
{
	struct dx_sim_phase ph = { 1000000000, 1, hot };
	struct dx_attrs a;
	struct dx_ctx *ctx = NULL;

	dx_attrs_default(&a);
	a.rules = rules;
	EXPECT_EQ(dx_ctx_new(&ctx, &a, seed), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
	EXPECT_EQ(dx_sim_add_target(ctx, 0, size, 4096, &ph, 1), 0);
	return ctx;
}

/* Bytes of out with nr_accesses > 0, and of those inside [lo, hi). */
static void found_bytes(const struct dx_region_out *out, size_t n, uint64_t lo,
			uint64_t hi, uint64_t *found, uint64_t *inside)
{
	size_t i;

	*found = *inside = 0;
	for (i = 0; i < n; i++) {
		uint64_t s = out[i].start > lo ? out[i].start : lo;
		uint64_t e = out[i].end < hi ? out[i].end : hi;

		if (!out[i].nr_accesses)
			continue;
		*found += out[i].end - out[i].start;
		if (s < e)
			*inside += e - s;
	}
}

/*
 * 4 MiB accessed with p = 0.5 in 64 GiB: damonx's rules find it within 10 s
 * and keep it, with checks and regions to spare; the kernel's do not.
 */
static void test_small_hot_set_end_to_end(void)
{
	static struct dx_region_out out[1000];
	uint64_t lo = 21ULL << 30 | 123 << 20, hi = lo + (4 << 20);
	struct dx_sim_range hot = { lo, hi, 0.5, 0 };
	uint64_t found, inside, kernel_checks;
	struct dx_ctx *ctx;
	size_t n;

	ctx = sim_ctx(0, 64ULL << 30, &hot, 3);
	n = run_sim(ctx, 10, out, ARRAY_SIZE(out));
	kernel_checks = dx_ctx_stats(ctx)->nr_region_checks;
	n = run_sim(ctx, 30, out, ARRAY_SIZE(out));
	found_bytes(out, n, lo, hi, &found, &inside);
	EXPECT(inside < (hi - lo) * 8 / 10 || inside < found * 8 / 10);
	dx_ctx_free(ctx);

	ctx = sim_ctx(DX_RULES_ALL, 64ULL << 30, &hot, 3);
	n = run_sim(ctx, 10, out, ARRAY_SIZE(out));
	found_bytes(out, n, lo, hi, &found, &inside);
	EXPECT(inside >= (hi - lo) * 8 / 10);
	EXPECT(found && inside >= found * 8 / 10);
	EXPECT(n <= 1000);
	EXPECT(dx_ctx_stats(ctx)->nr_region_checks <= 4 * kernel_checks);
	n = run_sim(ctx, 30, out, ARRAY_SIZE(out));
	found_bytes(out, n, lo, hi, &found, &inside);
	EXPECT(inside >= (hi - lo) * 8 / 10 && inside >= found * 8 / 10);
	dx_ctx_free(ctx);
}

/* Whatever the rules, regions never exceed max_nr_regions. */
static void test_max_nr_regions_holds(void)
{
	struct dx_sim_range hot[] = { { 1 << 20, 9 << 20, 0.5, 0 },
				      { 100 << 20, 400 << 20, 0.05, 0 },
				      { 500 << 20, 501 << 20, 1.0, 0 } };
	struct dx_sim_phase ph = { 1000000000, 3, hot };
	uint32_t rules[] = { DX_RULES_ALL, DX_RULE_HIT_GUIDED,
			     DX_RULE_SEARCH | DX_RULE_SEEDS };
	size_t i;
	int round;

	for (i = 0; i < ARRAY_SIZE(rules); i++) {
		struct dx_attrs a;
		struct dx_ctx *ctx = NULL;

		dx_attrs_default(&a);
		a.rules = rules[i];
		a.max_nr_regions = 30;
		EXPECT_EQ(dx_ctx_new(&ctx, &a, 9), 0);
		EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
		dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
		EXPECT_EQ(dx_sim_add_target(ctx, 0, 1 << 30, 4096, &ph, 1), 0);
		for (round = 0; round < 100; round++) {
			EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
			EXPECT(dx_ctx_nr_regions(ctx) <= 30);
			EXPECT(dx_ctx_snapshot_nr_regions(ctx, 0) <= 30);
			expect_cover(&ctx->targets[0], 0, 1 << 30);
		}
		dx_ctx_free(ctx);
	}
}

/* The checks of each target's aggregation, as snapshots report them. */
static void test_checks_per_target(void)
{
	struct dx_sim_range hot = { 0, 1 << 20, 1.0, 0 };
	struct dx_sim_phase ph = { 1000000000, 1, &hot };
	struct dx_attrs a;
	struct dx_ctx *ctx = NULL;
	uint64_t before = 0;
	int round;

	dx_attrs_default(&a);
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 5), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
	EXPECT_EQ(dx_sim_add_target(ctx, 0, 1 << 30, 4096, &ph, 1), 0);
	EXPECT_EQ(dx_sim_add_target(ctx, 1, 1 << 28, 4096, &ph, 1), 0);
	EXPECT_EQ(dx_ctx_snapshot_nr_checks(ctx, 0), 0);
	for (round = 0; round < 30; round++) {
		uint64_t total = dx_ctx_stats(ctx)->nr_region_checks;

		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
		EXPECT_EQ(dx_ctx_snapshot_nr_checks(ctx, 0) +
				  dx_ctx_snapshot_nr_checks(ctx, 1),
			  dx_ctx_stats(ctx)->nr_region_checks - total);
		EXPECT(dx_ctx_snapshot_nr_checks(ctx, 1) > 0);
		before = total;
	}
	EXPECT(before > 0);
	EXPECT_EQ(dx_ctx_snapshot_nr_checks(ctx, 2), 0);
	dx_ctx_free(ctx);
}

int main(void)
{
	if (dx_sim_register())
		return 2;
	RUN(test_rules_are_validated);
	RUN(test_planned_checks_and_weights);
	RUN(test_counts_scale_to_all_samples);
	RUN(test_periods_follow_age_and_count);
	RUN(test_kernel_rules_check_every_region);
	RUN(test_pick_follows_the_plan);
	RUN(test_counts_alike);
	RUN(test_keep_merges);
	RUN(test_seed_around_a_hit);
	RUN(test_probes_grow_a_young_run);
	RUN(test_search_splits_the_cold_space);
	RUN(test_small_hot_set_end_to_end);
	RUN(test_max_nr_regions_holds);
	RUN(test_checks_per_target);
	return test_report();
}
