// SPDX-License-Identifier: MIT
/*
 * The core's own benchmark: it sets the private fields of its contexts
 * (damonx.h) as the end of an aggregation would find them.
 */
#define _GNU_SOURCE
#include "bench_adjust.h"
#include "clock.h"
#include "damonx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Regions prepared and timed together, at most (one context per round). */
#define BATCH_REGIONS 4096
#define REGION_SZ (1ULL << 20)

static uint64_t thread_ns(void)
{
	return dx_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The median cost of one timed section with nothing in it. */
static uint64_t clock_overhead_ns(void)
{
	uint64_t d[101];
	size_t i;

	for (i = 0; i < 101; i++) {
		uint64_t t0 = thread_ns();

		d[i] = thread_ns() - t0;
	}
	qsort(d, 101, sizeof(d[0]), cmp_u64);
	return d[50];
}

/* Reset the only target to nr regions with random access counts; return the
 * merge threshold the core would use (the largest count / 10). */
static int reset_target(struct dx_ctx *ctx, uint32_t nr, uint32_t *threshold)
{
	struct dx_target *t = &ctx->targets[0];
	uint32_t max_nr = (uint32_t)(ctx->attrs.aggr_us / ctx->attrs.sample_us);
	uint32_t max_seen = 0;
	uint32_t i;
	int err;

	dx_target_clear_regions(t);
	for (i = 0; i < nr; i++) {
		struct dx_region *r;

		err = dx_target_add_region(t, i * REGION_SZ,
					   (i + 1) * REGION_SZ);
		if (err)
			return err;
		r = &t->regions[i];
		r->nr_accesses = (uint32_t)dx_rand_range(ctx, 0, max_nr + 1);
		r->last_nr_accesses =
			(uint32_t)dx_rand_range(ctx, 0, max_nr + 1);
		r->nr_accesses_bp = r->nr_accesses * 10000;
		r->age = (uint32_t)dx_rand_range(ctx, 0, 10);
		if (r->nr_accesses > max_seen)
			max_seen = r->nr_accesses;
	}
	ctx->last_nr_regions = 0;
	*threshold = max_seen / 10;
	return 0;
}

static uint64_t elapsed(uint64_t t0, uint64_t t1, uint64_t overhead)
{
	uint64_t d = t1 - t0;

	return d > overhead ? d - overhead : 0;
}

int dx_bench_adjust(uint32_t nr_regions, uint32_t nr_rounds, uint64_t seed,
		    struct dx_bench_adjust_result *out)
{
	struct dx_ctx **ctxs = NULL;
	uint32_t *thresholds = NULL;
	uint64_t sz_limit, overhead;
	struct dx_attrs attrs;
	uint32_t batch, i, done = 0;
	int err = 0;

	if (!nr_regions || !nr_rounds || !out || nr_regions > UINT32_MAX / 2)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	dx_attrs_default(&attrs);
	attrs.max_nr_regions = 2 * nr_regions;
	if (attrs.max_nr_regions < attrs.min_nr_regions)
		attrs.max_nr_regions = attrs.min_nr_regions;
	sz_limit = (uint64_t)nr_regions * REGION_SZ / attrs.min_nr_regions;
	if (sz_limit < attrs.min_region_sz)
		sz_limit = attrs.min_region_sz;

	batch = BATCH_REGIONS / nr_regions;
	if (batch < 1)
		batch = 1;
	if (batch > nr_rounds)
		batch = nr_rounds;
	ctxs = calloc(batch, sizeof(*ctxs));
	thresholds = calloc(batch, sizeof(*thresholds));
	if (!ctxs || !thresholds) {
		err = -ENOMEM;
		goto out_free;
	}
	for (i = 0; i < batch; i++) {
		err = dx_ctx_new(&ctxs[i], &attrs, seed + i);
		if (err)
			goto out_free;
		err = dx_ctx_add_target(ctxs[i], 0, NULL, NULL, 0);
		if (err)
			goto out_free;
	}

	overhead = clock_overhead_ns();
	out->clock_overhead_ns = overhead;
	while (done < nr_rounds) {
		uint32_t n = nr_rounds - done < batch ? nr_rounds - done :
							batch;
		uint64_t t0, t1;

		for (i = 0; i < n; i++) {
			err = reset_target(ctxs[i], nr_regions, &thresholds[i]);
			if (err)
				goto out_free;
		}
		t0 = thread_ns();
		for (i = 0; i < n; i++)
			dx_merge_regions(ctxs[i], thresholds[i], sz_limit);
		t1 = thread_ns();
		out->merge_ns += elapsed(t0, t1, overhead);
		for (i = 0; i < n; i++)
			out->nr_after_merge += dx_ctx_nr_regions(ctxs[i]);

		t0 = thread_ns();
		for (i = 0; i < n; i++) {
			err = dx_split_regions(ctxs[i]);
			if (err)
				goto out_free;
		}
		t1 = thread_ns();
		out->split_ns += elapsed(t0, t1, overhead);
		for (i = 0; i < n; i++)
			out->nr_after_split += dx_ctx_nr_regions(ctxs[i]);
		done += n;
	}
	out->nr_rounds = done;
out_free:
	if (ctxs)
		for (i = 0; i < batch; i++)
			dx_ctx_free(ctxs[i]);
	free(ctxs);
	free(thresholds);
	return err;
}
