/* SPDX-License-Identifier: MIT */
/*
 * damonx core: DAMON's monitoring engine (region-based sampling, adaptive
 * regions adjustment, dynamic mapping adoption) for user space.
 *
 * The core knows nothing of where accesses come from.  A backend fills a
 * struct dx_operations, registers it under a name, and keeps its own state
 * behind ctx->ops_priv and target->priv; a context selects one table by
 * name, and the core calls an entry only when it is set.
 *
 * This header has three parts:
 *   1. the public API: attributes, contexts, schemes, snapshots and
 *      counters, all through functions (src/damonx/_cdamonx.pxd mirrors
 *      this part one-to-one);
 *   2. the backend API: regions, targets, the operations table and its
 *      registry, iterators and the region list helpers;
 *   3. struct dx_ctx, whose fields are private to core.c and the backends.
 *
 * Every function returning int returns 0 (or a count) on success and a
 * negative errno on failure.  Units are in names: _us microseconds, _ns
 * nanoseconds, sz_ bytes, nr_ counts, _bp basis points (1/10000).
 */
#ifndef DAMONX_H
#define DAMONX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ============================================================ public API */

/*
 * Monitoring intervals auto-tuning, the kernel's struct damon_intervals_goal
 * (6.15): every aggrs aggregations, both intervals are scaled together so
 * that the access events found in an aggregation come near access_bp of the
 * most there could be, keeping the sampling interval within
 * [min_sample_us, max_sample_us].  aggrs 0 turns the tuning off.
 */
struct dx_intervals_goal {
	uint64_t access_bp; /* 1..10000 */
	uint64_t aggrs;
	uint64_t min_sample_us;
	uint64_t max_sample_us;
};

/* Monitoring attributes. */
struct dx_attrs {
	uint64_t sample_us; /* one access check per region per sample */
	uint64_t aggr_us; /* nr_accesses is counted per aggregation */
	uint64_t ops_update_us; /* how often the backend re-reads mappings */
	uint32_t min_nr_regions; /* >= 3 */
	uint32_t max_nr_regions; /* >= min_nr_regions; bounds the overhead */
	/*
	 * bytes, a power of two; the backends that check real pages need at
	 * least the page size
	 */
	uint64_t min_region_sz;
	struct dx_intervals_goal intervals_goal;
	/*
	 * The CPU time the monitoring process may use, in basis points of one
	 * CPU (1..10000), or 0 for no budget: the intervals (and, past the
	 * longest sampling interval, max_nr_regions) adapt to it.
	 */
	uint32_t cpu_budget_bp;
	/*
	 * damonx's own rules, DX_RULE_* bits; 0 for exactly the kernel's
	 * (docs/kernel-differences.md)
	 */
	uint32_t rules;
};

/*
 * damonx's rules beyond the kernel's, for spending access checks where the
 * information is (csrc/sampling.c, docs/kernel-differences.md), in two
 * groups of single rules:
 * DX_RULE_HIT_GUIDED, to find small hot sets in large memory:
 *   SEEDS: a sparse region is cut around a sampled page found accessed;
 *   PROBES: the cold neighbours of a young accessed run are cut at their
 *     shared edge, into pieces as large as the run, so that it grows;
 *   SEARCH: the cold space is split to be searched with a steady number of
 *     checks per sample;
 * DX_RULE_ADAPTIVE_CHECKS, for fewer checks for the same answer:
 *   PERIODS: a region whose count has stayed alike for a while is checked in
 *     one of 2 or 4 samples, its count scaled to all of them;
 *   NOISE: counts are alike when they differ by no more than the noise of
 *     their checks;
 * and in both, KEEP: regions are merged only when alike in the last
 *   aggregation too, and the merged count is rounded to the nearest, not
 *   down, so that merges do not make accesses vanish.
 */
#define DX_RULE_SEEDS (1U << 0)
#define DX_RULE_PROBES (1U << 1)
#define DX_RULE_SEARCH (1U << 2)
#define DX_RULE_KEEP (1U << 3)
#define DX_RULE_PERIODS (1U << 4)
#define DX_RULE_NOISE (1U << 5)
#define DX_RULE_HIT_GUIDED \
	(DX_RULE_SEEDS | DX_RULE_PROBES | DX_RULE_SEARCH | DX_RULE_KEEP)
#define DX_RULE_ADAPTIVE_CHECKS (DX_RULE_PERIODS | DX_RULE_NOISE | DX_RULE_KEEP)
#define DX_RULES_ALL (DX_RULE_HIT_GUIDED | DX_RULE_ADAPTIVE_CHECKS)

/* A half-open address range [start, end), in bytes. */
struct dx_range {
	uint64_t start;
	uint64_t end;
};

/*
 * A region as reported after an aggregation; mirrors
 * damonx.MONITOR_REGION_DTYPE (aligned: 32 bytes with the padding at the end).
 */
struct dx_region_out {
	uint64_t start;
	uint64_t end;
	uint32_t nr_accesses;
	uint32_t age;
	uint32_t nr_accesses_bp; /* the moving sum, basis points */
};

/*
 * What a scheme does to the regions that match its access pattern: damo's
 * action names (dx_action_name()), in the kernel's order.  Which actions a
 * context can apply depends on its operations (dx_ctx_actions()).
 */
enum dx_action {
	DX_ACTION_STAT = 0, /* count only */
	DX_ACTION_WILLNEED, /* MADV_WILLNEED: read ahead */
	DX_ACTION_COLD, /* MADV_COLD: deactivate */
	DX_ACTION_PAGEOUT, /* MADV_PAGEOUT: reclaim */
	DX_ACTION_HUGEPAGE, /* MADV_HUGEPAGE: allow huge pages */
	DX_ACTION_NOHUGEPAGE, /* MADV_NOHUGEPAGE: forbid huge pages */
	DX_ACTION_COLLAPSE, /* MADV_COLLAPSE: make huge pages now */
	DX_ACTION_LRU_PRIO, /* move to the head of the active LRU list */
	DX_ACTION_LRU_DEPRIO, /* move to the tail of the inactive list */
	DX_ACTION_MIGRATE_HOT, /* move to target_nid, hottest first */
	DX_ACTION_MIGRATE_COLD, /* move to target_nid, coldest first */
	DX_ACTION_NR,
};

/* The bit of an action in a set of actions. */
#define DX_ACTION_BIT(action) (1U << (action))

/*
 * The metrics of quota goals, as the kernel's enum damos_quota_goal_metric
 * (damo's names: dx_goal_metric_name()).  Values: user_input as given;
 * some_mem_psi_us the microseconds of "some" memory pressure (PSI) since
 * the last reset interval; the others basis points (1/10000).
 */
enum dx_goal_metric {
	DX_GOAL_USER_INPUT = 0,
	DX_GOAL_SOME_MEM_PSI_US,
	DX_GOAL_NODE_MEM_USED_BP,
	DX_GOAL_NODE_MEM_FREE_BP,
	DX_GOAL_NODE_MEMCG_USED_BP,
	DX_GOAL_NODE_MEMCG_FREE_BP,
	DX_GOAL_ACTIVE_MEM_BP,
	DX_GOAL_INACTIVE_MEM_BP,
	DX_GOAL_NR,
};

/* A quota goal: the feedback loop tunes the quota towards target_value. */
struct dx_quota_goal {
	int metric; /* enum dx_goal_metric */
	uint64_t target_value;
	uint64_t current_value; /* user_input: set by dx_ctx_set_goal_value() */
	int nid; /* node_mem*_bp: the NUMA node */
	/* node_memcg_*_bp: the cgroup (v2), relative to the cgroup root */
	char memcg_path[256];
};

/* How goals tune the quota (the kernel's enum damos_quota_goal_tuner). */
enum dx_goal_tuner {
	DX_GOAL_TUNER_CONSIST = 0, /* a consistent quota in the long term */
	DX_GOAL_TUNER_TEMPORAL, /* the full size quota until a goal is met */
};

/*
 * Quotas of a scheme, per reset interval: at most ms milliseconds of work
 * and sz bytes acted on (0: no such limit); the regions most worth acting
 * on first, by weights (per mille) of access rate and age (weight_sz is
 * kept, and ignored, as the kernel's operations ignore it).
 */
struct dx_quota {
	uint64_t ms;
	uint64_t sz; /* bytes */
	uint64_t reset_interval_ms;
	uint32_t weight_sz, weight_nr_accesses, weight_age;
	int goal_tuner; /* enum dx_goal_tuner */
	/* bytes of a failed action charged: the failed part * num / denom */
	uint32_t fail_charge_num, fail_charge_denom;
};

/* Watermark metrics (the kernel's enum damos_wmark_metric). */
enum dx_wmark_metric {
	DX_WMARK_NONE = 0, /* always active */
	DX_WMARK_FREE_MEM_RATE, /* MemFree / MemTotal, per mille */
};

/*
 * Watermarks: above high or below low the scheme is inactive; it becomes
 * active again between mid and low.  Checked every interval_us at least.
 */
struct dx_wmarks {
	int metric; /* enum dx_wmark_metric */
	uint64_t interval_us;
	uint64_t high, mid, low; /* per mille */
};

/*
 * Filter types, as the kernel's enum damos_filter_type.  addr and target
 * are the core's (regions); the others the operations' (pages).
 */
enum dx_filter_type {
	DX_FILTER_ANON = 0, /* anonymous pages */
	DX_FILTER_ACTIVE, /* pages on an active LRU list */
	DX_FILTER_MEMCG, /* pages of a memory cgroup */
	DX_FILTER_YOUNG, /* pages accessed since the last look */
	DX_FILTER_HUGEPAGE_SIZE, /* pages of a folio of a size in a range */
	DX_FILTER_UNMAPPED, /* pages mapped by no process */
	DX_FILTER_ADDR, /* an address range */
	DX_FILTER_TARGET, /* a target, by its index */
	DX_FILTER_NR,
};

/* The bit of a filter type in a set of them. */
#define DX_FILTER_BIT(type) (1U << (type))
/* The filter types the core handles itself. */
#define DX_CORE_FILTERS \
	(DX_FILTER_BIT(DX_FILTER_ADDR) | DX_FILTER_BIT(DX_FILTER_TARGET))

/*
 * A filter: memory of its type (or not of it, when !matching) is allowed
 * or rejected; the first filter that matches decides.
 */
struct dx_filter {
	int type; /* enum dx_filter_type */
	bool matching;
	bool allow;
	uint64_t memcg_ino; /* memcg: the inode of its cgroup directory */
	struct dx_range addr; /* addr */
	uint64_t target_idx; /* target */
	uint64_t sz_min, sz_max; /* hugepage_size: folio sizes, bytes */
};

/*
 * An operation scheme: an access pattern, an action and what bounds it.
 * Units are those of the core: nr_accesses in samples per aggregation, ages
 * in aggregations (the Python layer converts damo's percent and
 * microseconds).  The filters and goals are copied when added.
 */
struct dx_scheme {
	uint64_t min_sz, max_sz; /* bytes */
	uint32_t min_nr_accesses, max_nr_accesses; /* samples per aggregation */
	uint32_t min_age, max_age; /* aggregations */
	int action; /* enum dx_action */
	int target_nid; /* migrate_hot, migrate_cold: the node to move to */
	uint64_t apply_interval_us; /* 0: the aggregation interval */
	struct dx_quota quota;
	struct dx_wmarks wmarks;
	const struct dx_filter *filters;
	size_t nr_filters;
	const struct dx_quota_goal *goals;
	size_t nr_goals;
};

/*
 * What a scheme did, as the kernel's struct damos_stat counts it, and
 * damonx's own counts of failures.
 */
struct dx_scheme_stats {
	/* regions (and their bytes) the action was tried on, applied to */
	uint64_t nr_tried, sz_tried, nr_applied, sz_applied;
	uint64_t sz_ops_filter_passed; /* bytes that passed the ops' filters */
	uint64_t qt_exceeds; /* reset intervals whose quota was used up */
	uint64_t nr_snapshots; /* passes over all regions */
	/*
	 * regions on which the action failed, in part or in whole, and the
	 * errno value (positive) of the last failure, 0 before any
	 */
	uint64_t nr_failed;
	int last_errno;
	/* state: the effective size quota (bytes; 0 before the first
	 * reset), and whether the watermarks let the scheme act */
	uint64_t esz;
	bool activated;
};

/*
 * A region a scheme was tried on in its last pass; mirrors
 * damonx.TRIED_REGION_DTYPE (32 bytes).
 */
struct dx_tried_region {
	uint64_t start;
	uint64_t end;
	uint32_t nr_accesses; /* the moving sum, samples */
	uint32_t age;
	uint64_t sz_filter_passed;
};

/* Clock of a context: real (sleeps) or virtual (advances without sleeping). */
enum dx_clock {
	DX_CLOCK_REAL = 0,
	DX_CLOCK_VIRTUAL,
};

/* Counters a context keeps about its own work. */
struct dx_stats {
	uint64_t nr_samples; /* sampling intervals passed */
	uint64_t nr_region_checks; /* region access checks done */
	uint64_t nr_aggregations;
	uint64_t nr_updates;
	uint64_t nr_targets_lost; /* targets found dead */
	uint64_t nr_tunings; /* changes of the attributes in effect */
};

/*
 * The CPU cost of the monitoring work, for a context on the virtual clock:
 * its CPU time then comes from this model, and the work takes that much
 * context time, so that a CPU budget can be tested in simulation.  Without
 * a model, a context on the virtual clock uses no CPU time.
 */
struct dx_cpu_model {
	uint64_t per_sample_ns; /* a wake-up and a pass over the regions */
	uint64_t per_check_ns; /* one region's access check */
	uint64_t per_aggr_ns; /* an aggregation, and handing its snapshot over */
	uint64_t per_aggr_region_ns; /* the same, for each region */
};

/* A named counter that a backend keeps about its own work. */
struct dx_counter {
	const char *name; /* static storage */
	uint64_t value;
};

/*
 * What a backend finds of the system: the roots of /proc and /sys, and the
 * size of a page (bytes, a power of two; 0 for the system's,
 * sysconf(_SC_PAGESIZE): a fake tree of other pages sets it).
 */
struct dx_ops_env {
	const char *procfs;
	const char *sysfs;
	uint64_t page_size;
};

struct dx_ctx;
struct dx_damos;

/*
 * Attributes: fill defaults (no intervals goal, no CPU budget), validate.
 * Validation returns -EINVAL; with an intervals goal, sample_us must lie
 * within its [min_sample_us, max_sample_us], as the kernel requires.
 */
void dx_attrs_default(struct dx_attrs *attrs);
int dx_attrs_validate(const struct dx_attrs *attrs);
/*
 * Samples per aggregation, the largest nr_accesses: aggr_us / sample_us,
 * capped to 32 bits, as the kernel's damon_max_nr_accesses().
 */
uint32_t dx_max_nr_accesses(const struct dx_attrs *attrs);

/* The name of an action (damo's), or NULL for no action. */
const char *dx_action_name(int action);
/*
 * Why no operations table applies an action, and what to use instead, or
 * NULL when some table can apply it.
 */
const char *dx_action_note(int action);

/* The registered operations tables, in the order they registered. */
size_t dx_nr_ops(void);
const char *dx_ops_name(size_t index);

/* Contexts.  A context owns its targets, schemes and backend state. */
int dx_ctx_new(struct dx_ctx **out, const struct dx_attrs *attrs,
	       uint64_t seed);
void dx_ctx_free(struct dx_ctx *ctx);
/*
 * Use the operations registered as name; env may be NULL for a backend that
 * reads no system file.  -ENOENT for an unknown name, -EBUSY when ctx has
 * operations already, or what the backend's attach returned.
 */
int dx_ctx_select_ops(struct dx_ctx *ctx, const char *name,
		      const struct dx_ops_env *env);
void dx_ctx_set_clock(struct dx_ctx *ctx, enum dx_clock clock);
/* The actions the context's operations apply, as DX_ACTION_BIT()s. */
uint32_t dx_ctx_actions(const struct dx_ctx *ctx);
/* The filter types the context's operations handle, as DX_FILTER_BIT()s. */
uint32_t dx_ctx_filters(const struct dx_ctx *ctx);
/*
 * Add a scheme (its filters and goals are copied); its statistics start at
 * zero.  -EINVAL for invalid bounds, an unknown action, filter, metric or
 * tuner, or watermarks out of order; -EOPNOTSUPP for an action or a filter
 * the operations lack.
 */
int dx_ctx_add_scheme(struct dx_ctx *ctx, const struct dx_scheme *scheme);
/*
 * Where the schemes' metrics come from: procfs (pressure/memory, meminfo)
 * and sysfs (devices/system/node, fs/cgroup) roots; "/proc" and "/sys"
 * until set.  -EINVAL for a root too long.
 */
int dx_ctx_set_metric_roots(struct dx_ctx *ctx, const char *procfs,
			    const char *sysfs);
/* Set the current value of a user_input goal.  -EINVAL for no such goal. */
int dx_ctx_set_goal_value(struct dx_ctx *ctx, size_t scheme, size_t goal,
			  uint64_t value);
/* The name of a goal metric, a filter type (damo's), or NULL. */
const char *dx_goal_metric_name(int metric);
const char *dx_filter_type_name(int type);

/*
 * Change the attributes, before or while monitoring, as the kernel's
 * damon_set_attrs(): the regions' nr_accesses, last_nr_accesses and age are
 * rescaled to the new intervals, and an aggregation under way starts again
 * (its accesses so far are dropped).  Call it between aggregations.  The
 * intervals goal and the CPU budget then tune from the new attributes.
 * -EINVAL for invalid attributes, -EBUSY for a change of min_region_sz once
 * started.
 */
int dx_ctx_set_attrs(struct dx_ctx *ctx, const struct dx_attrs *attrs);
/*
 * The attributes in effect: those set, with the intervals and max_nr_regions
 * as the intervals goal and the CPU budget tuned them.
 */
void dx_ctx_attrs(const struct dx_ctx *ctx, struct dx_attrs *out);
/* Use a CPU cost model (virtual clock only; see struct dx_cpu_model). */
void dx_ctx_set_cpu_model(struct dx_ctx *ctx, const struct dx_cpu_model *model);
/*
 * CPU time used since the context started, in ns: the whole process's
 * (CLOCK_PROCESS_CPUTIME_ID: the loop, and whatever the caller does with the
 * snapshots), or the cost model's on the virtual clock.
 */
uint64_t dx_ctx_cpu_ns(const struct dx_ctx *ctx);

/*
 * Run until the next aggregation ends.  Returns 1 when a snapshot was taken,
 * 0 when the context stopped (stop requested, or no target left),
 * DX_PAUSED when the watermarks of every scheme kept monitoring paused for
 * a watermark interval (no snapshot: call again to go on), -errno on
 * failure (-EINTR when a signal interrupted a sleep: call again to go on).
 * Starts the context (ops.init) on first call.
 */
#define DX_PAUSED 2
int dx_ctx_run_aggregation(struct dx_ctx *ctx);
/* Make the loop return at the next sample; safe from any thread or signal. */
void dx_ctx_request_stop(struct dx_ctx *ctx);

/* Context time (virtual, or CLOCK_MONOTONIC), in ns. */
uint64_t dx_ctx_now_ns(const struct dx_ctx *ctx);
const struct dx_stats *dx_ctx_stats(const struct dx_ctx *ctx);
size_t dx_ctx_nr_regions(const struct dx_ctx *ctx);
size_t dx_ctx_nr_live_targets(const struct dx_ctx *ctx);
/* Targets by index, in the order added; dead ones keep their index. */
size_t dx_ctx_nr_targets(const struct dx_ctx *ctx);
int64_t dx_ctx_target_id(const struct dx_ctx *ctx, size_t index);
bool dx_ctx_target_live(const struct dx_ctx *ctx, size_t index);
/* Schemes by index, in the order added, with their statistics. */
size_t dx_ctx_nr_schemes(const struct dx_ctx *ctx);
/* A scheme as added (NULL past the last), and its statistics. */
const struct dx_scheme *dx_ctx_scheme(const struct dx_ctx *ctx, size_t index);
int dx_ctx_scheme_stats(const struct dx_ctx *ctx, size_t index,
			struct dx_scheme_stats *out);
/* The current value of a scheme's goal (as of its last reset interval). */
int dx_ctx_goal_value(const struct dx_ctx *ctx, size_t scheme, size_t goal,
		      uint64_t *out);
/*
 * The regions a scheme was tried on in its last pass over the regions: how
 * many, and a copy of them into out (at most cap; returns how many).
 */
size_t dx_ctx_nr_tried_regions(const struct dx_ctx *ctx, size_t index);
size_t dx_ctx_tried_regions_fill(const struct dx_ctx *ctx, size_t index,
				 struct dx_tried_region *out, size_t cap);

/*
 * The last aggregation's snapshot.  dx_ctx_snapshot_span() gives its time
 * span and returns false when there is none yet; then, per target index,
 * the number of regions and a copy of them into out (at most cap; returns
 * how many were copied).
 */
bool dx_ctx_snapshot_span(const struct dx_ctx *ctx, uint64_t *start_ns,
			  uint64_t *end_ns);
/* The intervals in effect during the last snapshot's aggregation. */
void dx_ctx_snapshot_intervals(const struct dx_ctx *ctx, uint64_t *sample_us,
			       uint64_t *aggr_us);
size_t dx_ctx_snapshot_nr_regions(const struct dx_ctx *ctx, size_t index);
size_t dx_ctx_snapshot_fill(const struct dx_ctx *ctx, size_t index,
			    struct dx_region_out *out, size_t cap);
/* The access checks of a target (by index) in the last aggregation. */
uint64_t dx_ctx_snapshot_nr_checks(const struct dx_ctx *ctx, size_t index);

/*
 * The backend's counters of its own work (files read and written...): fills
 * out[0..cap) and returns how many there are; 0 for a backend without any.
 */
size_t dx_ctx_ops_counters(const struct dx_ctx *ctx, struct dx_counter *out,
			   size_t cap);

/* ============================================================ backend API */

/* One monitoring region. */
struct dx_region {
	uint64_t start;
	uint64_t end;
	uint64_t sampling_addr; /* address checked in the current sample */
	uint64_t ops_cookie[2]; /* backend scratch for the current sample */
	uint32_t nr_accesses; /* samples found accessed, this aggregation */
	uint32_t nr_accesses_bp; /* pseudo moving sum, basis points */
	uint32_t last_nr_accesses; /* nr_accesses of the previous aggregation */
	uint32_t age; /* aggregations with a similar nr_accesses */
	/*
	 * damonx's own rules (sampling.c); under the kernel's every region is
	 * checked in every sample and the fields below stay unused
	 */
	bool skip; /* not checked in the current sample */
	uint8_t kind; /* enum dx_region_kind */
	uint16_t period; /* checked in one of period samples (0 like 1) */
	uint16_t phase; /* at the samples j of an aggregation where
			 * (j + phase) % period == 0 */
	uint32_t nr_planned; /* checks planned in this aggregation */
	uint32_t nr_checks; /* checks made in this aggregation */
	uint32_t nr_hits; /* of which found the sampled page accessed */
	uint64_t hit_addr; /* a sampled address found accessed, if nr_hits */
	bool dust; /* merges into a neighbour whatever the counts */
};

/* Why a region was made (damonx's own rules, sampling.c). */
enum dx_region_kind {
	DX_REGION_PLAIN = 0,
	DX_REGION_SEED, /* around a sampled page found accessed */
	DX_REGION_PROBE, /* a cold neighbour's edge next to accessed ones */
};

/*
 * Whether the backend checks r in the current sample: it need not prepare
 * nor check the others, but calls dx_region_account() for every region.
 */
static inline bool dx_region_checked(const struct dx_region *r)
{
	return !r->skip;
}

/* One monitoring target: a process, or a set of fixed or physical ranges. */
struct dx_target {
	int64_t id; /* pid for vaddr and fvaddr, user's id otherwise */
	bool dead; /* gone: no regions, never checked again */
	size_t nr_regions;
	size_t cap_regions;
	struct dx_region *regions; /* sorted by address, not overlapping */
	void *priv; /* backend per-target state */
	uint64_t nr_checks; /* access checks of its regions, this aggregation */
};

/*
 * The operations a backend provides.  Unset entries are skipped: a table
 * without init and update monitors the regions its targets were added with
 * (fixed ranges), as the kernel's fvaddr and paddr do.
 */
struct dx_operations {
	const char *name;
	/* Set up ctx->ops_priv when a context selects the table. */
	int (*attach)(struct dx_ctx *ctx, const struct dx_ops_env *env);
	/* Set the initial regions of every target. */
	int (*init)(struct dx_ctx *ctx);
	/* Follow changes of the targets' mappings (every ops_update_us). */
	int (*update)(struct dx_ctx *ctx);
	/* Mark the page at each region's sampling_addr as not accessed. */
	int (*prepare_access_checks)(struct dx_ctx *ctx);
	/*
	 * Tell for each region whether its sampled page was accessed, through
	 * dx_region_account(); return the largest nr_accesses or -errno.
	 */
	int (*check_accesses)(struct dx_ctx *ctx);
	/* Whether a target still exists. */
	bool (*target_valid)(struct dx_ctx *ctx, struct dx_target *t);
	/*
	 * The actions apply_scheme applies, as DX_ACTION_BIT()s (stat needs
	 * no apply_scheme: every table has it), and the filter types it
	 * handles (DX_FILTER_BIT()s of page filters; the core handles
	 * DX_CORE_FILTERS for every table).
	 */
	uint32_t actions;
	uint32_t filters;
	/*
	 * Apply the action of s to [r->start, r->end), the pages that pass
	 * the operations' filters of s only (dx_damos_ops_filter_out()):
	 * return the bytes it was applied to, add the bytes that passed the
	 * filters to *sz_filter_passed, and set *err to -errno when it failed
	 * on any part.  Called for stat too when s has page filters.
	 */
	uint64_t (*apply_scheme)(struct dx_ctx *ctx, struct dx_target *t,
				 struct dx_region *r, struct dx_damos *s,
				 uint64_t *sz_filter_passed, int *err);
	/* Fill counters of the backend's work; see dx_ctx_ops_counters(). */
	size_t (*get_counters)(const struct dx_ctx *ctx, struct dx_counter *out,
			       size_t cap);
	/* Release per-target state (t->priv); called when a target is removed. */
	void (*target_cleanup)(struct dx_ctx *ctx, struct dx_target *t);
	/* Release ctx->ops_priv. */
	void (*cleanup)(struct dx_ctx *ctx);
};

/*
 * The registry of operations tables.  Each backend has a function that
 * registers its tables (as the kernel's initcalls do), called once by the
 * program or library that links it; a table must outlive the program.
 * Registering a table again does nothing; -EEXIST for a name taken by
 * another table, -ENOSPC when the registry is full.
 */
int dx_register_ops(const struct dx_operations *ops);
const struct dx_operations *dx_find_ops(const char *name);

/* Use a table that need not be registered (tests); sets ctx->ops_priv. */
void dx_ctx_set_ops(struct dx_ctx *ctx, const struct dx_operations *ops,
		    void *ops_priv);
/*
 * Add a target before the context starts.  ranges (sorted) are its initial
 * regions, split evenly for min_nr_regions; NULL when the table's init sets
 * them.  Nothing is added on failure (-EBUSY once started); priv stays the
 * caller's then.
 */
int dx_ctx_add_target(struct dx_ctx *ctx, int64_t id, void *priv,
		      const struct dx_range *ranges, size_t nr_ranges);

/* Iterate over targets (dead ones included, or not), regions and schemes. */
#define dx_for_each_target(t, ctx) \
	for ((t) = (ctx)->targets; \
	     (t) && (t) < (ctx)->targets + (ctx)->nr_targets; (t)++)
#define dx_for_each_live_target(t, ctx) \
	dx_for_each_target(t, ctx)      \
		if ((t)->dead) {        \
		} else
#define dx_for_each_region(r, t)                                              \
	for ((r) = (t)->regions; (r) && (r) < (t)->regions + (t)->nr_regions; \
	     (r)++)
#define dx_for_each_scheme(s, ctx) \
	for ((s) = (ctx)->schemes; \
	     (s) && (s) < (ctx)->schemes + (ctx)->nr_schemes; (s)++)

/*
 * What a page is, for the operations' filters: the flags of its folio head
 * in /proc/kpageflags, its folio's size, its memory cgroup's inode
 * (/proc/kpagecgroup) and whether it was accessed since last looked at.
 */
struct dx_page_info {
	uint64_t kpageflags;
	uint64_t folio_sz; /* bytes */
	uint64_t memcg_ino;
	bool young;
	/*
	 * the folio's PFNs [head_pfn, head_pfn + nr_pages): what is said here
	 * holds for each of them (the page's own PFN and 1 when unknown)
	 */
	uint64_t head_pfn, nr_pages;
};

/*
 * Whether the operations' filters of s reject a page (the kernel's
 * damos_folio_filter_match(), first match decides).  The caller fills
 * memcg_ino and young only for the types dx_damos_ops_filter_types() has.
 */
bool dx_damos_ops_filter_out(const struct dx_damos *s,
			     const struct dx_page_info *page);
/* Whether s has filters of the operations (page filters). */
bool dx_damos_has_ops_filters(const struct dx_damos *s);
/* The page filter types of s, as DX_FILTER_BIT()s. */
uint32_t dx_damos_ops_filter_types(const struct dx_damos *s);

/* The scheme hooks of the loop (damos.c). */
/*
 * Apply the schemes whose apply interval passed to every region; called
 * once per sample, after the merge of an aggregation's end.
 */
void dx_damos_apply(struct dx_ctx *ctx);
/*
 * Check the watermarks: 0 when some scheme is active (monitoring goes on),
 * else the ns to wait until the next check.
 */
uint64_t dx_damos_wait_activation(struct dx_ctx *ctx);
/*
 * The intervals changed: each scheme's next application counts from now,
 * as the kernel's damon_set_attrs() sets next_apply_sis.
 */
void dx_damos_attrs_changed(struct dx_ctx *ctx);
void dx_damos_free_all(struct dx_ctx *ctx);

/* Random numbers from the context's seeded generator. */
uint64_t dx_rand_u64(struct dx_ctx *ctx);
/* Uniform in [lo, hi); lo when hi <= lo. */
uint64_t dx_rand_range(struct dx_ctx *ctx, uint64_t lo, uint64_t hi);

/*
 * Record one access check result for a region (used by check_accesses, for
 * every region, also those not checked in this sample: then accessed is
 * false).
 */
void dx_region_account(struct dx_ctx *ctx, struct dx_region *r, bool accessed);

/*
 * damonx's own rules (sampling.c), called by the core: plan the checks of an
 * aggregation (which regions are checked in which samples); pick the
 * regions checked in a sample and their addresses (returns how many); the
 * weight of a region's next check found accessed; cut regions around hits
 * and at the edges of growing accessed runs.
 */
void dx_sampling_plan(struct dx_ctx *ctx);
size_t dx_sampling_pick(struct dx_ctx *ctx);
uint32_t dx_sampling_weight(const struct dx_ctx *ctx,
			    const struct dx_region *r);
int dx_split_guided(struct dx_ctx *ctx);
int dx_split_search(struct dx_ctx *ctx);
void dx_mark_dust(struct dx_ctx *ctx, struct dx_target *t);
/*
 * Whether two access counts are alike, for merging and ageing: they differ
 * by at most threshold (the kernel's rule: ctx NULL), or, under damonx's
 * adaptive checks, by no more than the noise of their checks (m_a, m_b).
 */
bool dx_counts_alike(const struct dx_ctx *ctx, uint32_t a, uint32_t m_a,
		     uint32_t b, uint32_t m_b, uint32_t threshold);
/*
 * Whether two regions may merge by their access counts: alike now (the
 * kernel's rule: ctx NULL), and, under damonx's rules, in the last
 * aggregation too.
 */
bool dx_regions_alike(const struct dx_ctx *ctx, const struct dx_region *a,
		      const struct dx_region *b, uint32_t threshold);

/* Region list operations, exposed for backends and tests. */
int dx_target_add_region(struct dx_target *t, uint64_t start, uint64_t end);
void dx_target_clear_regions(struct dx_target *t);
/* Free the regions of t and take regions (nr of them, cap allocated). */
void dx_target_replace_regions(struct dx_target *t, struct dx_region *regions,
			       size_t nr, size_t cap);
int dx_split_region_at(struct dx_target *t, size_t idx, uint64_t sz_left);
int dx_split_evenly(struct dx_target *t, size_t idx, size_t nr_pieces,
		    uint64_t min_region_sz);
void dx_merge_two(struct dx_target *t, size_t left);
void dx_merge_regions_of(struct dx_target *t, uint32_t threshold,
			 uint64_t sz_limit, bool count_age);
void dx_merge_regions(struct dx_ctx *ctx, uint32_t threshold,
		      uint64_t sz_limit);
int dx_split_regions_of(struct dx_ctx *ctx, struct dx_target *t, int nr_subs);
int dx_split_regions(struct dx_ctx *ctx);
uint64_t dx_region_sz_limit(const struct dx_ctx *ctx);

/*
 * Dynamic mapping adoption.  dx_three_regions() picks the ranges of a
 * process-like address space from its sorted mappings: the three that the
 * two largest gaps separate, or, for mappings with fewer than two gaps
 * between them, the one or two blocks they form (the kernel monitors no
 * region then: see docs/kernel-differences.md).  It returns how many ranges
 * it wrote to out, or -EINVAL for no mapping or unsorted ones.
 * dx_set_regions() makes a target's regions fit ranges.
 */
int dx_three_regions(const struct dx_range *maps, size_t nr_maps,
		     uint64_t min_region_sz, struct dx_range out[3]);
int dx_set_regions(struct dx_target *t, const struct dx_range *ranges,
		   size_t nr_ranges, uint64_t min_region_sz);
/* Set a target's initial regions: ranges split evenly for min_nr_regions. */
int dx_init_regions(struct dx_ctx *ctx, struct dx_target *t,
		    const struct dx_range *ranges, size_t nr_ranges);

/* Index of the range holding addr among sorted, disjoint ranges, or -1. */
long dx_find_range(const struct dx_range *ranges, size_t nr_ranges,
		   uint64_t addr);
/*
 * Index of the first of sorted, disjoint ranges that ends after addr (it
 * holds addr or lies above it), or nr_ranges when there is none.
 */
size_t dx_first_range_after(const struct dx_range *ranges, size_t nr_ranges,
			    uint64_t addr);

/* Remove a target's regions and mark it dead. */
void dx_target_kill(struct dx_ctx *ctx, struct dx_target *t);

/* ============================================================ schemes */

/* Scores of the quota's priorities, as the kernel's DAMOS_MAX_SCORE. */
#define DX_DAMOS_MAX_SCORE 99

/*
 * A scheme inside a context: what it was added with (owning copies of its
 * filters and goals) and its state; private to damos.c and the backends.
 */
struct dx_damos {
	struct dx_scheme s;
	struct dx_filter *filters; /* s.filters, owned */
	struct dx_quota_goal *goals; /* s.goals, owned */
	uint64_t *last_psi_total; /* per goal; UINT64_MAX before the first */
	struct dx_scheme_stats stat;

	/* the quota: effective size, charges, and the feedback loop */
	uint64_t esz, esz_bp;
	uint64_t charged_sz, total_charged_sz, total_charged_ns;
	uint64_t charged_from_ns;
	bool charging; /* a charge window has started */
	size_t charge_target_from; /* SIZE_MAX: none */
	uint64_t charge_addr_from;
	uint32_t min_score;

	/* the watermarks */
	uint64_t wmark_next_check_ns;

	uint64_t next_apply_sample;
	/* the first-match rule: what no filter matched, per kind */
	bool core_default_reject, ops_default_reject;
	bool core_filters_allowed; /* of the region being applied */

	/* the regions tried in the last pass, and those of this pass */
	struct dx_tried_region *tried;
	size_t nr_tried, cap_tried;
	bool tried_restart; /* a new pass starts: forget the last */
};

/* ============================================================ the context */

/* One monitoring context. */
struct dx_ctx {
	/*
	 * private: only core.c and backends (and the core's own tests and
	 * benchmarks) read or write these fields; everyone else goes through
	 * the functions above.
	 */
	struct dx_attrs attrs; /* in effect: the loop and the rules use these */
	struct dx_attrs user_attrs; /* as set; tuning starts from these */
	struct dx_operations ops; /* a copy of the selected table */
	void *ops_priv;
	int clock; /* enum dx_clock */

	struct dx_target *targets;
	size_t nr_targets;
	size_t cap_targets;

	struct dx_damos *schemes;
	size_t nr_schemes;
	/* the roots of the schemes' metrics */
	char metric_procfs[256];
	char metric_sysfs[256];
	/* the quota's score histogram: bytes per score */
	uint64_t score_hist[DX_DAMOS_MAX_SCORE + 1];

	uint64_t rng[4]; /* xoshiro256** state, seeded per context */

	bool started;
	volatile int stop; /* set by dx_ctx_request_stop() */
	bool checks_pending; /* prepared, sleeping until the check */
	uint64_t deadline_ns; /* when the pending checks are due */
	uint64_t now_ns; /* context time (virtual or CLOCK_MONOTONIC) */
	uint64_t start_ns; /* context time when monitoring started */
	uint64_t aggr_start_ns;
	uint64_t passed_samples;
	uint64_t next_aggr_sample;
	uint64_t next_update_sample;
	uint32_t max_nr_accesses; /* of the last check_accesses */
	uint64_t sz_limit; /* region size limit for merging */
	size_t last_nr_regions; /* total at the last split */

	/* the last aggregation's regions, all targets back to back */
	struct dx_region_out *snap;
	size_t snap_cap;
	size_t *snap_nr; /* per target: number of regions */
	uint64_t *snap_nr_checks; /* per target: checks of the aggregation */
	bool snap_taken;
	uint64_t snap_start_ns, snap_end_ns;
	uint64_t snap_sample_us, snap_aggr_us;

	/* tuning.c: CPU time, the intervals goal and the CPU budget */
	struct dx_cpu_model cpu_model; /* virtual clock: the cost of the work */
	uint64_t virtual_cpu_ns; /* virtual clock: CPU time charged so far */
	uint64_t cpu_start_ns; /* real clock: the process's CPU time at start */
	uint64_t sampled_ns; /* the sampling intervals passed, summed */
	uint64_t next_tune_sample; /* the intervals goal's next tuning */
	uint64_t goal_sample_us; /* its last step, until applied; 0: none */
	struct dx_budget {
		/* the start of the current control window */
		uint64_t cpu_ns, start_ns, nr_samples, nr_checks, sampled_ns;
		double per_check_ns; /* CPU time per check, smoothed; 0: unknown */
		double correction; /* of the prediction, from what it missed */
		bool holding; /* it sets the sampling interval in effect */
		uint64_t floor_us; /* the lowest sampling interval it allows */
		uint32_t max_nr_regions; /* the region limit it allows */
	} budget;

	struct dx_stats stats;

	/* damonx's own rules (sampling.c) */
	uint32_t sample_in_aggr; /* samples picked in this aggregation */
	uint32_t plan_nr_samples; /* samples per aggregation of the plan */
	size_t nr_sample_checks; /* regions checked in the current sample */
	uint64_t sz_seed; /* bytes of a seed region */
};

#endif /* DAMONX_H */
