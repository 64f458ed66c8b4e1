/* SPDX-License-Identifier: MIT */
/*
 * The contexts the core's unit tests make: the default attributes with the
 * given rules, region limits and minimum region size, and a fixed seed.
 */
#ifndef DAMONX_TEST_CTX_H
#define DAMONX_TEST_CTX_H

#include <stdio.h>
#include <stdlib.h>

#include "../damonx.h"

static inline struct dx_ctx *test_ctx_new(uint32_t rules, uint32_t min_nr,
					  uint32_t max_nr, uint64_t min_sz)
{
	struct dx_attrs a;
	struct dx_ctx *ctx = NULL;

	dx_attrs_default(&a);
	a.rules = rules;
	a.min_nr_regions = min_nr;
	a.max_nr_regions = max_nr;
	a.min_region_sz = min_sz;
	if (dx_ctx_new(&ctx, &a, 42)) {
		fprintf(stderr, "cannot make a context\n");
		exit(2);
	}
	return ctx;
}

#endif /* DAMONX_TEST_CTX_H */
