/* SPDX-License-Identifier: MIT */
/*
 * What damos.c (applying schemes) and damos-quota.c (quotas, goals,
 * watermarks) share; private to them and their tests.
 */
#ifndef DAMONX_DAMOS_H
#define DAMONX_DAMOS_H

#include "damonx.h"

#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))

/* x * num / denom without overflow, saturated (denom 0: as 1). */
static inline uint64_t mult_frac(uint64_t x, uint64_t num, uint64_t denom)
{
	unsigned __int128 r = (unsigned __int128)x * num / (denom ? denom : 1);

	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

static inline uint64_t sat_mul(uint64_t a, uint64_t b)
{
	unsigned __int128 r = (unsigned __int128)a * b;

	return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/* damos-quota.c */

/* The moving sum of accesses, as the kernel's damon_nr_accesses_mvsum(). */
uint32_t dx_damos_mvsum(const struct dx_ctx *ctx, const struct dx_region *r);
/* How much a region is worth acting on: 0 to DX_DAMOS_MAX_SCORE. */
int dx_damos_score(const struct dx_ctx *ctx, const struct dx_region *r,
		   const struct dx_damos *d);
bool dx_damos_quota_is_set(const struct dx_damos *d);
bool dx_damos_quota_is_full(const struct dx_ctx *ctx, const struct dx_damos *d);
/*
 * Before a pass: a new charge window when the reset interval passed, and
 * the lowest score of the regions to act on (d->min_score).
 */
void dx_damos_adjust_quota(struct dx_ctx *ctx, struct dx_damos *d);
/* Whether region idx of target ti lies before where the quota stopped. */
bool dx_damos_skip_charged_region(struct dx_ctx *ctx, size_t ti, size_t idx,
				  struct dx_damos *d);
/* Charge sz bytes tried, of which applied were acted on. */
void dx_damos_charge_quota(struct dx_damos *d, uint64_t sz, uint64_t applied);

/* damos.c */

bool dx_damos_pattern_matches(const struct dx_ctx *ctx,
			      const struct dx_region *r,
			      const struct dx_damos *d);
/* Whether the core's filters of d reject region idx of target ti. */
bool dx_damos_core_filter_out(struct dx_ctx *ctx, size_t ti, size_t idx,
			      struct dx_damos *d);

#endif /* DAMONX_DAMOS_H */
