/* SPDX-License-Identifier: MIT */
/*
 * Processes, with real access checks (ops-common.h).  Two tables, as in the
 * kernel's vaddr.c:
 *   - "vaddr": the regions follow the process's mappings (the three regions
 *     of its address space, from /proc/PID/maps at start and every
 *     ops_update_us);
 *   - "fvaddr": the vaddr table without init and update: the regions stay
 *     within the fixed virtual ranges the target was added with.
 */
#ifndef DAMONX_VADDR_H
#define DAMONX_VADDR_H

#include "damonx.h"

/* Register the "vaddr" and "fvaddr" tables. */
int dx_vaddr_register(void);

/*
 * Add a process to a context running vaddr or fvaddr.  ranges (sorted) are
 * its fixed virtual ranges for fvaddr, and must be NULL for vaddr.  A pidfd
 * pins the process identity: if the pid is reused by another process, the
 * target is found dead, never monitored by mistake.  -ESRCH when the process
 * does not exist, -EINVAL for a context running other operations.
 */
int dx_vaddr_add_target(struct dx_ctx *ctx, int pid,
			const struct dx_range *ranges, size_t nr_ranges);

#endif /* DAMONX_VADDR_H */
