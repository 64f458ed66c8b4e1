// SPDX-License-Identifier: MIT
/*
 * Unit tests of tuning.c: online attribute changes, the kernel's monitoring
 * intervals auto-tuning and the CPU budget.  The expected steps of the
 * intervals goal are worked out by hand from the kernel's formulas
 * (damon_get_intervals_score(), damon_feed_loop_next_input(),
 * damon_get_intervals_adaptation_bp(), kdamond_tune_intervals() of
 * mm/damon/core.c, Linux 7.3); the budget runs on the virtual clock with a
 * CPU cost model.
 *
 * Build and run: make -C csrc test   (AddressSanitizer + UBSan)
 */
#include "../tuning.c"
#include "../sim.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static struct dx_attrs goal_attrs(uint64_t access_bp, uint64_t min_us,
				  uint64_t max_us)
{
	struct dx_attrs a;

	dx_attrs_default(&a); /* 5 ms, 100 ms: 20 samples per aggregation */
	a.min_nr_regions = 3;
	a.intervals_goal.access_bp = access_bp;
	a.intervals_goal.aggrs = 3;
	a.intervals_goal.min_sample_us = min_us;
	a.intervals_goal.max_sample_us = max_us;
	return a;
}

/* A context with one target of regions [pairs[2i], pairs[2i+1]). */
static struct dx_ctx *ctx_with_regions(const struct dx_attrs *a,
				       const uint64_t *pairs,
				       const uint32_t *nr_accesses, size_t nr)
{
	struct dx_range rg = { pairs[0], pairs[2 * nr - 1] };
	struct dx_ctx *ctx = NULL;
	struct dx_target *t;
	size_t i;

	if (dx_ctx_new(&ctx, a, 1) || dx_ctx_add_target(ctx, 0, NULL, &rg, 1))
		exit(2);
	t = &ctx->targets[0];
	dx_target_clear_regions(t);
	for (i = 0; i < nr; i++) {
		dx_target_add_region(t, pairs[2 * i], pairs[2 * i + 1]);
		t->regions[i].nr_accesses = nr_accesses[i];
	}
	return ctx;
}

/* ---------------------------------------------------------------- tests */

static void test_goal_validation(void)
{
	struct dx_attrs a = goal_attrs(400, 5000, 10000000);
	struct dx_ctx *ctx = NULL;

	EXPECT_EQ(dx_attrs_validate(&a), 0);
	/* the kernel refuses a sampling interval outside the goal's range */
	a.sample_us = 4999;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	a = goal_attrs(400, 5000, 10000000);
	a.intervals_goal.min_sample_us = 20000000;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	a = goal_attrs(0, 5000, 10000000);
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	a = goal_attrs(10001, 5000, 10000000);
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	/* no goal: its other fields do not matter */
	a = goal_attrs(0, 0, 0);
	a.intervals_goal.aggrs = 0;
	EXPECT_EQ(dx_attrs_validate(&a), 0);
	a.cpu_budget_bp = 10000;
	EXPECT_EQ(dx_attrs_validate(&a), 0);
	a.cpu_budget_bp = 10001;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 1), -EINVAL);
}

static void test_feed_loop(void)
{
	/* next = max(last * ((goal - score) / goal + 1), 10000), goal 10000 */
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 10000), 100000000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 0), 200000000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 5000), 150000000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 15000), 50000000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 19999), 10000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, 20000), 10000);
	EXPECT_EQ(dx_feed_loop_next_input(100000000, UINT64_MAX), 10000);
	EXPECT_EQ(dx_feed_loop_next_input(30000, 15000), 15000);
	EXPECT_EQ(dx_feed_loop_next_input(12000, 19000), 10000);
	/* no score at all: double, saturated */
	EXPECT_EQ(dx_feed_loop_next_input(UINT64_MAX - 5, 0), UINT64_MAX);
	/* compensation that would overflow is computed the other way round */
	EXPECT_EQ(dx_feed_loop_next_input(UINT64_MAX / 2, 5000),
		  UINT64_MAX / 2 + UINT64_MAX / 2 / 10000 * 5000);
	EXPECT_EQ(dx_feed_loop_next_input(UINT64_MAX - 1, 0), UINT64_MAX);
}

/*
 * One target of 100 pages (409600 bytes), 20 samples per aggregation, a goal
 * of 400 bp: the most access events are 409600 * 20 = 8192000, the goal
 * 8192000 * 400 / 10000 = 327680, and the score 10000 * events / 327680.
 */
static void test_score_and_steps(void)
{
	static const struct {
		uint64_t pairs[4];
		uint32_t nr[2];
		uint64_t min_us, max_us;
		uint64_t score, adaptation_bp, sample_us;
	} cases[] = {
		/*
		 * 10 pages once: 40960 events, score 1250; next input
		 * 1e8 + 1e8 * 8750 / 1e4 = 1.875e8, adaptation 18750:
		 * 5000 us * 1.875
		 */
		{ { 0, 40960, 40960, 409600 },
		  { 1, 0 },
		  5000,
		  10000000,
		  1250,
		  18750,
		  9375 },
		/* the same, capped by max_sample_us */
		{ { 0, 40960, 40960, 409600 },
		  { 1, 0 },
		  5000,
		  6000,
		  1250,
		  18750,
		  6000 },
		/* 40 pages twice: 327680 events, the goal exactly: no step */
		{ { 0, 163840, 163840, 409600 },
		  { 2, 0 },
		  1000,
		  10000000,
		  10000,
		  10000,
		  5000 },
		/*
		 * 40 pages three times: score 15000, next input 5e7,
		 * adaptation 5000, halved towards 10000: 7500
		 */
		{ { 0, 163840, 163840, 409600 },
		  { 3, 0 },
		  1000,
		  10000000,
		  15000,
		  7500,
		  3750 },
		/* twice the goal or more: the smallest step, half */
		{ { 0, 40960, 40960, 409600 },
		  { 20, 0 },
		  1000,
		  10000000,
		  25000,
		  5000,
		  2500 },
		/* the same, held up by min_sample_us */
		{ { 0, 40960, 40960, 409600 },
		  { 20, 0 },
		  5000,
		  10000000,
		  25000,
		  5000,
		  5000 },
		/* nothing found: the largest step, twice */
		{ { 0, 40960, 40960, 409600 },
		  { 0, 0 },
		  5000,
		  10000000,
		  0,
		  20000,
		  10000 },
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dx_attrs a =
			goal_attrs(400, cases[i].min_us, cases[i].max_us);
		struct dx_ctx *ctx =
			ctx_with_regions(&a, cases[i].pairs, cases[i].nr, 2);

		EXPECT_EQ(dx_intervals_score(ctx), cases[i].score);
		EXPECT_EQ(dx_intervals_adaptation_bp(ctx),
			  cases[i].adaptation_bp);
		EXPECT_EQ(dx_tuned_sample_us(ctx), cases[i].sample_us);
		dx_ctx_free(ctx);
	}
}

/*
 * The adaptation of a score, in a closed form of the kernel's rule: below
 * the goal, 20000 - score; above it, half of that added to 5000.
 */
static uint64_t expected_sample_us(const struct dx_region_out *r, size_t nr,
				   uint64_t sample_us, uint64_t nr_samples,
				   const struct dx_intervals_goal *g)
{
	unsigned __int128 events = 0, most = 0;
	uint64_t score, a;
	size_t i;

	for (i = 0; i < nr; i++) {
		events += (unsigned __int128)(r[i].end - r[i].start) *
			  r[i].nr_accesses;
		most += (unsigned __int128)(r[i].end - r[i].start) * nr_samples;
	}
	score = (uint64_t)(events * 10000 / (most * g->access_bp / 10000));
	a = 20000 - (score < 20000 ? score : 20000);
	if (a <= 10000)
		a = 5000 + a / 2;
	sample_us = sample_us * a / 10000;
	if (sample_us > g->max_sample_us)
		sample_us = g->max_sample_us;
	return sample_us < g->min_sample_us ? g->min_sample_us : sample_us;
}

static struct dx_ctx *sim_ctx(const struct dx_attrs *a,
			      const struct dx_sim_range *ranges, size_t nr,
			      uint64_t seed)
{
	struct dx_sim_phase ph = { 1000000000, nr, ranges };
	struct dx_ctx *ctx = NULL;

	if (dx_ctx_new(&ctx, a, seed) || dx_ctx_select_ops(ctx, "sim", NULL))
		exit(2);
	dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
	if (dx_sim_add_target(ctx, 0, 1ULL << 30, 4096, &ph, 1))
		exit(2);
	return ctx;
}

/*
 * In the loop: every third aggregation the intervals take the kernel's step
 * for what that aggregation found (its snapshot), keeping 20 samples per
 * aggregation; in between they stay.
 */
static void test_goal_in_the_loop(void)
{
	/* 1/8 of the space, each page accessed 20 times a second */
	struct dx_sim_range hot = { 0, 128 << 20, 0, 20 };
	struct dx_attrs a = goal_attrs(400, 1000, 10000000);
	struct dx_ctx *ctx = sim_ctx(&a, &hot, 1, 3);
	struct dx_region_out out[1000];
	uint64_t sample_us = 5000, first_us = 0, last_us = 0;
	int i, nr_tunes = 0;

	for (i = 1; i <= 60; i++) {
		struct dx_attrs now;
		uint64_t want = sample_us, s_us, a_us;
		size_t n;

		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
		dx_ctx_snapshot_intervals(ctx, &s_us, &a_us);
		EXPECT_EQ(s_us, sample_us);
		EXPECT_EQ(a_us, sample_us * 20);
		n = dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out));
		if (i % 3 == 0)
			want = expected_sample_us(out, n, sample_us, 20,
						  &a.intervals_goal);
		dx_ctx_attrs(ctx, &now);
		EXPECT_EQ(now.sample_us, want);
		EXPECT_EQ(now.aggr_us, want * 20);
		if (now.sample_us != sample_us)
			nr_tunes++;
		if (i == 3)
			first_us = now.sample_us;
		sample_us = now.sample_us;
		last_us = sample_us;
	}
	EXPECT_EQ(dx_ctx_stats(ctx)->nr_tunings, nr_tunes);
	EXPECT(nr_tunes >= 5);
	/*
	 * At 5 ms a page is found accessed with probability 1 - e^-0.1 =
	 * 9.5%: 1/8 of that, 1.2%, is below 4%, so the intervals grow; they
	 * settle near 4% = 1/8 (1 - e^(-20 s)), s = 18 ms.
	 */
	EXPECT(first_us > 5000);
	EXPECT(last_us > 12000 && last_us < 27000);
	dx_ctx_free(ctx);
}

static void test_set_attrs_rescales(void)
{
	static const uint64_t pairs[] = { 0, 4096, 4096, 8192 };
	static const uint32_t nr[] = { 10, 3 };
	struct dx_attrs a = goal_attrs(400, 1000, 10000000), b;
	struct dx_ctx *ctx = ctx_with_regions(&a, pairs, nr, 2);
	struct dx_region *r = ctx->targets[0].regions;

	a.intervals_goal.aggrs = 0;
	ctx->attrs = a;
	ctx->user_attrs = a;
	ctx->started = true; /* as if between two samples */
	ctx->passed_samples = 5;
	ctx->next_aggr_sample = 20;
	r[0].last_nr_accesses = 6;
	r[0].age = 6;
	r[1].last_nr_accesses = 1;
	r[1].age = 7;
	b = a;
	b.sample_us = 10000;
	b.aggr_us = 200000; /* 20 samples still; ages in halves */
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &b), 0);
	/* counts in samples of 20 stay; the aggregation under way restarts */
	EXPECT_EQ(r[0].nr_accesses, 0);
	EXPECT_EQ(r[0].last_nr_accesses, 6);
	EXPECT_EQ(r[0].nr_accesses_bp, 60000);
	EXPECT_EQ(r[0].age, 3);
	EXPECT_EQ(r[1].age, 3);
	EXPECT_EQ(ctx->next_aggr_sample, 5 + 20);
	EXPECT_EQ(ctx->next_update_sample, 5 + 100);
	/* 10 samples per aggregation: counts halve (6 -> 3000 bp -> 3) */
	b.aggr_us = 100000;
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &b), 0);
	EXPECT_EQ(r[0].last_nr_accesses, 3);
	EXPECT_EQ(r[1].last_nr_accesses, 0);
	EXPECT_EQ(r[0].age, 6);
	/* at the end of an aggregation (the tuner's case) counts are kept */
	r[0].nr_accesses = 7;
	b.sample_us = 5000;
	rescale_regions(ctx, &b, false);
	EXPECT_EQ(r[0].nr_accesses, 14);
	EXPECT_EQ(r[0].nr_accesses_bp, 140000);
	/* once started, the minimum region size is fixed */
	b.min_region_sz = 8192;
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &b), -EBUSY);
	ctx->started = false;
	dx_ctx_free(ctx);
}

/* The CPU share of the model's work between two points of a run. */
static double cpu_share(struct dx_ctx *ctx, uint64_t cpu0, uint64_t t0)
{
	return (double)(dx_ctx_cpu_ns(ctx) - cpu0) / (dx_ctx_now_ns(ctx) - t0);
}

/* Run until context time t_ns. */
static void run_until(struct dx_ctx *ctx, uint64_t t_ns)
{
	while (dx_ctx_now_ns(ctx) < t_ns)
		if (dx_ctx_run_aggregation(ctx) != 1)
			exit(2);
}

#define SEC 1000000000ULL

static const struct dx_cpu_model costly = {
	.per_sample_ns = 50000,
	.per_check_ns = 20000,
	.per_aggr_ns = 300000,
	.per_aggr_region_ns = 2000,
};

/*
 * Under the kernel's rules the defaults cost more than every budget here, so
 * each one binds; damonx's own rules (sampling.c) make fewer checks, and
 * cost about 7.4% at the defaults: a budget above that does not bind (the
 * intervals stay about the user's), one below binds and holds, at shorter
 * intervals than under the kernel's rules.
 */
static void test_budget_is_held(void)
{
	struct dx_sim_range hot = { 0, 128 << 20, 0.5, 0 };
	static const uint32_t budgets_bp[] = { 100, 200, 500, 1000 };
	static const uint32_t rules[] = { 0, DX_RULES_ALL };
	size_t i, k;

	for (k = 0; k < ARRAY_SIZE(rules); k++)
		for (i = 0; i < ARRAY_SIZE(budgets_bp); i++) {
			struct dx_attrs a, now;
			struct dx_ctx *ctx;
			uint64_t cpu0, t0, s_us, a_us;
			double share, budget = budgets_bp[i] / 10000.0;
			bool binds = !rules[k] || budgets_bp[i] <= 500;

			dx_attrs_default(&a);
			a.rules = rules[k];
			a.cpu_budget_bp = budgets_bp[i];
			ctx = sim_ctx(&a, &hot, 1, 5);
			dx_ctx_set_cpu_model(ctx, &costly);
			run_until(ctx, 10 * SEC); /* settling */
			cpu0 = dx_ctx_cpu_ns(ctx);
			t0 = dx_ctx_now_ns(ctx);
			run_until(ctx, 70 * SEC);
			share = cpu_share(ctx, cpu0, t0);
			EXPECT(share < budget * 1.15);
			EXPECT(!binds || share > budget * 0.85);
			dx_ctx_attrs(ctx, &now);
			/* not binding: about the user's interval */
			EXPECT(binds ? now.sample_us > 5000 :
				       now.sample_us < 5250);
			EXPECT_EQ(now.aggr_us, now.sample_us * 20);
			EXPECT_EQ(now.max_nr_regions, 1000);
			dx_ctx_snapshot_intervals(ctx, &s_us, &a_us);
			EXPECT_EQ(a_us, s_us * 20);
			dx_ctx_free(ctx);
		}
}

static void test_budget_settles_quickly(void)
{
	struct dx_sim_range hot = { 0, 128 << 20, 0.5, 0 };
	struct dx_attrs a;
	struct dx_ctx *ctx;
	uint64_t cpu0, t0;
	double share;

	dx_attrs_default(&a);
	a.cpu_budget_bp = 200;
	ctx = sim_ctx(&a, &hot, 1, 6);
	dx_ctx_set_cpu_model(ctx, &costly);
	/* a second's settling: then within 30% over every 5 s */
	run_until(ctx, SEC);
	while (dx_ctx_now_ns(ctx) < 40 * SEC) {
		cpu0 = dx_ctx_cpu_ns(ctx);
		t0 = dx_ctx_now_ns(ctx);
		run_until(ctx, t0 + 5 * SEC);
		share = cpu_share(ctx, cpu0, t0);
		EXPECT(share > 0.02 * 0.7 && share < 0.02 * 1.3);
	}
	dx_ctx_free(ctx);
}

/* Without a budget the intervals are left alone, whatever the CPU costs. */
static void test_no_budget_no_change(void)
{
	struct dx_sim_range hot = { 0, 128 << 20, 0.5, 0 };
	struct dx_attrs a, now;
	struct dx_ctx *ctx;

	dx_attrs_default(&a);
	ctx = sim_ctx(&a, &hot, 1, 5);
	dx_ctx_set_cpu_model(ctx, &costly);
	run_until(ctx, 10 * SEC);
	dx_ctx_attrs(ctx, &now);
	EXPECT_EQ(now.sample_us, 5000);
	EXPECT_EQ(now.aggr_us, 100000);
	EXPECT_EQ(dx_ctx_stats(ctx)->nr_tunings, 0);
	EXPECT(cpu_share(ctx, 0, 0) > 0.05);
	dx_ctx_free(ctx);
}

/*
 * Checks so costly that the longest sampling interval (1 s) cannot hold the
 * budget: the region limit comes down, to min_nr_regions at the least, and
 * the hot set is still found; a larger budget gives the regions back.
 */
static void test_budget_lowers_the_region_limit(void)
{
	static const struct dx_cpu_model slow = {
		.per_check_ns = 4000000,
	};
	struct dx_sim_range hot = { 0, 128 << 20, 0.8, 0 };
	struct dx_region_out out[1000];
	struct dx_attrs a, now;
	struct dx_ctx *ctx;
	uint64_t hot_found = 0;
	size_t n, k;

	dx_attrs_default(&a);
	a.cpu_budget_bp = 100;
	ctx = sim_ctx(&a, &hot, 1, 8);
	dx_ctx_set_cpu_model(ctx, &slow);
	run_until(ctx, 600 * SEC);
	dx_ctx_attrs(ctx, &now);
	EXPECT_EQ(now.sample_us, 1000000);
	EXPECT_EQ(now.aggr_us, 20000000);
	EXPECT(now.max_nr_regions < 100);
	EXPECT(now.max_nr_regions >= 10);
	n = dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out));
	/*
	 * merges stop at the size limit (a tenth of the space each, for
	 * min_nr_regions 10), so a few more regions than the limit may stay
	 */
	EXPECT(n <= 2 * now.max_nr_regions);
	for (k = 0; k < n; k++)
		if (out[k].nr_accesses >= 10)
			hot_found += out[k].end - out[k].start;
	EXPECT(hot_found >= (128ULL << 20) / 2);
	EXPECT(hot_found <= (256ULL << 20));

	a.cpu_budget_bp = 5000;
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &a), 0);
	dx_ctx_attrs(ctx, &now);
	EXPECT_EQ(now.sample_us, 5000);
	EXPECT_EQ(now.max_nr_regions, 1000);
	dx_ctx_free(ctx);
}

/*
 * With an intervals goal, the budget is a ceiling: a budget the goal's
 * intervals stay under changes nothing, one they would exceed holds them.
 */
static void test_budget_caps_the_goal(void)
{
	struct dx_sim_range hot = { 0, 128 << 20, 0, 20 };
	struct dx_attrs a = goal_attrs(400, 1000, 10000000), now;
	struct dx_ctx *free_ctx, *capped;
	uint64_t cpu0, t0;
	int i;

	free_ctx = sim_ctx(&a, &hot, 1, 9);
	a.cpu_budget_bp = 10000;
	capped = sim_ctx(&a, &hot, 1, 9);
	dx_ctx_set_cpu_model(free_ctx, &costly);
	dx_ctx_set_cpu_model(capped, &costly);
	for (i = 0; i < 100; i++) {
		struct dx_attrs x, y;

		EXPECT_EQ(dx_ctx_run_aggregation(free_ctx), 1);
		EXPECT_EQ(dx_ctx_run_aggregation(capped), 1);
		dx_ctx_attrs(free_ctx, &x);
		dx_ctx_attrs(capped, &y);
		EXPECT_EQ(x.sample_us, y.sample_us);
	}
	dx_ctx_free(capped);

	/* the goal settles near 18 ms, at about 5% CPU: a 1% budget holds */
	a.cpu_budget_bp = 100;
	capped = sim_ctx(&a, &hot, 1, 9);
	dx_ctx_set_cpu_model(capped, &costly);
	run_until(capped, 20 * SEC);
	cpu0 = dx_ctx_cpu_ns(capped);
	t0 = dx_ctx_now_ns(capped);
	run_until(capped, 80 * SEC);
	EXPECT(cpu_share(capped, cpu0, t0) < 0.01 * 1.15);
	EXPECT(cpu_share(capped, cpu0, t0) > 0.01 * 0.7);
	dx_ctx_attrs(capped, &now);
	EXPECT(now.sample_us > 27000);
	EXPECT_EQ(now.aggr_us, now.sample_us * 20);
	dx_ctx_free(capped);
	dx_ctx_free(free_ctx);
}

/* Sampling rates found by the rate model of sim. */
static void test_sim_rates(void)
{
	struct dx_sim_range all = { 0, 1ULL << 30, 0, 10 };
	struct dx_attrs a;
	struct dx_ctx *ctx;
	struct dx_region_out out[1000];
	int sample_ms;

	for (sample_ms = 5; sample_ms <= 80; sample_ms *= 4) {
		uint64_t acc = 0, most = 0;
		double want = 1 - exp(-10 * sample_ms / 1000.0);
		int i;
		size_t n, k;

		dx_attrs_default(&a);
		/*
		 * the kernel's rules: each region's count is its own samples
		 * (damonx's cut seeds around pages found accessed, which
		 * weighs a mean over regions, not bytes, towards accesses)
		 */
		a.rules = 0;
		a.sample_us = sample_ms * 1000;
		a.aggr_us = a.sample_us * 20;
		ctx = sim_ctx(&a, &all, 1, 11);
		for (i = 0; i < 50; i++) {
			EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
			n = dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out));
			for (k = 0; k < n; k++) {
				acc += out[k].nr_accesses;
				most += 20;
			}
		}
		EXPECT((double)acc / most > want * 0.85);
		EXPECT((double)acc / most < want * 1.15);
		dx_ctx_free(ctx);
	}
}

int main(void)
{
	if (dx_sim_register())
		return 2;
	RUN(test_goal_validation);
	RUN(test_feed_loop);
	RUN(test_score_and_steps);
	RUN(test_goal_in_the_loop);
	RUN(test_set_attrs_rescales);
	RUN(test_budget_is_held);
	RUN(test_budget_settles_quickly);
	RUN(test_no_budget_no_change);
	RUN(test_budget_lowers_the_region_limit);
	RUN(test_budget_caps_the_goal);
	RUN(test_sim_rates);
	return test_report();
}
