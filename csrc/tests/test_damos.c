// SPDX-License-Identifier: MIT
/*
 * Unit tests of DAMOS (damos.c, damos-quota.c): the kernel's rules for quotas and their
 * priorities, goals, watermarks, filters, the apply interval and the
 * statistics, on fake operations tables and fake /proc and /sys trees.  The
 * file under test is included so that its static functions are reachable.
 *
 * Build and run: make -C csrc test   (AddressSanitizer + UBSan)
 */
#include "../damos.c"
#include "../damos-quota.c"
#include "../sim.h"
#include "test-ctx.h"
#include "test.h"

#include <sys/stat.h>

#define PAGE 4096ULL

static struct dx_ctx *make_ctx(uint32_t min_nr, uint32_t max_nr,
			       uint64_t min_sz)
{
	return test_ctx_new(0, min_nr, max_nr, min_sz);
}

/* A scheme matching every region. */
static struct dx_scheme any_scheme(int action)
{
	struct dx_scheme s = { .max_sz = UINT64_MAX,
			       .max_nr_accesses = UINT32_MAX,
			       .max_age = UINT32_MAX,
			       .action = action };
	return s;
}

static struct dx_scheme_stats stats_of(struct dx_ctx *ctx, size_t i)
{
	struct dx_scheme_stats st = { 0 };

	EXPECT_EQ(dx_ctx_scheme_stats(ctx, i, &st), 0);
	return st;
}

/* ------------------------------------------------------ fake operations */

/* A table that applies pageout and cold, and fails as its targets say. */
static uint64_t acting_apply(struct dx_ctx *ctx, struct dx_target *t,
			     struct dx_region *r, struct dx_damos *d,
			     uint64_t *passed, int *err)
{
	uint64_t sz = r->end - r->start;

	switch (t->id) {
	case 1:
		*err = -EPERM;
		return 0;
	case 2:
		*err = -ENOMEM;
		return sz / 2;
	default:
		return sz;
	}
}

/*
 * Accesses as a fake workload makes them: a sampled address below hot_end
 * (of target 0) is always accessed, every other never.
 */
static uint64_t hot_end;
static int nr_applies_before_stop = -1;

static int fake_check(struct dx_ctx *ctx)
{
	struct dx_target *t;
	struct dx_region *r;
	uint32_t max_nr = 0;

	dx_for_each_live_target(t, ctx) {
		dx_for_each_region(r, t) {
			dx_region_account(ctx, r,
					  t->id == 0 &&
						  r->sampling_addr < hot_end);
			if (r->nr_accesses > max_nr)
				max_nr = r->nr_accesses;
		}
	}
	return (int)max_nr;
}

static uint64_t stopping_apply(struct dx_ctx *ctx, struct dx_target *t,
			       struct dx_region *r, struct dx_damos *d,
			       uint64_t *passed, int *err)
{
	if (nr_applies_before_stop >= 0 && !nr_applies_before_stop--)
		dx_ctx_request_stop(ctx);
	return acting_apply(ctx, t, r, d, passed, err);
}

static const struct dx_operations acting = {
	.name = "acting",
	.check_accesses = fake_check,
	.actions = DX_ACTION_BIT(DX_ACTION_PAGEOUT) |
		   DX_ACTION_BIT(DX_ACTION_COLD) |
		   DX_ACTION_BIT(DX_ACTION_MIGRATE_HOT),
	.apply_scheme = stopping_apply,
};

/* A context on the acting table, targets 0, 1, 2 of nr_pages pages each. */
static struct dx_ctx *acting_ctx_of(uint64_t nr_pages, uint32_t min_nr)
{
	struct dx_ctx *ctx = make_ctx(min_nr, 100, PAGE);
	int64_t id;

	dx_ctx_set_ops(ctx, &acting, NULL);
	dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
	for (id = 0; id < 3; id++) {
		struct dx_range r = { (uint64_t)id << 30,
				      ((uint64_t)id << 30) + nr_pages * PAGE };

		EXPECT_EQ(dx_ctx_add_target(ctx, id, NULL, &r, 1), 0);
	}
	hot_end = 0;
	nr_applies_before_stop = -1;
	return ctx;
}

static struct dx_ctx *acting_ctx(void)
{
	return acting_ctx_of(64, 3);
}

/* A fake /proc and /sys under a temporary directory. */
static char fake_root[64];

static void write_file(const char *rel, const char *text)
{
	char path[256], dir[256], *slash;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fake_root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	for (slash = strchr(dir + strlen(fake_root) + 1, '/'); slash;
	     slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(dir, 0755);
		*slash = '/';
	}
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(2);
	}
	fputs(text, f);
	fclose(f);
}

static void set_meminfo(uint64_t total_kb, uint64_t free_kb)
{
	char text[256];

	snprintf(text, sizeof(text),
		 "MemTotal:       %llu kB\nMemFree:        %llu kB\n"
		 "Active:         300 kB\nInactive:       100 kB\n",
		 (unsigned long long)total_kb, (unsigned long long)free_kb);
	write_file("proc/meminfo", text);
}

static void use_fake_roots(struct dx_ctx *ctx)
{
	char p[128], s[128];

	snprintf(p, sizeof(p), "%s/proc", fake_root);
	snprintf(s, sizeof(s), "%s/sys", fake_root);
	EXPECT_EQ(dx_ctx_set_metric_roots(ctx, p, s), 0);
}

/* --------------------------------------------------------------- tests */

static void test_scheme_accessors(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	struct dx_scheme s = { .min_sz = 0,
			       .max_sz = 100,
			       .max_nr_accesses = 5,
			       .max_age = 9,
			       .action = DX_ACTION_COLD };
	const struct dx_scheme *got;
	struct dx_scheme_stats st;

	dx_ctx_set_ops(ctx, &acting, NULL);
	EXPECT_EQ(dx_ctx_nr_schemes(ctx), 0);
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	s.action = DX_ACTION_NR;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL);
	s.action = -1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL);
	s.action = DX_ACTION_STAT;
	s.min_age = 10;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL);
	EXPECT_EQ(dx_ctx_nr_schemes(ctx), 1);
	got = dx_ctx_scheme(ctx, 0);
	EXPECT(got && got->action == DX_ACTION_COLD && got->max_sz == 100);
	/* statistics start at zero, and a scheme starts active */
	st = stats_of(ctx, 0);
	EXPECT(st.nr_tried == 0 && st.nr_failed == 0 && st.last_errno == 0);
	EXPECT(st.activated);
	EXPECT(dx_ctx_scheme(ctx, 1) == NULL);
	EXPECT_EQ(dx_ctx_scheme_stats(ctx, 1, &st), -EINVAL);
	dx_ctx_free(ctx);
}

/* One table of names each: damo's, in the kernel's order. */
static void test_names(void)
{
	const char *want[] = { "stat",	      "willneed",    "cold",
			       "pageout",     "hugepage",    "nohugepage",
			       "collapse",    "lru_prio",    "lru_deprio",
			       "migrate_hot", "migrate_cold" };
	int i;

	EXPECT_EQ(ARRAY_SIZE(want), DX_ACTION_NR);
	for (i = 0; i < DX_ACTION_NR; i++)
		EXPECT(dx_action_name(i) &&
		       !strcmp(dx_action_name(i), want[i]));
	EXPECT(dx_action_name(DX_ACTION_NR) == NULL);
	EXPECT(dx_action_name(-1) == NULL);
	EXPECT(dx_action_note(DX_ACTION_PAGEOUT) == NULL);
	EXPECT(dx_action_note(DX_ACTION_MIGRATE_COLD) == NULL);
	EXPECT(dx_action_note(DX_ACTION_HUGEPAGE) &&
	       strstr(dx_action_note(DX_ACTION_HUGEPAGE), "collapse"));
	EXPECT(dx_action_note(DX_ACTION_NOHUGEPAGE) &&
	       strstr(dx_action_note(DX_ACTION_NOHUGEPAGE), "process_madvise"));
	EXPECT(dx_action_note(DX_ACTION_LRU_PRIO) &&
	       strstr(dx_action_note(DX_ACTION_LRU_PRIO), "LRU"));
	EXPECT(!strcmp(dx_goal_metric_name(DX_GOAL_SOME_MEM_PSI_US),
		       "some_mem_psi_us"));
	EXPECT(dx_goal_metric_name(DX_GOAL_NR) == NULL);
	EXPECT(!strcmp(dx_filter_type_name(DX_FILTER_HUGEPAGE_SIZE),
		       "hugepage_size"));
	EXPECT(dx_filter_type_name(DX_FILTER_NR) == NULL);
}

/* Each table applies the actions and filters it declares; not others. */
static void test_unsupported_actions_are_refused(void)
{
	static const struct dx_operations no_apply = {
		.name = "no apply",
		.actions = DX_ACTION_BIT(DX_ACTION_COLD),
		.filters = DX_FILTER_BIT(DX_FILTER_ANON),
	};
	struct dx_scheme s = any_scheme(DX_ACTION_STAT);
	struct dx_filter anon = { .type = DX_FILTER_ANON, .matching = true };
	struct dx_filter addr = { .type = DX_FILTER_ADDR,
				  .matching = true,
				  .addr = { 0, PAGE } };
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	int a;

	/* sim applies no action: stat only, and the core's filters only */
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	EXPECT_EQ(dx_ctx_actions(ctx), DX_ACTION_BIT(DX_ACTION_STAT));
	EXPECT_EQ(dx_ctx_filters(ctx), DX_CORE_FILTERS);
	for (a = 0; a < DX_ACTION_NR; a++) {
		s.action = a;
		EXPECT_EQ(dx_ctx_add_scheme(ctx, &s),
			  a == DX_ACTION_STAT ? 0 : -EOPNOTSUPP);
	}
	s.action = DX_ACTION_STAT;
	s.filters = &anon;
	s.nr_filters = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EOPNOTSUPP);
	s.filters = &addr;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_nr_schemes(ctx), 2);
	dx_ctx_free(ctx);

	ctx = make_ctx(3, 10, 1);
	dx_ctx_set_ops(ctx, &acting, NULL);
	s = any_scheme(DX_ACTION_WILLNEED);
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EOPNOTSUPP);
	s.action = DX_ACTION_PAGEOUT;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	dx_ctx_free(ctx);

	/* actions and filters declared without apply_scheme cannot run */
	ctx = make_ctx(3, 10, 1);
	dx_ctx_set_ops(ctx, &no_apply, NULL);
	EXPECT_EQ(dx_ctx_actions(ctx), DX_ACTION_BIT(DX_ACTION_STAT));
	EXPECT_EQ(dx_ctx_filters(ctx), DX_CORE_FILTERS);
	s.action = DX_ACTION_COLD;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EOPNOTSUPP);
	dx_ctx_free(ctx);
}

/* Invalid watermarks, goals and filters are refused when added. */
static void test_invalid_parts_are_refused(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	struct dx_scheme s = any_scheme(DX_ACTION_STAT);
	struct dx_quota_goal goal = { .metric = DX_GOAL_USER_INPUT };
	struct dx_filter f = { .type = DX_FILTER_ADDR, .addr = { 8, 8 } };

	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	s.wmarks = (struct dx_wmarks){ DX_WMARK_FREE_MEM_RATE, 1000, 300, 400,
				       100 };
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL); /* high < mid */
	s.wmarks.interval_us = 0;
	s.wmarks.high = 500;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL); /* no interval */
	s.wmarks = (struct dx_wmarks){ 0 };
	s.goals = &goal;
	s.nr_goals = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL); /* target 0 */
	goal.target_value = 10;
	goal.metric = DX_GOAL_NR;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL);
	s.nr_goals = 0;
	s.filters = &f;
	s.nr_filters = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL); /* empty range */
	s.quota.goal_tuner = 7;
	s.nr_filters = 0;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), -EINVAL);
	EXPECT_EQ(dx_ctx_nr_schemes(ctx), 0);
	dx_ctx_free(ctx);
}

/*
 * Applied, failed: target 0 takes the action, target 1 refuses it (EPERM),
 * target 2 takes it on half of each region and fails on the rest (ENOMEM).
 */
static void test_failures_are_counted(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_ctx *ctx = acting_ctx();
	struct dx_scheme_stats got;
	size_t nr[3];

	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	for (size_t i = 0; i < 3; i++)
		nr[i] = dx_ctx_snapshot_nr_regions(ctx, i);
	got = stats_of(ctx, 0);
	EXPECT_EQ(got.nr_tried, nr[0] + nr[1] + nr[2]);
	EXPECT_EQ(got.sz_tried, 3 * 64 * PAGE);
	EXPECT_EQ(got.nr_applied, nr[0] + nr[2]);
	EXPECT_EQ(got.sz_applied, 64 * PAGE + 32 * PAGE);
	EXPECT_EQ(got.nr_failed, nr[1] + nr[2]);
	EXPECT_EQ(got.last_errno, ENOMEM); /* target 2 comes last */
	/* one pass over the regions of each of the three targets */
	EXPECT_EQ(got.nr_snapshots, 3);
	dx_ctx_free(ctx);
}

/*
 * A region acted on starts ageing anew, as in the kernel's
 * damos_apply_scheme(); stat leaves ages alone.  Regions are visited in turn
 * by every scheme: a later scheme sees the age an earlier one reset.
 */
static void test_acting_resets_the_age(void)
{
	struct dx_scheme old = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_region_out out[100];
	struct dx_ctx *ctx = acting_ctx();
	uint32_t max_age = 0;
	size_t i, n;
	int round;

	old.min_age = 3;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &old), 0);
	old.action = DX_ACTION_STAT;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &old), 0);
	for (round = 0; round < 12; round++) {
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
		n = dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out));
		for (i = 0; i < n; i++)
			max_age = out[i].age > max_age ? out[i].age : max_age;
	}
	/* reported before the schemes act: an age reaches 3, never more */
	EXPECT_EQ(max_age, 3);
	EXPECT(stats_of(ctx, 0).nr_tried > 0);
	EXPECT_EQ(stats_of(ctx, 1).nr_tried, 0);
	dx_ctx_free(ctx);

	/* stat alone: ages grow */
	ctx = acting_ctx();
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &old), 0);
	for (round = 0; round < 12; round++)
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	n = dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out));
	for (i = 0, max_age = 0; i < n; i++)
		max_age = out[i].age > max_age ? out[i].age : max_age;
	EXPECT_EQ(max_age, 12);
	dx_ctx_free(ctx);
}

/* The kernel's damon_hot_score() and the cold score of pageout. */
static void test_scores(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, PAGE);
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_region r = { .start = 0, .end = PAGE };
	struct dx_damos *d;

	dx_ctx_set_ops(ctx, &acting, NULL);
	s.quota.weight_nr_accesses = 1;
	s.quota.weight_age = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[0];
	/* 20 samples per aggregation of 100 ms; at an aggregation's end */
	ctx->next_aggr_sample = 0;
	r.nr_accesses = 20;
	r.age = 0; /* freq 100, age 50: (100 + 50) / 2 * 99 / 100 = 74 */
	EXPECT_EQ(hot_score(ctx, &r, d), 74);
	EXPECT_EQ(dx_damos_score(ctx, &r, d), 99 - 74);
	r.nr_accesses = 0;
	r.age = 100; /* 10 s: ilog2 3 + 1 = 4, cold: (32 - 4) * 100 / 64 = 43 */
	EXPECT_EQ(hot_score(ctx, &r, d), 43 / 2 * 99 / 100);
	/* no weights: every region alike */
	d->s.quota.weight_nr_accesses = 0;
	d->s.quota.weight_age = 0;
	EXPECT_EQ(hot_score(ctx, &r, d), 0);
	/* stat has no priorities */
	d->s.action = DX_ACTION_STAT;
	EXPECT_EQ(dx_damos_score(ctx, &r, d), DX_DAMOS_MAX_SCORE);
	dx_ctx_free(ctx);
}

/*
 * A size quota bounds the bytes acted on per reset interval, counts the
 * intervals it filled, and the next interval starts where the last one
 * stopped.
 */
static void test_size_quota(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_ctx *ctx = acting_ctx_of(64, 8);
	struct dx_scheme_stats st;
	uint64_t first_end;

	s.quota.sz = 16 * PAGE;
	s.quota.reset_interval_ms = 1000; /* ten aggregations */
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	st = stats_of(ctx, 0);
	EXPECT_EQ(st.esz, 16 * PAGE);
	EXPECT_EQ(st.sz_applied, 16 * PAGE);
	EXPECT_EQ(st.sz_tried, 16 * PAGE);
	EXPECT_EQ(dx_ctx_nr_tried_regions(ctx, 0), st.nr_tried);
	first_end = ctx->schemes[0].charge_addr_from;
	EXPECT_EQ(first_end, 16 * PAGE); /* target 0 from its start */
	/* the rest of the interval: nothing more */
	for (int i = 0; i < 9; i++)
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT_EQ(stats_of(ctx, 0).sz_applied, 16 * PAGE);
	EXPECT_EQ(stats_of(ctx, 0).qt_exceeds, 0);
	/* a new interval: where the last one stopped */
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	st = stats_of(ctx, 0);
	EXPECT_EQ(st.qt_exceeds, 1);
	EXPECT_EQ(st.sz_tried, 32 * PAGE);
	EXPECT(dx_ctx_nr_tried_regions(ctx, 0) > 0);
	{
		struct dx_tried_region tr[64];
		size_t n = dx_ctx_tried_regions_fill(ctx, 0, tr, 64);

		EXPECT(n > 0 && tr[0].start == first_end);
		EXPECT_EQ(tr[n - 1].end, 32 * PAGE);
	}
	dx_ctx_free(ctx);
}

/*
 * When a quota binds, the coldest regions go first for pageout (the
 * histogram's minimum score); the hottest for migrate_hot.
 */
static void test_quota_priorities(void)
{
	int actions[] = { DX_ACTION_PAGEOUT, DX_ACTION_MIGRATE_HOT };

	for (size_t a = 0; a < ARRAY_SIZE(actions); a++) {
		struct dx_scheme s = any_scheme(actions[a]);
		struct dx_ctx *ctx = acting_ctx_of(64, 16);
		struct dx_tried_region tr[64];
		size_t n, i;

		hot_end = 32 * PAGE; /* the first half of target 0 is hot */
		s.quota.sz = 8 * PAGE;
		s.quota.reset_interval_ms = 1;
		s.quota.weight_nr_accesses = 1;
		s.quota.weight_age = 0;
		s.filters = &(struct dx_filter){ .type = DX_FILTER_TARGET,
						 .matching = true,
						 .allow = true,
						 .target_idx = 0 };
		s.nr_filters = 1;
		EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
		/*
		 * a window per aggregation; each starts where the last
		 * stopped, and one that starts at the end tries nothing
		 */
		for (int round = 0; round < 5; round++) {
			EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
			n = dx_ctx_tried_regions_fill(ctx, 0, tr, 64);
			EXPECT(round == 4 ? n == 0 : n > 0);
			for (i = 0; i < n; i++) {
				if (actions[a] == DX_ACTION_PAGEOUT)
					EXPECT(tr[i].start >= hot_end);
				else
					EXPECT(tr[i].end <= hot_end);
			}
		}
		EXPECT_EQ(stats_of(ctx, 0).sz_tried, 4 * 8 * PAGE);
		dx_ctx_free(ctx);
	}
}

/* A time quota: the size the throughput of the actions so far allows. */
static void test_time_quota(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_ctx *ctx = acting_ctx();
	uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);

	s.quota.ms = 2;
	s.quota.reset_interval_ms = 100;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	/* nothing charged yet: the kernel's guess, PAGE_SIZE * 1024 per ms */
	EXPECT_EQ(stats_of(ctx, 0).esz, 2 * page * 1024);
	ctx->schemes[0].total_charged_sz = 1000;
	ctx->schemes[0].total_charged_ns = 2000000; /* 500 bytes per ms */
	ctx->schemes[0].charged_from_ns = 0;
	set_effective_quota(ctx, &ctx->schemes[0]);
	/* never below one region */
	EXPECT_EQ(ctx->schemes[0].esz, PAGE);
	ctx->schemes[0].s.quota.ms = 100;
	set_effective_quota(ctx, &ctx->schemes[0]);
	EXPECT_EQ(ctx->schemes[0].esz, 50000);
	/* the size quota still bounds it */
	ctx->schemes[0].s.quota.sz = 40000;
	set_effective_quota(ctx, &ctx->schemes[0]);
	EXPECT_EQ(ctx->schemes[0].esz, 40000);
	dx_ctx_free(ctx);
}

/* Goals: the consist tuner's feedback loop, and the temporal tuner. */
static void test_goals(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_quota_goal g = { .metric = DX_GOAL_USER_INPUT,
				   .target_value = 100,
				   .current_value = 50 };
	struct dx_ctx *ctx = acting_ctx();
	struct dx_damos *d;
	uint64_t v = 0;

	s.quota.reset_interval_ms = 100;
	s.goals = &g;
	s.nr_goals = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[0];
	/* half the goal: the input grows by half, from its minimum */
	set_effective_quota(ctx, d);
	EXPECT_EQ(d->esz_bp, 15000);
	EXPECT_EQ(d->esz, 1);
	set_effective_quota(ctx, d);
	EXPECT_EQ(d->esz_bp, 22500);
	/* the goal met twice over: back to the minimum */
	EXPECT_EQ(dx_ctx_set_goal_value(ctx, 0, 0, 200), 0);
	EXPECT_EQ(dx_ctx_goal_value(ctx, 0, 0, &v), 0);
	EXPECT_EQ(v, 200);
	set_effective_quota(ctx, d);
	EXPECT_EQ(d->esz_bp, 10000);
	EXPECT_EQ(dx_ctx_set_goal_value(ctx, 0, 1, 1), -EINVAL);
	EXPECT_EQ(dx_ctx_set_goal_value(ctx, 1, 0, 1), -EINVAL);
	/* temporal: the whole size quota until the goal is met, then none */
	d->s.quota.goal_tuner = DX_GOAL_TUNER_TEMPORAL;
	d->s.quota.sz = 10 * PAGE;
	dx_ctx_set_goal_value(ctx, 0, 0, 10);
	set_effective_quota(ctx, d);
	EXPECT_EQ(d->esz, 10 * PAGE);
	dx_ctx_set_goal_value(ctx, 0, 0, 100);
	set_effective_quota(ctx, d);
	EXPECT_EQ(d->esz, 0);
	dx_ctx_free(ctx);
}

/* Goal metrics read from fake /proc and /sys files. */
static void test_goal_metrics(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_quota_goal g[4] = {
		{ .metric = DX_GOAL_SOME_MEM_PSI_US, .target_value = 1000 },
		{ .metric = DX_GOAL_NODE_MEM_USED_BP,
		  .target_value = 5000,
		  .nid = 1 },
		{ .metric = DX_GOAL_NODE_MEM_FREE_BP,
		  .target_value = 5000,
		  .nid = 7 },
		{ .metric = DX_GOAL_NODE_MEMCG_USED_BP,
		  .target_value = 5000,
		  .nid = 1,
		  .memcg_path = "work/a" },
	};
	struct dx_ctx *ctx = acting_ctx();
	struct dx_damos *d;

	write_file("proc/pressure/memory",
		   "some avg10=0.00 avg60=0.00 avg300=0.00 total=5000\n"
		   "full avg10=0.00 avg60=0.00 avg300=0.00 total=4000\n");
	write_file("sys/devices/system/node/node1/meminfo",
		   "Node 1 MemTotal:        1000 kB\n"
		   "Node 1 MemFree:          250 kB\n");
	write_file("sys/fs/cgroup/work/a/memory.numa_stat",
		   "anon N0=4096 N1=102400\nfile N0=0 N1=102400\n"
		   "kernel_stack N0=0 N1=0\n");
	use_fake_roots(ctx);
	s.goals = g;
	s.nr_goals = 4;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[0];
	quota_score(ctx, d);
	/* the first PSI reading has no effect: the goal's own value */
	EXPECT_EQ(d->goals[0].current_value, 1000);
	EXPECT_EQ(d->goals[1].current_value, 7500);
	EXPECT_EQ(d->goals[2].current_value, 10000); /* no node 7 */
	/* 200 KiB of 1000 kB */
	EXPECT_EQ(d->goals[3].current_value, 2000);
	write_file("proc/pressure/memory",
		   "some avg10=0.00 avg60=0.00 avg300=0.00 total=5300\n");
	quota_score(ctx, d);
	EXPECT_EQ(d->goals[0].current_value, 300);
	dx_ctx_free(ctx);
}

/*
 * Watermarks: above high or below low the scheme is inactive and monitoring
 * pauses (DX_PAUSED, no sample); between mid and low it is active again.
 */
static void test_watermarks(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_ctx *ctx = acting_ctx();
	uint64_t samples;

	use_fake_roots(ctx);
	s.wmarks = (struct dx_wmarks){ DX_WMARK_FREE_MEM_RATE, 500000, 800, 600,
				       200 };
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	set_meminfo(1000, 900); /* 900 per mille free: above high */
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), DX_PAUSED);
	EXPECT(!stats_of(ctx, 0).activated);
	samples = dx_ctx_stats(ctx)->nr_samples;
	EXPECT_EQ(dx_ctx_now_ns(ctx), 500000000ULL);
	/* between high and mid, inactive: stays inactive */
	set_meminfo(1000, 700);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), DX_PAUSED);
	EXPECT_EQ(dx_ctx_stats(ctx)->nr_samples, samples);
	/* below mid: active, monitoring and acting go on */
	set_meminfo(1000, 500);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT(stats_of(ctx, 0).activated);
	EXPECT(stats_of(ctx, 0).nr_tried > 0);
	/* active between mid and high too; below low: inactive */
	set_meminfo(1000, 700);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	set_meminfo(1000, 100);
	while (dx_ctx_run_aggregation(ctx) == 1)
		; /* until the next check, at most an interval later */
	EXPECT(!stats_of(ctx, 0).activated);
	/* a scheme without watermarks keeps the context monitoring */
	s.wmarks.metric = DX_WMARK_NONE;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	dx_ctx_free(ctx);
}

/* The apply interval: its own pace, faster or slower than aggregations. */
static void test_apply_interval(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_STAT);
	struct dx_attrs a;
	struct dx_ctx *ctx = acting_ctx();

	s.apply_interval_us = 300000; /* every third aggregation */
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	s.apply_interval_us = 50000; /* twice per aggregation */
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	for (int i = 0; i < 6; i++)
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	/* a pass counts once per target */
	EXPECT_EQ(stats_of(ctx, 0).nr_snapshots, 2 * 3);
	EXPECT_EQ(stats_of(ctx, 1).nr_snapshots, 12 * 3);
	/* new intervals: as damon_set_attrs(), the next passes count from now */
	dx_ctx_attrs(ctx, &a);
	a.sample_us *= 2;
	a.aggr_us *= 2;
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &a), 0);
	EXPECT_EQ(ctx->schemes[0].next_apply_sample,
		  ctx->passed_samples + 300000 / a.sample_us);
	EXPECT_EQ(ctx->schemes[1].next_apply_sample,
		  ctx->passed_samples + 50000 / a.sample_us);
	dx_ctx_free(ctx);
}

/*
 * addr and target filters: the core's, first match decides, regions that
 * straddle an address range are split at its edges; what no filter
 * matched is rejected only when the last filter allows.
 */
static void test_core_filters(void)
{
	struct dx_filter f[2] = {
		{ .type = DX_FILTER_ADDR,
		  .matching = true,
		  .allow = true,
		  .addr = { 10 * PAGE + 100, 20 * PAGE } },
		{ .type = DX_FILTER_TARGET, .matching = true, .target_idx = 2 },
	};
	struct dx_scheme s = any_scheme(DX_ACTION_STAT);
	struct dx_ctx *ctx = acting_ctx();
	struct dx_tried_region tr[64];
	size_t n, i;
	uint64_t sz = 0;

	s.filters = f;
	s.nr_filters = 1; /* allow [10, 20) pages: of target 0 */
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	f[0].allow = false; /* reject that, take the rest but target 2 */
	f[1].allow = false;
	s.nr_filters = 2;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	n = dx_ctx_tried_regions_fill(ctx, 0, tr, 64);
	for (i = 0; i < n; i++) {
		EXPECT(tr[i].start % (1ULL << 30) >= 10 * PAGE);
		EXPECT(tr[i].end % (1ULL << 30) <= 20 * PAGE);
		sz += tr[i].end - tr[i].start;
	}
	/* the range starts inside a page: aligned down to the region size */
	EXPECT_EQ(sz, 10 * PAGE);
	EXPECT_EQ(stats_of(ctx, 0).sz_tried, 10 * PAGE);
	/* the last filter rejects: what none matched is allowed */
	EXPECT_EQ(stats_of(ctx, 1).sz_tried, (54 + 64) * PAGE);
	n = dx_ctx_tried_regions_fill(ctx, 1, tr, 64);
	for (i = 0; i < n; i++)
		EXPECT(tr[i].start < (2ULL << 30));
	dx_ctx_free(ctx);
}

/*
 * Page filters: first match decides; what none matched is rejected when
 * the last allows; memory a core allow filter let through is not filtered.
 */
static void test_ops_filters(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	struct dx_filter f[3] = {
		{ .type = DX_FILTER_ANON, .matching = true, .allow = false },
		{ .type = DX_FILTER_HUGEPAGE_SIZE,
		  .matching = true,
		  .allow = true,
		  .sz_min = 2 << 20,
		  .sz_max = 2 << 20 },
		{ .type = DX_FILTER_ADDR,
		  .matching = true,
		  .allow = true,
		  .addr = { 0, PAGE } },
	};
	struct dx_page_info anon = { .kpageflags = KPF_ANON_BIT,
				     .folio_sz = 2 << 20 };
	struct dx_page_info file_thp = { .folio_sz = 2 << 20 };
	struct dx_page_info file_small = { .folio_sz = PAGE };
	struct dx_scheme s = any_scheme(DX_ACTION_STAT);
	static const struct dx_operations paged = {
		.name = "paged",
		.filters = ~0U,
		.apply_scheme = acting_apply,
	};
	struct dx_damos *d;

	dx_ctx_set_ops(ctx, &paged, NULL);
	s.filters = f;
	s.nr_filters = 2;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[0];
	EXPECT(dx_damos_has_ops_filters(d));
	EXPECT(dx_damos_ops_filter_out(d, &anon)); /* the first decides */
	EXPECT(!dx_damos_ops_filter_out(d, &file_thp));
	EXPECT(dx_damos_ops_filter_out(d, &file_small)); /* last allows */
	/* an allow of the core lets everything through */
	s.nr_filters = 3;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[1];
	EXPECT(!d->core_default_reject); /* page filters follow */
	d->core_filters_allowed = true;
	EXPECT(!dx_damos_ops_filter_out(d, &anon));
	/* the opposite: reject what is not young */
	f[0] = (struct dx_filter){ .type = DX_FILTER_YOUNG, .matching = false };
	s.nr_filters = 1;
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	d = &ctx->schemes[2];
	anon.young = true;
	EXPECT(!dx_damos_ops_filter_out(d, &anon));
	EXPECT(dx_damos_ops_filter_out(d, &file_small));
	EXPECT_EQ(dx_damos_ops_filter_types(d), DX_FILTER_BIT(DX_FILTER_YOUNG));
	dx_ctx_free(ctx);
}

/* A stop request stops the actions at once, between two regions. */
static void test_stop_stops_acting(void)
{
	struct dx_scheme s = any_scheme(DX_ACTION_PAGEOUT);
	struct dx_ctx *ctx = acting_ctx();

	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	nr_applies_before_stop = 1;
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT_EQ(stats_of(ctx, 0).nr_tried, 2);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 0);
	dx_ctx_free(ctx);
}

int main(void)
{
	dx_sim_register();
	snprintf(fake_root, sizeof(fake_root), "/tmp/damonx-damos-XXXXXX");
	if (!mkdtemp(fake_root)) {
		perror("mkdtemp");
		return 2;
	}
	RUN(test_scheme_accessors);
	RUN(test_names);
	RUN(test_unsupported_actions_are_refused);
	RUN(test_invalid_parts_are_refused);
	RUN(test_failures_are_counted);
	RUN(test_acting_resets_the_age);
	RUN(test_scores);
	RUN(test_size_quota);
	RUN(test_quota_priorities);
	RUN(test_time_quota);
	RUN(test_goals);
	RUN(test_goal_metrics);
	RUN(test_watermarks);
	RUN(test_apply_interval);
	RUN(test_core_filters);
	RUN(test_ops_filters);
	RUN(test_stop_stops_acting);
	return test_report();
}
