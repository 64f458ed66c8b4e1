// SPDX-License-Identifier: MIT
/*
 * libFuzzer target of the record reader (recparse.c, recread.c).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I csrc \
 *       csrc/tests/fuzz_recread.c -o build/fuzz_recread
 *   build/fuzz_recread -dict=csrc/tests/recread.dict -max_total_time=600 CORPUS_DIR
 *
 * An input is a byte choosing the selection and the size of the pieces,
 * then text read as the snapshots of a list, the way the Python reader
 * drives the parser: whole, and again as if it came in pieces (the parser
 * asking for more at each end of a piece).  Beyond what the sanitizers
 * catch, both reads must agree, and the columns must hold together: region
 * offsets in order, regions inside the address range and never ending
 * before they start, the coverage sorted and disjoint.
 */
#include "../recparse.c"
#include "../recread.c"

#include <stdio.h>

#define CHECK(cond)                                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, \
				#cond);                                    \
			abort();                                           \
		}                                                          \
	} while (0)

/* more of the text, a piece at a time; false at its end */
static bool more(size_t *len, size_t size, size_t piece)
{
	if (*len == size)
		return false;
	*len = *len + piece < size ? *len + piece : size;
	return true;
}

/* read text[0..size) as the caller does, handing it over piece by piece */
static void read_list(struct dx_rr_target *t, const char *text, size_t size,
		      size_t piece)
{
	size_t len = piece < size ? piece : size, pos = 0;
	struct dx_rr_result r;
	int st;

	for (;;) {
		st = dx_rr_parse(t, text, len, pos, &r);
		CHECK(st >= 0 && r.pos <= len);
		pos = r.pos;
		if (st == DX_RR_MORE) {
			if (!more(&len, size, piece))
				return;
			continue;
		}
		if (st == DX_RR_EXTRAS) {
			CHECK(r.snap_end <= len && pos < r.snap_end);
			CHECK(dx_rr_commit(t, &t->pending) >= 0);
			pos = r.snap_end;
		} else if (st != DX_RR_NEXT) {
			return; /* the end of the list, or the caller's to read */
		}
		/* the separator is the caller's: more text until there is one */
		for (;;) {
			while (pos < len && memchr(" \t\r\n", text[pos], 4))
				pos++;
			if (pos < len || !more(&len, size, piece))
				break;
		}
		if (pos == len || text[pos] != ',')
			return;
		pos++;
	}
}

static void check_columns(const struct dx_rr_target *t)
{
	const struct dx_rr_filter *f = t->filter;
	size_t i;

	CHECK(t->nr_snaps <= t->nr_seen);
	CHECK(!t->nr_snaps || t->offsets[0] == 0);
	for (i = 0; i < t->nr_snaps; i++)
		CHECK(t->offsets[i] <= t->offsets[i + 1]);
	CHECK(!t->nr_snaps || (size_t)t->offsets[t->nr_snaps] == t->nr_regions);
	for (i = 0; i < t->nr_regions; i++) {
		CHECK(t->regions[i].start <= t->regions[i].end);
		CHECK(!f->by_addr || (t->regions[i].start >= f->addr_start &&
				      t->regions[i].end <= f->addr_end));
	}
	for (i = 0; i < t->nr_unions; i++) {
		CHECK(t->unions[i].start < t->unions[i].end);
		CHECK(i == 0 || t->unions[i - 1].end < t->unions[i].start);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dx_rr_filter f1 = { 0 }, f2;
	struct dx_rr_target whole, pieces;
	const char *text = (const char *)data + 1;
	size_t i, piece;

	if (size < 1)
		return 0;
	if (data[0] & 1) {
		f1.by_time = true;
		f1.t0_ns = 100;
		f1.t1_ns = 300;
	}
	if (data[0] & 2) {
		f1.by_addr = true;
		f1.addr_start = 4096;
		f1.addr_end = 1 << 20;
	}
	piece = 1 + (data[0] >> 2);
	f2 = f1;
	size--;
	dx_rr_target_init(&whole, &f1, true);
	dx_rr_target_init(&pieces, &f2, true);
	read_list(&whole, text, size, size);
	read_list(&pieces, text, size, piece);
	check_columns(&whole);
	check_columns(&pieces);
	/* the pieces may stop early only where the whole read did */
	CHECK(whole.nr_seen == pieces.nr_seen);
	CHECK(whole.nr_snaps == pieces.nr_snaps);
	CHECK(whole.nr_regions == pieces.nr_regions);
	CHECK(whole.nr_unions == pieces.nr_unions);
	for (i = 0; i < whole.nr_snaps; i++) {
		CHECK(whole.start_ns[i] == pieces.start_ns[i]);
		CHECK(whole.end_ns[i] == pieces.end_ns[i]);
		CHECK(whole.offsets[i + 1] == pieces.offsets[i + 1]);
		CHECK(whole.flags[i] == pieces.flags[i]);
	}
	CHECK(!whole.nr_regions ||
	      !memcmp(whole.regions, pieces.regions,
		      whole.nr_regions * sizeof(*whole.regions)));
	CHECK(!whole.nr_unions ||
	      !memcmp(whole.unions, pieces.unions,
		      whole.nr_unions * sizeof(*whole.unions)));
	dx_rr_target_free(&whole);
	dx_rr_target_free(&pieces);
	return 0;
}
