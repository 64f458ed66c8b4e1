// SPDX-License-Identifier: MIT
/*
 * Unit tests of the record reader (recread.c, recparse.c): snapshots in the
 * usual forms, everything it must leave to the caller, text cut anywhere,
 * the optional keys, the selection and the address coverage.
 */
#include "../recbins.c"
#include "../recparse.c"
#include "../recread.c"

#include <stdio.h>

#include "test.h"

static struct dx_rr_filter no_filter;

/* parse the whole of text from pos into a fresh target */
static int parse_all(struct dx_rr_target *t, const char *text,
		     struct dx_rr_result *r)
{
	dx_rr_target_init(t, &no_filter, true);
	return dx_rr_parse(t, text, strlen(text), 0, r);
}

/* damonx's own layout, and damo's: indented, numbers as text with commas,
 * keys damonx does not know */
static void test_usual_forms(void)
{
	static const char damonx[] =
		"{\"start_time\":100,\"end_time\":200,\"regions\":["
		"{\"start\":4096,\"end\":8192,\"nr_accesses\":{\"samples\":3,"
		"\"percent\":null},\"age\":{\"usec\":null,\"aggr_intervals\":7}},\n"
		"{\"start\":8192,\"end\":12288,\"nr_accesses\":{\"samples\":0,"
		"\"percent\":null},\"age\":{\"usec\":null,\"aggr_intervals\":0}}]},\n"
		"{\"start_time\":200,\"end_time\":300,\"regions\":[]}] tail";
	static const char damo[] =
		"\n            {\n                \"start_time\": \"0\",\n"
		"                \"end_time\": \"100,000,000\",\n"
		"                \"regions\": [\n                    {\n"
		"                        \"start\": \"40,960\",\n"
		"                        \"end\": \"81,920\",\n"
		"                        \"nr_accesses\": {\n"
		"                            \"samples\": 3,\n"
		"                            \"percent\": null\n"
		"                        },\n"
		"                        \"age\": {\n"
		"                            \"usec\": null,\n"
		"                            \"aggr_intervals\": \"1\"\n"
		"                        },\n"
		"                        \"probe_hits\": [],\n"
		"                        \"sz_filter_passed\": \"0 B\"\n"
		"                    }\n                ],\n"
		"                \"total_bytes\": \"40960\",\n"
		"                \"damos_stats\": null,\n"
		"                \"sample_interval_us\": null\n"
		"            }\n        ]";
	struct dx_rr_target t;
	struct dx_rr_result r;

	EXPECT_EQ(parse_all(&t, damonx, &r), DX_RR_END);
	EXPECT_EQ(t.nr_snaps, 2);
	EXPECT_EQ(r.nr_committed, 2);
	EXPECT(!strcmp(damonx + r.pos, " tail"));
	EXPECT_EQ(t.start_ns[1], 200);
	EXPECT_EQ(t.end_ns[1], 300);
	EXPECT_EQ(t.offsets[1], 2);
	EXPECT_EQ(t.offsets[2], 2);
	EXPECT_EQ(t.regions[0].start, 4096);
	EXPECT_EQ(t.regions[0].end, 8192);
	EXPECT_EQ(t.regions[0].nr_accesses, 3);
	EXPECT_EQ(t.regions[0].age, 7);
	EXPECT_EQ(t.regions[1].end, 12288);
	EXPECT_EQ(t.flags[0], 0);
	/* the two regions touch: one range */
	EXPECT_EQ(t.nr_unions, 1);
	EXPECT_EQ(t.unions[0].start, 4096);
	EXPECT_EQ(t.unions[0].end, 12288);
	dx_rr_target_free(&t);

	EXPECT_EQ(parse_all(&t, damo, &r), DX_RR_END);
	EXPECT_EQ(t.nr_snaps, 1);
	EXPECT_EQ(t.end_ns[0], 100000000);
	EXPECT_EQ(t.regions[0].start, 40960);
	EXPECT_EQ(t.regions[0].end, 81920);
	EXPECT_EQ(t.regions[0].nr_accesses, 3);
	EXPECT_EQ(t.regions[0].age, 1);
	dx_rr_target_free(&t);
}

/* a count may be a plain number, null or absent; the extremes fit */
static void test_counts_and_limits(void)
{
	static const char text[] =
		"{\"regions\":[{\"end\":\"18,446,744,073,709,551,615\","
		"\"start\":0,\"nr_accesses\":4294967295,\"age\":null},"
		"{\"start\":1,\"end\":1}],\"end_time\":18446744073709551615,"
		"\"start_time\":0,\"sample_interval_us\":5000,"
		"\"damonx_nr_checks\":\"1,024\"}]";
	struct dx_rr_target t;
	struct dx_rr_result r;

	EXPECT_EQ(parse_all(&t, text, &r), DX_RR_END);
	EXPECT_EQ(t.regions[0].end, UINT64_MAX);
	EXPECT_EQ(t.regions[0].nr_accesses, UINT32_MAX);
	EXPECT_EQ(t.regions[0].age, 0);
	EXPECT_EQ(t.regions[1].nr_accesses, 0);
	EXPECT_EQ(t.end_ns[0], UINT64_MAX);
	EXPECT_EQ(t.flags[0], DX_RR_HAS_SAMPLE | DX_RR_HAS_CHECKS);
	EXPECT_EQ(t.sample_us[0], 5000);
	EXPECT_EQ(t.nr_checks[0], 1024);
	/* the empty region covers nothing */
	EXPECT_EQ(t.nr_unions, 1);
	dx_rr_target_free(&t);
}

#define R "{\"start\":1,\"end\":2}"
#define SNAP(regions) \
	"{\"start_time\":1,\"end_time\":2,\"regions\":[" regions "]}"

/* what the caller reads its own way: the parser neither fails nor guesses */
static void test_left_to_the_caller(void)
{
	static const char *const slow[] = {
		SNAP("{\"start\":1.0,\"end\":2}"), /* float */
		SNAP("{\"start\":1e3,\"end\":2000}"),
		SNAP("{\"start\":-1,\"end\":2}"), /* negative */
		SNAP("{\"start\":01,\"end\":2}"), /* leading zero */
		SNAP("{\"start\":18446744073709551616,\"end\":2}"), /* > u64 */
		SNAP("{\"start\":\"18,446,744,073,709,551,616\",\"end\":2}"),
		SNAP("{\"start\":1,\"end\":2,\"nr_accesses\":4294967296}"),
		SNAP("{\"start\":1,\"end\":2,\"age\":{\"aggr_intervals\":4294967296}}"),
		SNAP("{\"start\":1,\"end\":2,\"nr_accesses\":{\"percent\":50}}"),
		SNAP("{\"start\":1,\"end\":2,\"age\":{\"usec\":300000}}"),
		SNAP("{\"start\":1,\"end\":2,\"age\":{\"usec\":1,\"usec\":2}}"),
		SNAP("{\"start\":1,\"end\":2,\"nr_accesses\":true}"),
		SNAP("{\"start\":1,\"end\":2,\"start\":3}"), /* duplicate */
		SNAP("{\"st\\u0061rt\":1,\"end\":2}"), /* escape in a key */
		SNAP("{\"start\":\"4 KiB\",\"end\":8192}"), /* units */
		SNAP("{\"start\":\"\",\"end\":2}"),
		SNAP("{\"start\":\" 1\",\"end\":2}"),
		SNAP("{\"start\":1}"), /* no end */
		SNAP("{\"start\":3,\"end\":2}"), /* end before start */
		SNAP("{\"start\":null,\"end\":2}"),
		SNAP("[1,2]"),
		SNAP(R ","), /* trailing comma */
		SNAP(R "," R ",]"),
		SNAP("{\"start\":1,\"end\":2,\"x\":[1,]}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":{\"a\":1,}}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":NaN}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":-Infinity}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":1.}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":1e}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":\"a\\\"b\"}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":\"tab\there\"}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[["
		     "[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"),
		SNAP("{\"start\":1,\"end\":2,\"x\":nul}"),
		SNAP("{\"start\":1 \"end\":2}"),
		"{\"start_time\":1,\"end_time\":2}", /* no regions */
		"{\"start_time\":1,\"end_time\":2,\"regions\":{}}",
		"{\"start_time\":1,\"end_time\":2,\"regions\":[],\"regions\":[]}",
		"{\"start_time\":\"1 s\",\"end_time\":2,\"regions\":[]}",
		"{\"start_time\":1,\"end_time\":2,\"regions\":[],"
		"\"sample_interval_us\":\"5 ms\"}",
		"{\"start_time\":1,\"end_time\":2,\"regions\":[],"
		"\"damonx_nr_checks\":-3}",
		"{}",
		"[]",
		"1",
		"\"x\"",
	};
	struct dx_rr_target t;
	struct dx_rr_result r;
	size_t i;
	char buf[512];

	for (i = 0; i < ARRAY_SIZE(slow); i++) {
		int st;

		snprintf(buf, sizeof(buf), " %s]", slow[i]);
		st = parse_all(&t, buf, &r);
		if (st != DX_RR_SLOW)
			fprintf(stderr, "not left to the caller: %s\n",
				slow[i]);
		EXPECT_EQ(st, DX_RR_SLOW);
		EXPECT_EQ(r.pos,
			  0); /* where the snapshot's whitespace starts */
		EXPECT_EQ(t.nr_snaps, 0);
		EXPECT_EQ(t.nr_seen, 0);
		dx_rr_target_free(&t);
	}

	/* after snapshots it read: where the next one starts, or the
	 * separator that is neither ',' nor ']' */
	EXPECT_EQ(parse_all(&t, SNAP(R) ",\n " SNAP("x") "]", &r), DX_RR_SLOW);
	EXPECT_EQ(r.nr_committed, 1);
	EXPECT_EQ(r.last_end, strlen(SNAP(R)));
	EXPECT_EQ(r.pos, strlen(SNAP(R) ","));
	dx_rr_target_free(&t);
	EXPECT_EQ(parse_all(&t, SNAP(R) " ;", &r), DX_RR_NEXT);
	EXPECT_EQ(r.pos, strlen(SNAP(R)));
	EXPECT_EQ(t.nr_snaps, 1);
	dx_rr_target_free(&t);
}

/* a list cut anywhere reads the snapshots that are whole, then asks for
 * more, and reads on from there once it has it */
static void test_cut_anywhere(void)
{
	static const char text[] =
		"{\"start_time\":\"1,000\",\"end_time\":2000,\"regions\":["
		"{\"start\":10,\"end\":20,\"nr_accesses\":{\"samples\":5,"
		"\"percent\":null},\"age\":{\"usec\":null,\"aggr_intervals\":"
		"\"12\"},\"x\":[true,false,null,-1.5e-3,{\"y\":\"z\"}]}],"
		"\"sample_interval_us\":null}, "
		"{\"start_time\":2000,\"end_time\":3000,\"regions\":[" R "]}]";
	size_t len = strlen(text), first_end = strchr(text, ' ') - text - 1;
	size_t cut;

	for (cut = 0; cut < len; cut++) {
		size_t whole = (cut >= first_end) + (cut >= len - 1);
		struct dx_rr_target t;
		struct dx_rr_result r;
		int st;

		dx_rr_target_init(&t, &no_filter, true);
		st = dx_rr_parse(&t, text, cut, 0, &r);
		EXPECT(st == DX_RR_MORE || st == DX_RR_NEXT);
		EXPECT_EQ(t.nr_snaps, whole);
		if (st == DX_RR_NEXT) {
			/* the separator is the caller's */
			EXPECT_EQ(r.pos, whole == 1 ? first_end : len - 1);
			r.pos++;
		}
		if (whole < 2)
			EXPECT_EQ(dx_rr_parse(&t, text, len, r.pos, &r),
				  DX_RR_END);
		EXPECT_EQ(t.nr_snaps, 2);
		EXPECT_EQ(t.start_ns[0], 1000);
		EXPECT_EQ(t.regions[0].age, 12);
		EXPECT_EQ(t.regions[1].start, 1);
		dx_rr_target_free(&t);
	}
}

/* scheme statistics: the caller converts them and commits the snapshot */
static void test_extras(void)
{
	static const char text[] =
		"{\"start_time\":1,\"end_time\":2,\"regions\":[" R "],"
		"\"damos_stats\":{\"nr_tried\":\"1,024\"},"
		"\"sample_interval_us\":5000}]";
	struct dx_rr_target t;
	struct dx_rr_result r;
	const size_t *span;

	EXPECT_EQ(parse_all(&t, text, &r), DX_RR_EXTRAS);
	EXPECT_EQ(r.pos, 0);
	EXPECT_EQ(text[r.pos], '{');
	EXPECT_EQ(r.snap_end, strlen(text) - 1);
	EXPECT_EQ(r.has_extra,
		  1u << DX_RR_EXTRA_STATS | 1u << DX_RR_EXTRA_SAMPLE);
	span = r.extra[DX_RR_EXTRA_STATS];
	EXPECT(!strncmp(text + span[0], "{\"nr_tried\":\"1,024\"}",
			span[1] - span[0]));
	span = r.extra[DX_RR_EXTRA_SAMPLE];
	EXPECT(!strncmp(text + span[0], "5000", span[1] - span[0]));
	EXPECT_EQ(t.nr_snaps, 0);
	EXPECT_EQ(t.pending.nr_regions, 1);
	EXPECT_EQ(dx_rr_commit(&t, &t.pending), 1);
	EXPECT_EQ(t.nr_snaps, 1);
	EXPECT_EQ(t.sample_us[0], 5000);
	dx_rr_target_free(&t);
}

static void add(struct dx_rr_target *t, uint64_t start_ns, uint64_t end_ns,
		const struct dx_rr_region *regions, size_t nr)
{
	struct dx_rr_snap s = { .start_ns = start_ns,
				.end_ns = end_ns,
				.nr_regions = nr };

	if (nr)
		memcpy(dx_rr_pending(t, nr), regions, nr * sizeof(*regions));
	dx_rr_commit(t, &s);
}

/* the time range counts from the earliest first snapshot of any target;
 * regions are cut to the address range; the coverage sees everything */
static void test_selection(void)
{
	static const struct dx_rr_region regions[] = {
		{ .start = 0, .end = 100, .nr_accesses = 1 },
		{ .start = 100, .end = 200, .nr_accesses = 2 },
		{ .start = 300, .end = 400, .nr_accesses = 3 },
	};
	struct dx_rr_filter f = { .by_time = true,
				  .t0_ns = 10,
				  .t1_ns = 30,
				  .by_addr = true,
				  .addr_start = 50,
				  .addr_end = 350 };
	struct dx_rr_target a, b;
	uint64_t s;

	dx_rr_target_init(&a, &f, true);
	dx_rr_target_init(&b, &f, false);
	for (s = 1000; s < 1050; s += 10)
		add(&a, s, s + 10, regions, ARRAY_SIZE(regions));
	add(&a, 1025, 1025, regions, 1); /* an instant inside */
	add(&a, 1030, 1030, regions, 1); /* at the end: outside */
	EXPECT_EQ(f.base_ns, 1000);
	/* [1000, 1010) and [1030, 1040) only touch [1010, 1030) */
	EXPECT_EQ(a.nr_snaps, 3);
	EXPECT_EQ(a.start_ns[0], 1010);
	EXPECT_EQ(a.start_ns[2], 1025);
	EXPECT_EQ(a.seen_index[0], 1);
	EXPECT_EQ(a.seen_index[2], 5);
	EXPECT_EQ(a.nr_seen, 7);
	/* cut: [50, 100), [100, 200), [300, 350) */
	EXPECT_EQ(a.offsets[1], 3);
	EXPECT_EQ(a.regions[0].start, 50);
	EXPECT_EQ(a.regions[2].end, 350);
	EXPECT_EQ(a.offsets[3], 7);
	EXPECT_EQ(a.nr_unions, 2);
	EXPECT_EQ(a.unions[0].start, 0);
	EXPECT_EQ(a.unions[0].end, 200);
	EXPECT_EQ(a.unions[1].end, 400);
	EXPECT(!f.base_moved);
	/* a target not kept still counts, and its earlier start moves the
	 * base after the time range was used: the read must be redone */
	add(&b, 990, 1000, regions, 1);
	EXPECT_EQ(b.nr_snaps, 0);
	EXPECT_EQ(b.nr_seen, 1);
	EXPECT_EQ(f.base_ns, 990);
	EXPECT(f.base_moved);
	dx_rr_target_free(&a);
	dx_rr_target_free(&b);
}

/* ranges join when they meet or touch, whatever order they come in */
static void test_coverage(void)
{
	static const struct {
		uint64_t start, end;
	} in[] = { { 50, 60 }, { 10, 20 }, { 30, 40 }, { 20, 25 }, { 70, 80 },
		   { 35, 55 }, { 90, 95 }, { 0, 5 },   { 26, 27 } };
	static const uint64_t want[][2] = {
		{ 0, 5 },   { 10, 25 }, { 26, 27 },
		{ 30, 60 }, { 70, 80 }, { 90, 95 },
	};
	struct dx_rr_target t;
	size_t i;

	dx_rr_target_init(&t, &no_filter, true);
	for (i = 0; i < ARRAY_SIZE(in); i++)
		EXPECT_EQ(cover(&t, in[i].start, in[i].end), 0);
	EXPECT_EQ(t.nr_unions, ARRAY_SIZE(want));
	for (i = 0; i < ARRAY_SIZE(want) && i < t.nr_unions; i++) {
		EXPECT_EQ(t.unions[i].start, want[i][0]);
		EXPECT_EQ(t.unions[i].end, want[i][1]);
	}
	EXPECT_EQ(cover(&t, 1, 100), 0);
	EXPECT_EQ(t.nr_unions, 1);
	EXPECT_EQ(t.unions[0].start, 0);
	EXPECT_EQ(t.unions[0].end, 100);
	dx_rr_target_free(&t);
}

/* A heatmap's cells: regions in any order, the bins they meet, the pairs'
 * weights; and the pairs out of range refused. */
static void test_heatmap_add(void)
{
	/* snapshot 0 in address order, snapshot 1 not (it is sorted first) */
	const struct dx_rr_region r[] = {
		{ 0, 50, 2, 0 },    { 50, 150, 4, 0 }, { 150, 400, 1, 0 },
		{ 100, 200, 3, 0 }, { 0, 100, 1, 0 },
	};
	const int64_t offsets[] = { 0, 3, 5 };
	const double edges[] = { 0, 100, 200 };
	const int64_t snap[] = { 0, 1, 1 }, bin[] = { 0, 0, 1 };
	const double weight[] = { 1, 2, 0.5 };
	double num[4] = { 0 }, den[4] = { 0 };
	const int64_t bad_snap[] = { 2 }, bad_bin[] = { 2 };

	EXPECT_EQ(dx_rr_heatmap_add(r, 5, offsets, 2, edges, 2, 10, snap, bin,
				    weight, 3, 2, num, den),
		  0);
	/* row 0: snapshot 0; then twice snapshot 1 */
	EXPECT(num[0] == 50 * 20 + 50 * 40 + 2 * 100 * 10);
	EXPECT(num[1] == 50 * 40 + 50 * 10 + 2 * 100 * 30);
	EXPECT(den[0] == 100 + 2 * 100 && den[1] == 100 + 2 * 100);
	EXPECT(num[2] == 0.5 * 100 * 10 && num[3] == 0.5 * 100 * 30);
	EXPECT(den[2] == 50 && den[3] == 50);
	EXPECT_EQ(dx_rr_heatmap_add(r, 5, offsets, 2, edges, 2, 1, bad_snap,
				    bin, weight, 1, 2, num, den),
		  -EINVAL);
	EXPECT_EQ(dx_rr_heatmap_add(r, 5, offsets, 2, edges, 2, 1, snap,
				    bad_bin, weight, 1, 2, num, den),
		  -EINVAL);
	EXPECT_EQ(dx_rr_heatmap_add(r, 4, offsets, 2, edges, 2, 1, snap + 1,
				    bin, weight, 1, 2, num, den),
		  -EINVAL);
}

int main(void)
{
	RUN(test_usual_forms);
	RUN(test_counts_and_limits);
	RUN(test_left_to_the_caller);
	RUN(test_cut_anywhere);
	RUN(test_extras);
	RUN(test_selection);
	RUN(test_coverage);
	RUN(test_heatmap_add);
	return test_report();
}
