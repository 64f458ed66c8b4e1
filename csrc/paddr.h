/* SPDX-License-Identifier: MIT */
/*
 * Physical memory, with real access checks (ops-common.h): the "paddr"
 * table.  A region's sampled address is a physical address, its PFN the
 * address divided by the page size; the regions stay within the ranges the
 * target was added with.
 */
#ifndef DAMONX_PADDR_H
#define DAMONX_PADDR_H

#include "damonx.h"

/* Register the "paddr" table. */
int dx_paddr_register(void);

/*
 * Add physical address ranges (sorted) as one target of a context running
 * paddr.  -EINVAL for no range, or a context running other operations.
 */
int dx_paddr_add_target(struct dx_ctx *ctx, int64_t id,
			const struct dx_range *ranges, size_t nr_ranges);

#endif /* DAMONX_PADDR_H */
