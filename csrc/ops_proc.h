/* SPDX-License-Identifier: MIT */
/*
 * Real access checks from user space, for processes (vaddr, fvaddr) and
 * physical memory (paddr), through /proc/PID/pagemap (virtual page to PFN),
 * /proc/kpageflags (compound pages, LRU) and /sys/kernel/mm/page_idle/bitmap
 * (mark a page idle, later read whether it still is).
 *
 * A sample costs, per region: one pagemap read (vaddr, fvaddr), one or two
 * kpageflags reads, one bitmap write at prepare time and one bitmap read at
 * check time; work is skipped for pages known to be absent and shared by
 * regions whose samples fall in the same page, folio or bitmap word.
 */
#ifndef DAMONX_OPS_PROC_H
#define DAMONX_OPS_PROC_H

#include "damonx.h"

enum dx_proc_mode {
	DX_PROC_VADDR = 0,	/* processes; regions follow their mappings */
	DX_PROC_FVADDR,		/* processes; fixed virtual ranges */
	DX_PROC_PADDR,		/* physical address ranges */
};

/* Counters of the work done, for benchmarks and diagnostics. */
struct dx_proc_stats {
	uint64_t nr_pagemap_reads;
	uint64_t nr_kpageflags_reads;
	uint64_t nr_bitmap_writes;
	uint64_t nr_bitmap_reads;
	uint64_t nr_absent;	/* samples on pages not present / no PFN */
	uint64_t nr_unmapped;	/* of which between mappings: no pagemap read */
	uint64_t nr_shared;	/* samples answered by another region's check */
	uint64_t nr_maps_reads;
};

/*
 * Make ctx use real access checks.  procfs and sysfs are the roots of /proc
 * and /sys.  Opens the idle page bitmap and kpageflags; -ENOENT when the
 * bitmap is missing (no CONFIG_IDLE_PAGE_TRACKING), -EACCES/-EPERM when
 * they cannot be opened.
 */
int dx_proc_attach(struct dx_ctx *ctx, int mode, const char *procfs,
		   const char *sysfs);

/*
 * Add a process.  For fvaddr, ranges are its fixed virtual ranges (sorted);
 * for vaddr they must be NULL.  A pidfd pins the process identity: if the
 * pid is reused by another process, the target is found dead, never
 * monitored by mistake.  -ESRCH when the process does not exist.
 */
int dx_proc_add_pid(struct dx_ctx *ctx, int pid, const struct dx_range *ranges,
		    size_t nr_ranges);

/* Add physical address ranges (sorted) as one target (paddr). */
int dx_proc_add_ranges(struct dx_ctx *ctx, int64_t id,
		       const struct dx_range *ranges, size_t nr_ranges);

/* Read one process's mappings, sorted (for tests and three regions). */
int dx_proc_read_maps(const char *maps_path, struct dx_range **out,
		      size_t *nr_out);

const struct dx_proc_stats *dx_proc_get_stats(const struct dx_ctx *ctx);

#endif /* DAMONX_OPS_PROC_H */
