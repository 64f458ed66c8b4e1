// SPDX-License-Identifier: MIT
/*
 * Unit tests of the core's rules, in the spirit of the kernel's DAMON kunit
 * tests: small tables of regions in, regions expected out.  The file under
 * test is included so that its static functions are reachable.  The minimum
 * region size is a parameter, so the tables can use small numbers.
 *
 * Build and run: make -C csrc test   (AddressSanitizer + UBSan)
 */
#include "../core.c"
#include "../sim.h"
#include "test-ctx.h"
#include "test.h"

#include <signal.h>

/* a target with regions [pairs[2i], pairs[2i+1]) */
static struct dx_target make_target(const uint64_t *pairs, size_t nr_pairs)
{
	struct dx_target t = { 0 };
	size_t i;

	for (i = 0; i < nr_pairs; i++)
		dx_target_add_region(&t, pairs[2 * i], pairs[2 * i + 1]);
	return t;
}

static void expect_regions(struct dx_target *t, const uint64_t *pairs,
			   size_t nr_pairs)
{
	size_t i;

	EXPECT_EQ(t->nr_regions, nr_pairs);
	if (t->nr_regions != nr_pairs)
		return;
	for (i = 0; i < nr_pairs; i++) {
		EXPECT_EQ(t->regions[i].start, pairs[2 * i]);
		EXPECT_EQ(t->regions[i].end, pairs[2 * i + 1]);
	}
}

static void expect_sorted_cover(struct dx_target *t, uint64_t start,
				uint64_t end)
{
	size_t i;

	EXPECT(t->nr_regions > 0);
	if (!t->nr_regions)
		return;
	EXPECT_EQ(t->regions[0].start, start);
	EXPECT_EQ(t->regions[t->nr_regions - 1].end, end);
	for (i = 0; i < t->nr_regions; i++) {
		EXPECT(t->regions[i].start < t->regions[i].end);
		if (i)
			EXPECT_EQ(t->regions[i].start, t->regions[i - 1].end);
	}
}

/*
 * The rules of the contexts the tests make: the kernel's (0), or, in a
 * second run of the tests that must hold under them too, damonx's own.
 */
static uint32_t rules_under_test;

static struct dx_ctx *make_ctx(uint32_t min_nr, uint32_t max_nr,
			       uint64_t min_sz)
{
	return test_ctx_new(rules_under_test, min_nr, max_nr, min_sz);
}

/* ---------------------------------------------------------------- tests */

static void test_attrs_validation(void)
{
	struct dx_attrs a;

	dx_attrs_default(&a);
	EXPECT_EQ(dx_attrs_validate(&a), 0);
	a.min_nr_regions = 2;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL); /* min >= 3 */
	dx_attrs_default(&a);
	a.min_nr_regions = 20;
	a.max_nr_regions = 10;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL); /* min <= max */
	dx_attrs_default(&a);
	a.sample_us = a.aggr_us + 1;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL); /* sample <= aggr */
	dx_attrs_default(&a);
	a.ops_update_us = 0;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL); /* intervals > 0 */
	dx_attrs_default(&a);
	a.sample_us = 0;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL);
	dx_attrs_default(&a);
	a.min_region_sz = 3000;
	EXPECT_EQ(dx_attrs_validate(&a), -EINVAL); /* power of two */
	dx_attrs_default(&a);
	a.min_nr_regions = a.max_nr_regions = 3;
	EXPECT_EQ(dx_attrs_validate(&a), 0);
}

static void test_split_at(void)
{
	uint64_t in[] = { 0, 100 }, want[] = { 0, 25, 25, 100 };
	struct dx_target t = make_target(in, 1);

	t.regions[0].nr_accesses = 42;
	t.regions[0].nr_accesses_bp = 420000;
	t.regions[0].last_nr_accesses = 15;
	t.regions[0].age = 7;
	EXPECT_EQ(dx_split_region_at(&t, 0, 25), 0);
	expect_regions(&t, want, 2);
	/* the new region inherits the access history */
	EXPECT_EQ(t.regions[1].nr_accesses, 42);
	EXPECT_EQ(t.regions[1].nr_accesses_bp, 420000);
	EXPECT_EQ(t.regions[1].last_nr_accesses, 15);
	EXPECT_EQ(t.regions[1].age, 7);
	/* no empty pieces */
	EXPECT_EQ(dx_split_region_at(&t, 0, 0), -EINVAL);
	EXPECT_EQ(dx_split_region_at(&t, 0, 25), -EINVAL);
	dx_target_clear_regions(&t);
}

static void check_split_evenly(uint64_t start, uint64_t end, size_t nr_pieces)
{
	uint64_t in[] = { start, end }, width = (end - start) / nr_pieces;
	struct dx_target t = make_target(in, 1);
	size_t i;

	EXPECT_EQ(dx_split_evenly(&t, 0, nr_pieces, 1), 0);
	EXPECT_EQ(t.nr_regions, nr_pieces);
	for (i = 0; i < t.nr_regions; i++) {
		EXPECT_EQ(t.regions[i].start, start + i * width);
		EXPECT_EQ(t.regions[i].end,
			  i == nr_pieces - 1 ? end : start + (i + 1) * width);
	}
	dx_target_clear_regions(&t);
}

static void test_split_evenly(void)
{
	uint64_t in[] = { 0, 100 };
	struct dx_target t = make_target(in, 1);

	/* zero pieces, or pieces smaller than the minimum region size */
	EXPECT_EQ(dx_split_evenly(&t, 0, 0, 1), -EINVAL);
	EXPECT_EQ(dx_split_evenly(&t, 0, 10, 4096), -EINVAL);
	expect_regions(&t, in, 1);
	dx_target_clear_regions(&t);

	check_split_evenly(0, 100, 10);
	check_split_evenly(5, 59, 5);
	check_split_evenly(0, 3, 2);
	check_split_evenly(0, 1 << 30, 10);
}

static void test_merge_two(void)
{
	uint64_t in[] = { 0, 100, 100, 300 }, want[] = { 0, 300 };
	struct dx_target t = make_target(in, 2);

	t.regions[0].nr_accesses = 10;
	t.regions[0].age = 4;
	t.regions[1].nr_accesses = 20;
	t.regions[1].age = 1;
	dx_merge_two(&t, 0);
	expect_regions(&t, want, 1);
	/* size-weighted averages: (10*100 + 20*200) / 300, (4*100 + 1*200) / 300 */
	EXPECT_EQ(t.regions[0].nr_accesses, 16);
	EXPECT_EQ(t.regions[0].nr_accesses_bp, 160000);
	EXPECT_EQ(t.regions[0].age, 2);
	dx_target_clear_regions(&t);
}

static void test_merge_threshold(void)
{
	uint64_t in[] = { 0,   100, 100, 112, 114, 122, 122, 130,
			  130, 156, 156, 170, 170, 184, 184, 230 };
	uint32_t nrs[] = { 0, 0, 10, 10, 20, 30, 1, 2 };
	/* 114 is not adjacent to 112; 20 vs 10 and 30 vs 20 exceed 9 */
	uint64_t want[] = { 0, 112, 114, 130, 130, 156, 156, 170, 170, 230 };
	struct dx_target t = make_target(in, 8);
	size_t i;

	for (i = 0; i < 8; i++) {
		t.regions[i].nr_accesses = nrs[i];
		t.regions[i].last_nr_accesses = nrs[i];
	}
	dx_merge_regions_of(&t, 9, 9999, true);
	expect_regions(&t, want, 5);
	/* unchanged access counts: every region grew one aggregation older */
	for (i = 0; i < t.nr_regions; i++)
		EXPECT_EQ(t.regions[i].age, 1);
	dx_target_clear_regions(&t);

	/* the size limit stops a merge that the threshold would allow */
	{
		uint64_t in2[] = { 0, 100, 100, 200 };
		struct dx_target t2 = make_target(in2, 2);

		dx_merge_regions_of(&t2, 9, 150, true);
		expect_regions(&t2, in2, 2);
		dx_merge_regions_of(&t2, 9, 200, true);
		EXPECT_EQ(t2.nr_regions, 1);
		dx_target_clear_regions(&t2);
	}
	/* a difference equal to the threshold still merges */
	{
		uint64_t in4[] = { 0, 100, 100, 200 };
		struct dx_target t4 = make_target(in4, 2);

		t4.regions[1].nr_accesses = 9;
		dx_merge_regions_of(&t4, 9, 9999, false);
		expect_regions(&t4, (const uint64_t[]){ 0, 200 }, 1);
		EXPECT_EQ(t4.regions[0].nr_accesses, 4); /* (0 + 9) / 2 */
		EXPECT_EQ(t4.regions[0].age, 0); /* not counted */
		/* merging again finds nothing left to merge */
		dx_merge_regions_of(&t4, 9, 9999, false);
		expect_regions(&t4, (const uint64_t[]){ 0, 200 }, 1);
		EXPECT_EQ(t4.regions[0].nr_accesses, 4);
		dx_target_clear_regions(&t4);
	}
	/* a jump larger than the threshold restarts the age */
	{
		uint64_t in3[] = { 0, 100 };
		struct dx_target t3 = make_target(in3, 1);

		t3.regions[0].age = 5;
		t3.regions[0].last_nr_accesses = 2;
		t3.regions[0].nr_accesses = 12;
		dx_merge_regions_of(&t3, 9, 9999, true);
		EXPECT_EQ(t3.regions[0].age, 0);
		dx_target_clear_regions(&t3);
	}
}

/*
 * Ages count aggregations: when max_nr_regions forces more merge passes, only
 * the first one ages the regions, as the kernel's kdamond_merge_regions()
 * (count_age) does since Linux 6.8.
 */
static void test_age_counts_once_per_aggregation(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	struct dx_region *r;
	size_t i;

	dx_ctx_add_target(ctx, 0, NULL, NULL, 0);
	for (i = 0; i < 40; i++) {
		dx_target_add_region(&ctx->targets[0], i * 10, (i + 1) * 10);
		ctx->targets[0].regions[i].nr_accesses = (i % 4) * 6;
		ctx->targets[0].regions[i].last_nr_accesses = (i % 4) * 6;
		ctx->targets[0].regions[i].age = 3;
	}
	dx_merge_regions(ctx, 0, UINT64_MAX);
	/* it took passes with thresholds 0, 1, 2, 4, 8 and 16 */
	EXPECT(ctx->targets[0].nr_regions <= 10);
	dx_for_each_region(r, &ctx->targets[0])
		EXPECT_EQ(r->age, 4);
	dx_ctx_free(ctx);
}

static void test_merge_enforces_max_nr_regions(void)
{
	/* 40 regions alternating 0 and 8 accesses, max 10: passes double the
	 * threshold until the count fits */
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	size_t i;

	dx_ctx_add_target(ctx, 0, NULL, NULL, 0);
	for (i = 0; i < 40; i++) {
		dx_target_add_region(&ctx->targets[0], i * 10, (i + 1) * 10);
		ctx->targets[0].regions[i].nr_accesses = (i % 2) * 8;
	}
	dx_merge_regions(ctx, 0, UINT64_MAX);
	EXPECT(ctx->targets[0].nr_regions <= 10);
	expect_sorted_cover(&ctx->targets[0], 0, 400);
	dx_ctx_free(ctx);
}

static void test_split_regions_of(void)
{
	struct dx_ctx *ctx = make_ctx(3, 1000, 1);
	uint64_t small[] = { 0, 2 }, big[] = { 0, 220 };
	struct dx_target t;
	int round;

	/* a region of two minimum sizes or less is never split */
	t = make_target(small, 1);
	dx_split_regions_of(ctx, &t, 2);
	expect_regions(&t, small, 1);
	dx_target_clear_regions(&t);

	for (round = 0; round < 100; round++) {
		size_t i;

		t = make_target(big, 1);
		t.regions[0].nr_accesses = 3;
		t.regions[0].age = 9;
		dx_split_regions_of(ctx, &t, 3);
		EXPECT(t.nr_regions >= 1 && t.nr_regions <= 3);
		expect_sorted_cover(&t, 0, 220);
		for (i = 0; i < t.nr_regions; i++) {
			EXPECT_EQ(t.regions[i].nr_accesses, 3);
			EXPECT_EQ(t.regions[i].age, 9);
		}
		/* the first cut lies between 10% and 90% */
		if (t.nr_regions >= 2) {
			uint64_t right =
				220 - t.regions[t.nr_regions - 1].start;

			EXPECT(right >= 22 && right <= 198);
		}
		dx_target_clear_regions(&t);
	}
	dx_ctx_free(ctx);
}

static size_t count_after_split(uint32_t max_nr, size_t nr_regions,
				size_t last_nr_regions)
{
	struct dx_ctx *ctx = make_ctx(3, max_nr, 1);
	size_t i, n;

	dx_ctx_add_target(ctx, 0, NULL, NULL, 0);
	for (i = 0; i < nr_regions; i++)
		dx_target_add_region(&ctx->targets[0], i * 1000,
				     (i + 1) * 1000);
	ctx->last_nr_regions = last_nr_regions;
	dx_split_regions(ctx);
	n = ctx->targets[0].nr_regions;
	expect_sorted_cover(&ctx->targets[0], 0, nr_regions * 1000);
	dx_ctx_free(ctx);
	return n;
}

static void test_split_gates(void)
{
	/* above max/2: no split at all */
	EXPECT_EQ(count_after_split(100, 51, 0), 51);
	/* at max/2: split in two */
	EXPECT_EQ(count_after_split(100, 50, 0), 100);
	/* count unchanged since the last split and below max/3: in three */
	EXPECT_EQ(count_after_split(100, 30, 30), 90);
	/* unchanged but not below max/3: only in two */
	EXPECT_EQ(count_after_split(100, 33, 33), 66);
	/* changed since the last split: in two */
	EXPECT_EQ(count_after_split(100, 30, 20), 60);
}

static void test_three_regions(void)
{
	/* 10-20-25, 200-210-220, 300-305, 307-330 */
	struct dx_range maps[] = { { 10, 20 },	 { 20, 25 },   { 200, 210 },
				   { 210, 220 }, { 300, 305 }, { 307, 330 } };
	struct dx_range out[3];

	EXPECT_EQ(dx_three_regions(maps, ARRAY_SIZE(maps), 1, out), 3);
	EXPECT_EQ(out[0].start, 10);
	EXPECT_EQ(out[0].end, 25);
	EXPECT_EQ(out[1].start, 200);
	EXPECT_EQ(out[1].end, 220);
	EXPECT_EQ(out[2].start, 300);
	EXPECT_EQ(out[2].end, 330);

	/* page alignment: ranges grow outward to whole pages */
	{
		struct dx_range m[] = { { 0x1000, 0x1800 },
					{ 0x10000, 0x11000 },
					{ 0x7f000000, 0x7f001000 } };

		EXPECT_EQ(dx_three_regions(m, 3, 0x1000, out), 3);
		EXPECT_EQ(out[0].end, 0x2000);
		EXPECT_EQ(out[1].start, 0x10000);
		EXPECT_EQ(out[2].end, 0x7f001000);
	}
	/*
	 * fewer than two gaps: the blocks of mappings themselves (the kernel
	 * leaves such a process without regions)
	 */
	{
		struct dx_range m[] = { { 0, 10 }, { 20, 25 }, { 25, 30 } };

		EXPECT_EQ(dx_three_regions(m, 3, 1, out), 2);
		EXPECT_EQ(out[0].start, 0);
		EXPECT_EQ(out[0].end, 10);
		EXPECT_EQ(out[1].start, 20);
		EXPECT_EQ(out[1].end, 30);
		EXPECT_EQ(dx_three_regions(&m[1], 2, 1, out), 1);
		EXPECT_EQ(out[0].start, 20);
		EXPECT_EQ(out[0].end, 30);
		EXPECT_EQ(dx_three_regions(m, 1, 4, out), 1);
		EXPECT_EQ(out[0].end,
			  12); /* aligned up, as three regions are */
		EXPECT_EQ(dx_three_regions(m, 0, 1, out), -EINVAL);
	}
	/* unsorted mappings */
	{
		struct dx_range m[] = { { 20, 30 }, { 0, 10 } };

		EXPECT_EQ(dx_three_regions(m, 2, 1, out), -EINVAL);
	}
}

static void test_find_range(void)
{
	struct dx_range r[] = { { 10, 20 }, { 20, 25 }, { 40, 50 } };

	EXPECT_EQ(dx_find_range(r, 3, 10), 0);
	EXPECT_EQ(dx_find_range(r, 3, 19), 0);
	EXPECT_EQ(dx_find_range(r, 3, 20), 1);
	EXPECT_EQ(dx_find_range(r, 3, 49), 2);
	EXPECT_EQ((long long)dx_find_range(r, 3, 9), -1);
	EXPECT_EQ((long long)dx_find_range(r, 3, 25), -1); /* a hole */
	EXPECT_EQ((long long)dx_find_range(r, 3, 50), -1);
	EXPECT_EQ((long long)dx_find_range(r, 0, 15), -1);

	/* the first range that ends after an address: holds it, or is above */
	EXPECT_EQ(dx_first_range_after(r, 3, 0), 0);
	EXPECT_EQ(dx_first_range_after(r, 3, 19), 0);
	EXPECT_EQ(dx_first_range_after(r, 3, 20), 1);
	EXPECT_EQ(dx_first_range_after(r, 3, 30), 2); /* in the hole */
	EXPECT_EQ(dx_first_range_after(r, 3, 49), 2);
	EXPECT_EQ(dx_first_range_after(r, 3, 50), 3);
	EXPECT_EQ(dx_first_range_after(r, 0, 15), 0);
	{
		/* many ranges: every lookup agrees with a linear scan */
		static struct dx_range many[1000];
		size_t i, j;

		for (i = 0; i < 1000; i++) {
			many[i].start = i * 100 + (i % 3) * 10;
			many[i].end = many[i].start + 50 + (i % 7);
		}
		for (i = 0; i < 100000; i += 7) {
			for (j = 0; j < 1000 && many[j].end <= i; j++)
				;
			EXPECT_EQ(dx_first_range_after(many, 1000, i), j);
		}
	}
}

static void check_apply_three(const struct dx_range *three,
			      const uint64_t *want, size_t nr_want)
{
	/* 10-20-30, 50-55-57-59, 70-80-90-100 */
	uint64_t in[] = { 10, 20, 20, 30, 50, 55, 55, 57,
			  57, 59, 70, 80, 80, 90, 90, 100 };
	struct dx_target t = make_target(in, 8);

	t.regions[0].nr_accesses = 5;
	EXPECT_EQ(dx_set_regions(&t, three, 3, 1), 0);
	expect_regions(&t, want, nr_want);
	dx_target_clear_regions(&t);
}

static void test_apply_three_regions(void)
{
	struct dx_range a[] = { { 5, 27 }, { 45, 55 }, { 73, 104 } };
	uint64_t wa[] = { 5, 20, 20, 27, 45, 55, 73, 80, 80, 90, 90, 104 };
	struct dx_range b[] = { { 5, 27 }, { 56, 57 }, { 65, 104 } };
	uint64_t wb[] = { 5, 20, 20, 27, 56, 57, 65, 80, 80, 90, 90, 104 };
	struct dx_range c[] = { { 5, 27 }, { 61, 63 }, { 65, 104 } };
	uint64_t wc[] = { 5, 20, 20, 27, 61, 63, 65, 80, 80, 90, 90, 104 };
	struct dx_range d[] = { { 5, 7 }, { 30, 32 }, { 65, 68 } };
	uint64_t wd[] = { 5, 7, 30, 32, 65, 68 };

	check_apply_three(a, wa, 6);
	check_apply_three(b, wb, 6);
	check_apply_three(c, wc, 6);
	check_apply_three(d, wd, 3);

	/* holes inside a range are filled; history of survivors is kept */
	{
		uint64_t in[] = { 4, 16, 24, 32 },
			 want[] = { 8, 16, 16, 24, 24, 28 };
		struct dx_range r = { 8, 28 };
		struct dx_target t = make_target(in, 2);

		t.regions[1].nr_accesses = 7;
		EXPECT_EQ(dx_set_regions(&t, &r, 1, 1), 0);
		expect_regions(&t, want, 3);
		EXPECT_EQ(t.regions[2].nr_accesses, 7);
		EXPECT_EQ(t.regions[1].nr_accesses, 0);
		dx_target_clear_regions(&t);
	}
	/* overlapping or unsorted ranges are refused */
	{
		struct dx_range bad[] = { { 10, 30 }, { 20, 40 } };
		struct dx_target t = { 0 };

		EXPECT_EQ(dx_set_regions(&t, bad, 2, 1), -EINVAL);
	}
}

static void test_init_regions(void)
{
	struct dx_ctx *ctx = make_ctx(10, 1000, 4096);
	struct dx_range ranges[] = { { 0x10000, 0x20000 },
				     { 0x100000, 0x100000 + (1 << 20) },
				     { 0x7ff000000, 0x7ff001000 } };

	dx_ctx_add_target(ctx, 0, NULL, NULL, 0);
	EXPECT_EQ(dx_init_regions(ctx, &ctx->targets[0], ranges, 3), 0);
	/* about min_nr_regions pieces, every range covered, page aligned */
	EXPECT(ctx->targets[0].nr_regions >= 9);
	{
		size_t i;
		uint64_t covered = 0;

		for (i = 0; i < ctx->targets[0].nr_regions; i++) {
			struct dx_region *r = &ctx->targets[0].regions[i];

			EXPECT_EQ(r->start % 4096, 0);
			EXPECT_EQ(r->end % 4096, 0);
			covered += r->end - r->start;
		}
		EXPECT_EQ(covered, 0x10000 + (1 << 20) + 0x1000);
	}
	dx_ctx_free(ctx);
}

/*
 * The length of the moving sum's window: aggr_us / sample_us capped to 32
 * bits, never truncated (a window of 0 would divide by zero).
 */
static void test_max_nr_accesses(void)
{
	struct dx_attrs a;
	struct dx_ctx *ctx = NULL;
	struct dx_region r = { .start = 0, .end = 10 };

	dx_attrs_default(&a);
	EXPECT_EQ(dx_max_nr_accesses(&a), 20);
	a.sample_us = 1;
	a.aggr_us = 1ULL << 32;
	EXPECT_EQ(dx_max_nr_accesses(&a), UINT32_MAX);
	a.aggr_us = (1ULL << 32) + 5;
	EXPECT_EQ(dx_max_nr_accesses(&a), UINT32_MAX);
	a.aggr_us = UINT64_MAX;
	EXPECT_EQ(dx_max_nr_accesses(&a), UINT32_MAX);

	a.aggr_us = 1ULL << 32;
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 1), 0);
	r.last_nr_accesses = 7;
	r.nr_accesses_bp = 70000;
	dx_region_account(ctx, &r, true);
	/* 70000 - 7 * 10000 / (2^32 - 1) + 10000 */
	EXPECT_EQ(r.nr_accesses_bp, 80000);
	EXPECT_EQ(r.nr_accesses, 1);
	dx_ctx_free(ctx);
}

static void test_access_rate(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1);
	struct dx_region r = { .start = 0, .end = 10 };
	int i;

	/* aggr/sample = 20 samples per aggregation */
	for (i = 0; i < 20; i++)
		dx_region_account(ctx, &r, i % 2);
	EXPECT_EQ(r.nr_accesses, 10);
	EXPECT_EQ(r.nr_accesses_bp, 100000);
	/* next aggregation: the moving sum forgets the old one gradually */
	r.last_nr_accesses = r.nr_accesses;
	r.nr_accesses = 0;
	dx_region_account(ctx, &r, false);
	EXPECT_EQ(r.nr_accesses_bp, 100000 - 10 * 10000 / 20);
	dx_ctx_free(ctx);
}

static void test_rand_range(void)
{
	struct dx_ctx *ctx = make_ctx(3, 10, 1), *again = make_ctx(3, 10, 1);
	int i, seen[10] = { 0 };

	for (i = 0; i < 10000; i++) {
		uint64_t v = dx_rand_range(ctx, 1, 10);

		EXPECT(v >= 1 && v < 10);
		seen[v]++;
	}
	for (i = 1; i < 10; i++)
		EXPECT(seen[i] > 800);
	EXPECT_EQ(dx_rand_range(ctx, 5, 5), 5);
	/* the same seed gives the same sequence */
	ctx = (dx_ctx_free(ctx), make_ctx(3, 10, 1));
	for (i = 0; i < 100; i++)
		EXPECT_EQ(dx_rand_u64(ctx), dx_rand_u64(again));
	dx_ctx_free(ctx);
	dx_ctx_free(again);
}

/* End to end on the sim backend, through the public API: regions stay within
 * the limits, cover the address space, and the hot range shows up as
 * accessed. */
static void test_loop_with_sim(void)
{
	struct dx_attrs a;
	struct dx_ctx *ctx = NULL;
	struct dx_sim_range hot = { 128 << 20, 256 << 20, 0.9, 0 };
	struct dx_sim_phase ph = { 10000000, 1, &hot };
	struct dx_region_out out[100];
	uint64_t start_ns, end_ns;
	size_t n = 0;
	int i;

	dx_attrs_default(&a);
	a.max_nr_regions = 100;
	a.rules = rules_under_test;
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 7), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	dx_ctx_set_clock(ctx, DX_CLOCK_VIRTUAL);
	EXPECT_EQ(dx_sim_add_target(ctx, 0, 1ULL << 30, 4096, &ph, 1), 0);
	EXPECT(!dx_ctx_snapshot_span(ctx, &start_ns, &end_ns));
	for (i = 0; i < 50; i++) {
		EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
		EXPECT(dx_ctx_snapshot_span(ctx, &start_ns, &end_ns));
		EXPECT_EQ(end_ns - start_ns, 100000 * 1000);
		n = dx_ctx_snapshot_nr_regions(ctx, 0);
		EXPECT(n >= 1 && n <= 100);
		EXPECT_EQ(dx_ctx_snapshot_fill(ctx, 0, out, ARRAY_SIZE(out)),
			  n);
		EXPECT_EQ(out[0].start, 0);
		EXPECT_EQ(out[n - 1].end, 1ULL << 30);
		/*
		 * the moving sum, reported too: at the end of an aggregation
		 * it equals nr_accesses (20 samples divide 10000 evenly)
		 */
		for (size_t k = 0; k < n; k++)
			EXPECT_EQ(out[k].nr_accesses_bp,
				  out[k].nr_accesses * 10000);
	}
	EXPECT_EQ(dx_ctx_stats(ctx)->nr_aggregations, 50);
	EXPECT_EQ(dx_ctx_now_ns(ctx), 50ULL * 100000 * 1000);
	{
		uint64_t hot_found = 0;
		size_t k;

		for (k = 0; k < n; k++)
			if (out[k].nr_accesses >= 10)
				hot_found += out[k].end - out[k].start;
		EXPECT(hot_found >= (128ULL << 20) * 9 / 10);
		EXPECT(hot_found <= (128ULL << 20) * 11 / 10);
	}
	/* a short buffer gets what fits; no counters for sim */
	EXPECT_EQ(dx_ctx_snapshot_fill(ctx, 0, out, 1), n > 1 ? 1 : n);
	EXPECT_EQ(dx_ctx_snapshot_nr_regions(ctx, 1), 0);
	EXPECT_EQ(dx_ctx_ops_counters(ctx, NULL, 0), 0);
	dx_ctx_request_stop(ctx);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 0);
	dx_ctx_free(ctx);

	/* invalid workloads */
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 7), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), 0);
	hot.end = 2ULL << 30;
	EXPECT_EQ(dx_sim_add_target(ctx, 0, 1ULL << 30, 4096, &ph, 1), -EINVAL);
	EXPECT_EQ(dx_sim_add_target(ctx, 0, 1ULL << 30, 3000, &ph, 1), -EINVAL);
	EXPECT_EQ(dx_ctx_nr_targets(ctx), 0);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), -EINVAL); /* no target */
	dx_ctx_free(ctx);
}

/* A table that counts the core's calls, to see which entries run when. */
static int nr_init_calls, nr_prepare_calls;

static int counting_init(struct dx_ctx *ctx)
{
	nr_init_calls++;
	return 0;
}

static int counting_prepare(struct dx_ctx *ctx)
{
	nr_prepare_calls++;
	return 0;
}

static bool valid_unless_id_1(struct dx_ctx *ctx, struct dx_target *t)
{
	return t->id != 1;
}

static void test_registry_and_tables(void)
{
	static const struct dx_operations counting = {
		.name = "counting",
		.init = counting_init,
		.prepare_access_checks = counting_prepare,
		.target_valid = valid_unless_id_1,
	};
	static const struct dx_operations impostor = { .name = "counting" };
	struct dx_range two[] = { { 0, 1 << 20 }, { 2 << 20, 3 << 20 } };
	struct dx_ctx *ctx = make_ctx(4, 100, 4096);
	struct dx_target *t;
	struct dx_region *r;
	size_t i, nr_seen;

	/* sim registered in main(); this one is new */
	EXPECT(dx_find_ops("sim") != NULL);
	EXPECT_EQ(dx_sim_register(), 0); /* again: nothing happens */
	EXPECT(dx_find_ops("counting") == NULL);
	EXPECT_EQ(dx_register_ops(&counting), 0);
	EXPECT_EQ(dx_register_ops(&counting), 0);
	EXPECT_EQ(dx_register_ops(&impostor), -EEXIST);
	EXPECT(dx_find_ops("counting") == &counting);
	for (i = 0, nr_seen = 0; i < dx_nr_ops(); i++)
		nr_seen += !strcmp(dx_ops_name(i), "counting");
	EXPECT_EQ(nr_seen, 1);
	EXPECT(dx_ops_name(dx_nr_ops()) == NULL);

	EXPECT_EQ(dx_ctx_select_ops(ctx, "no such ops", NULL), -ENOENT);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "counting", NULL), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "sim", NULL), -EBUSY);
	/* a target added with ranges starts with them, split evenly */
	EXPECT_EQ(dx_ctx_add_target(ctx, 0, NULL, two, 2), 0);
	EXPECT_EQ(dx_ctx_add_target(ctx, 1, NULL, two, 2), 0);
	EXPECT_EQ(dx_ctx_nr_regions(ctx), 8);
	expect_regions(&ctx->targets[0],
		       (const uint64_t[]){ 0, 1 << 19, 1 << 19, 1 << 20,
					   2 << 20, 5 << 19, 5 << 19, 3 << 20 },
		       4);
	/* unsorted ranges: nothing is added */
	{
		struct dx_range bad[] = { two[1], two[0] };

		EXPECT_EQ(dx_ctx_add_target(ctx, 2, NULL, bad, 2), -EINVAL);
		EXPECT_EQ(dx_ctx_nr_targets(ctx), 2);
	}

	/* the iterators see every target, or the live ones only */
	ctx->clock = DX_CLOCK_VIRTUAL;
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT_EQ(nr_init_calls, 1);
	EXPECT_EQ(nr_prepare_calls, 20);
	EXPECT(dx_ctx_target_live(ctx, 0));
	EXPECT(!dx_ctx_target_live(ctx, 1));
	EXPECT_EQ(dx_ctx_target_id(ctx, 1), 1);
	EXPECT_EQ(dx_ctx_nr_live_targets(ctx), 1);
	nr_seen = 0;
	dx_for_each_target(t, ctx)
		nr_seen++;
	EXPECT_EQ(nr_seen, 2);
	nr_seen = 0;
	dx_for_each_live_target(t, ctx)
		dx_for_each_region(r, t)
			nr_seen++;
	EXPECT_EQ(nr_seen, ctx->targets[0].nr_regions);
	EXPECT_EQ(dx_ctx_add_target(ctx, 3, NULL, NULL, 0), -EBUSY);
	dx_ctx_free(ctx);
}

static void set_intervals(struct dx_ctx *ctx, uint64_t sample_us,
			  uint64_t aggr_us)
{
	struct dx_attrs a = ctx->attrs;

	a.sample_us = sample_us;
	a.aggr_us = aggr_us;
	EXPECT_EQ(dx_ctx_set_attrs(ctx, &a), 0);
}

/* A context of the given operations, one 1 MiB target, the real clock. */
static struct dx_ctx *real_time_ctx(const struct dx_operations *ops,
				    uint64_t sample_us, uint64_t aggr_us)
{
	struct dx_range range = { 0, 1 << 20 };
	struct dx_ctx *ctx = make_ctx(3, 10, 4096);

	EXPECT_EQ(dx_register_ops(ops), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, ops->name, NULL), 0);
	EXPECT_EQ(dx_ctx_add_target(ctx, 0, NULL, &range, 1), 0);
	set_intervals(ctx, sample_us, aggr_us);
	ctx->clock = DX_CLOCK_REAL;
	return ctx;
}

/*
 * A slow pass over the regions does not lengthen the sampling interval: a
 * page is watched from when its accessed bit is cleared, so the checks come
 * one interval after the clearing began, or right after it ended when it
 * took longer than the interval.
 */
static uint64_t prepare_began_ns, prepare_ns, window_ns[2];
static int nr_windows;

static int slow_prepare(struct dx_ctx *ctx)
{
	struct timespec ts = dx_ns_to_timespec(prepare_ns);

	prepare_began_ns = dx_clock_ns(CLOCK_MONOTONIC);
	nanosleep(&ts, NULL);
	return 0;
}

static int timed_check(struct dx_ctx *ctx)
{
	if (nr_windows < 2)
		window_ns[nr_windows++] =
			dx_clock_ns(CLOCK_MONOTONIC) - prepare_began_ns;
	return 0;
}

static void test_sampling_window(void)
{
	static const struct dx_operations slow = {
		.name = "slow-prepare",
		.prepare_access_checks = slow_prepare,
		.check_accesses = timed_check,
	};
	const uint64_t ms = 1000000;
	struct dx_ctx *ctx = real_time_ctx(&slow, 40000, 80000);

	/* clearing takes 25 ms of a 40 ms interval: 40 ms, not 65 */
	prepare_ns = 25 * ms;
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT_EQ(nr_windows, 2);
	EXPECT(window_ns[0] >= 40 * ms && window_ns[0] < 60 * ms);
	/* clearing takes longer than the interval: the checks follow it */
	set_intervals(ctx, 5000, 10000);
	prepare_ns = 30 * ms;
	nr_windows = 0;
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), 1);
	EXPECT(window_ns[1] >= 30 * ms && window_ns[1] < 45 * ms);
	dx_ctx_free(ctx);
}

/*
 * A signal that comes while the loop works, not while it sleeps, still cuts
 * the next sleep short: the run returns -EINTR at once, not at the end of a
 * ten-second aggregation, and the handler has run.
 */
static volatile sig_atomic_t nr_usr1;

static void on_usr1(int sig)
{
	nr_usr1++;
}

static int signalling_prepare(struct dx_ctx *ctx)
{
	raise(SIGUSR1);
	return 0;
}

static void test_a_signal_during_the_checks_ends_the_next_sleep(void)
{
	static const struct dx_operations signalling = {
		.name = "signalling",
		.prepare_access_checks = signalling_prepare,
	};
	struct sigaction sa = { .sa_handler = on_usr1 }, old;
	struct dx_ctx *ctx = real_time_ctx(&signalling, 5000000, 10000000);
	sigset_t mask;
	uint64_t t0;

	sigaction(SIGUSR1, &sa, &old);
	t0 = dx_clock_ns(CLOCK_MONOTONIC);
	EXPECT_EQ(dx_ctx_run_aggregation(ctx), -EINTR);
	EXPECT(dx_clock_ns(CLOCK_MONOTONIC) - t0 < 1000000000ULL);
	EXPECT_EQ(nr_usr1, 1);
	/* the caller's mask is back: nothing left blocked */
	pthread_sigmask(SIG_SETMASK, NULL, &mask);
	EXPECT(!sigismember(&mask, SIGUSR1) && !sigismember(&mask, SIGINT));
	sigaction(SIGUSR1, &old, NULL);
	dx_ctx_free(ctx);
}

int main(void)
{
	if (dx_sim_register())
		return 2;
	RUN(test_attrs_validation);
	RUN(test_split_at);
	RUN(test_split_evenly);
	RUN(test_merge_two);
	RUN(test_merge_threshold);
	RUN(test_merge_enforces_max_nr_regions);
	RUN(test_age_counts_once_per_aggregation);
	RUN(test_split_regions_of);
	RUN(test_split_gates);
	RUN(test_three_regions);
	RUN(test_find_range);
	RUN(test_apply_three_regions);
	RUN(test_init_regions);
	RUN(test_max_nr_accesses);
	RUN(test_access_rate);
	RUN(test_rand_range);
	RUN(test_loop_with_sim);
	RUN(test_registry_and_tables);
	RUN(test_sampling_window);
	RUN(test_a_signal_during_the_checks_ends_the_next_sleep);
	/* what holds under damonx's own rules as well (sampling.c) */
	rules_under_test = DX_RULES_ALL;
	RUN(test_merge_enforces_max_nr_regions);
	RUN(test_age_counts_once_per_aggregation);
	RUN(test_access_rate);
	RUN(test_loop_with_sim);
	return test_report();
}
