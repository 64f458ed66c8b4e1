// SPDX-License-Identifier: MIT
#include "paddr.h"
#include "ops-common.h"

#include <errno.h>

static uint64_t pa_sample_pfn(struct dx_access_check *ac, struct dx_target *t,
			      uint64_t addr)
{
	return addr / ac->page_size;
}

static int pa_prepare_access_checks(struct dx_ctx *ctx)
{
	return dx_ac_prepare_access_checks(ctx, pa_sample_pfn);
}

/* A physical page stays where it is: only its folio's flags may change. */
static int pa_check_accesses(struct dx_ctx *ctx)
{
	return dx_ac_check_accesses(ctx, NULL);
}

/*
 * Physical memory does not go away; schemes count its regions, and no
 * action applies to physical ranges.
 */
static struct dx_operations pa_ops = {
	.name = "paddr",
	.attach = dx_ac_attach,
	.prepare_access_checks = pa_prepare_access_checks,
	.check_accesses = pa_check_accesses,
	.get_counters = dx_ac_get_counters,
	.cleanup = dx_ac_cleanup,
};

int dx_paddr_register(void)
{
	return dx_register_ops(&pa_ops);
}

int dx_paddr_add_target(struct dx_ctx *ctx, int64_t id,
			const struct dx_range *ranges, size_t nr_ranges)
{
	if (ctx->ops.prepare_access_checks != pa_prepare_access_checks ||
	    !nr_ranges)
		return -EINVAL;
	return dx_ctx_add_target(ctx, id, NULL, ranges, nr_ranges);
}
