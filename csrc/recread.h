/* SPDX-License-Identifier: MIT */
/*
 * recread: damo's JSON record schema read into columns.
 *
 * The snapshots of one target are collected in growable columns: start and
 * end times, the offset of each snapshot's regions, and the regions
 * themselves (struct dx_rr_region, which mirrors damonx.REGION_DTYPE).
 * dx_rr_parse() reads consecutive snapshots of a "snapshots" list, written
 * the way damo and damonx write them, straight into those columns.  It
 * never decides that a snapshot is broken: whatever is not in that usual
 * form (text with units, floats, out of range values, duplicate keys,
 * escapes, invalid JSON...) is left to the caller, which reads it another
 * way and adds it with dx_rr_pending() and dx_rr_commit().  Both ways apply
 * the same selection (struct dx_rr_filter) and keep the address coverage.
 *
 * The columns and the selection are in recread.c, the parser in recparse.c.
 * Times are nanoseconds, addresses and sizes bytes.
 */
#ifndef DAMONX_RECREAD_H
#define DAMONX_RECREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* one region of a record, as damonx.REGION_DTYPE */
struct dx_rr_region {
	uint64_t start;
	uint64_t end;
	uint32_t nr_accesses;
	uint32_t age;
};

/*
 * What a read keeps; one filter is shared by the targets of a read.
 *
 * by_time: the snapshots meeting [base + t0_ns, base + t1_ns), where base,
 * the start of the record, is the earliest start of a target's first
 * snapshot (a zero-length snapshot meets it when it lies inside).
 * by_addr: of each region, its part inside [addr_start, addr_end); regions
 * outside are dropped.
 */
struct dx_rr_filter {
	bool by_time;
	uint64_t t0_ns, t1_ns;
	bool by_addr;
	uint64_t addr_start, addr_end;
	/* the start of the record so far; base_fixed: given, never moved */
	bool has_base, base_fixed;
	uint64_t base_ns;
	/* set when a target's first snapshot moved the base earlier after
	 * snapshots were kept or dropped by time: the read must be redone
	 * with the base fixed */
	bool time_decided, base_moved;
};

/* An address range [start, end). */
struct dx_rr_range {
	uint64_t start;
	uint64_t end;
};

#define DX_RR_HAS_SAMPLE 0x1 /* sample_us is set */
#define DX_RR_HAS_CHECKS 0x2 /* nr_checks is set */

/* One snapshot before it is committed; its regions are the pending ones. */
struct dx_rr_snap {
	uint64_t start_ns, end_ns;
	size_t nr_regions;
	uint64_t sample_us; /* the sampling interval in effect, us */
	uint64_t nr_checks; /* access checks of its aggregation */
	unsigned int flags; /* DX_RR_HAS_* */
};

/* The columns of one target's snapshots. */
struct dx_rr_target {
	struct dx_rr_filter *filter;
	bool keep; /* false: a target not selected, only counted */
	uint64_t nr_seen; /* snapshots read, kept or not */

	size_t nr_snaps, cap_snaps;
	uint64_t *start_ns, *end_ns;
	uint64_t *seen_index; /* of each kept snapshot, among all those read */
	int64_t *offsets; /* nr_snaps + 1: index of each snapshot's first region */
	uint64_t *sample_us, *nr_checks; /* valid where flags say so */
	uint8_t *flags;

	/* the kept regions, followed by those of the pending snapshot */
	size_t nr_regions, cap_regions;
	struct dx_rr_region *regions;

	/* the union of every region read (before the address filter), sorted,
	 * touching ranges joined */
	size_t nr_unions, cap_unions;
	struct dx_rr_range *unions;

	struct dx_rr_snap pending;
};

void dx_rr_target_init(struct dx_rr_target *t, struct dx_rr_filter *filter,
		       bool keep);
void dx_rr_target_free(struct dx_rr_target *t);

/*
 * Room for nr regions of the pending snapshot: a pointer to the first, valid
 * until the next call; NULL if memory ran out.
 */
struct dx_rr_region *dx_rr_pending(struct dx_rr_target *t, size_t nr);

/*
 * Add the snapshot s, whose regions are the first s->nr_regions pending
 * ones: counts it, adds its regions to the coverage and keeps it if the
 * filter does.  1: kept, 0: left out, -ENOMEM.
 */
int dx_rr_commit(struct dx_rr_target *t, const struct dx_rr_snap *s);

/* What dx_rr_parse() stopped at. */
enum dx_rr_status {
	DX_RR_END = 0, /* the list ended: pos is past its ']' */
	DX_RR_NEXT, /* pos is past a snapshot; the separator is the caller's */
	DX_RR_MORE, /* the text ends inside the snapshot at pos: read more */
	DX_RR_SLOW, /* the snapshot at pos is not in the usual form */
	DX_RR_EXTRAS, /* the snapshot at pos has scheme statistics (below) */
};

/* The optional keys of a snapshot, in the order of DX_RR_EXTRA_* */
enum {
	DX_RR_EXTRA_SAMPLE, /* "sample_interval_us" */
	DX_RR_EXTRA_CHECKS, /* "damonx_nr_checks" */
	DX_RR_EXTRA_STATS, /* "damos_stats" */
	DX_RR_EXTRA_STATS_LIST, /* "damonx_damos_stats" */
	DX_RR_NR_EXTRAS,
};

/*
 * Where dx_rr_parse() stopped, and what it found there.  For a snapshot
 * (DX_RR_MORE, DX_RR_SLOW, DX_RR_EXTRAS), pos is where the whitespace before
 * it starts, and start where the snapshot does (the end of the text, if
 * only whitespace is left).
 */
struct dx_rr_result {
	size_t pos, start;
	/* the end of the last snapshot committed by this call; 0: none */
	size_t last_end;
	size_t nr_committed;
	/* DX_RR_EXTRAS: the snapshot spans [pos, snap_end); the value of each
	 * optional key present spans [extra[k][0], extra[k][1]); the snapshot
	 * is pending in the target (commit it with dx_rr_commit()) */
	size_t snap_end;
	size_t extra[DX_RR_NR_EXTRAS][2];
	unsigned int has_extra; /* bit k: extra[k] is set */
};

/*
 * Read the snapshots of a "snapshots" list from text[pos..len), where pos is
 * at a snapshot (after the list's '[', or after a ','; whitespace allowed),
 * into t, until the list ends, the text does, or a snapshot needs the
 * caller.  Returns a dx_rr_status (filling r) or -ENOMEM.
 */
int dx_rr_parse(struct dx_rr_target *t, const char *text, size_t len,
		size_t pos, struct dx_rr_result *r);

/*
 * Add to a heatmap's cells the snapshots of a target's columns (recbins.c).
 *
 * regions[offsets[s]..offsets[s + 1]) are the nr_regions regions of
 * snapshot s (nr_snaps + 1 offsets); edges are the nr_abins + 1 increasing
 * address bin edges, in bytes.  For each of the nr_pairs (pair_snap[p],
 * pair_bin[p], pair_weight[p]) (a snapshot, its time bin and its weight
 * there, best in snapshot order: each run of one snapshot is binned once),
 * row pair_bin[p] of num and den (nr_tbins x nr_abins, row-major) gets
 * weight times the integral over each address bin of the snapshot's access
 * rate (nr_accesses x scale, so rate x bytes) and of its coverage (bytes
 * covered by regions).  Returns 0, -EINVAL for an index out of range or
 * -ENOMEM (num and den then hold a part of the sums).
 */
int dx_rr_heatmap_add(const struct dx_rr_region *regions, size_t nr_regions,
		      const int64_t *offsets, size_t nr_snaps,
		      const double *edges, size_t nr_abins, double scale,
		      const int64_t *pair_snap, const int64_t *pair_bin,
		      const double *pair_weight, size_t nr_pairs,
		      size_t nr_tbins, double *num, double *den);

#endif /* DAMONX_RECREAD_H */
