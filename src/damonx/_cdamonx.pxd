# A one-to-one mirror of the public API of the C core: part 1 of
# csrc/damonx.h, and the headers of the backends (sim.h, vaddr.h, paddr.h,
# ops-common.h).  Keep in step with them.  struct dx_ctx is opaque here: its
# fields are private to the core and the backends.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "damonx.h" nogil:
    struct dx_intervals_goal:
        uint64_t access_bp
        uint64_t aggrs
        uint64_t min_sample_us
        uint64_t max_sample_us

    struct dx_attrs:
        uint64_t sample_us
        uint64_t aggr_us
        uint64_t ops_update_us
        uint32_t min_nr_regions
        uint32_t max_nr_regions
        uint64_t min_region_sz
        dx_intervals_goal intervals_goal
        uint32_t cpu_budget_bp
        uint32_t rules

    const uint32_t DX_RULE_SEEDS
    const uint32_t DX_RULE_PROBES
    const uint32_t DX_RULE_SEARCH
    const uint32_t DX_RULE_KEEP
    const uint32_t DX_RULE_PERIODS
    const uint32_t DX_RULE_NOISE
    const uint32_t DX_RULE_HIT_GUIDED
    const uint32_t DX_RULE_ADAPTIVE_CHECKS

    struct dx_range:
        uint64_t start
        uint64_t end

    struct dx_region_out:
        uint64_t start
        uint64_t end
        uint32_t nr_accesses
        uint32_t age
        uint32_t nr_accesses_bp

    enum dx_action:
        DX_ACTION_STAT
        DX_ACTION_WILLNEED
        DX_ACTION_COLD
        DX_ACTION_PAGEOUT
        DX_ACTION_HUGEPAGE
        DX_ACTION_NOHUGEPAGE
        DX_ACTION_COLLAPSE
        DX_ACTION_LRU_PRIO
        DX_ACTION_LRU_DEPRIO
        DX_ACTION_MIGRATE_HOT
        DX_ACTION_MIGRATE_COLD
        DX_ACTION_NR

    uint32_t DX_ACTION_BIT(int action)

    enum dx_goal_metric:
        DX_GOAL_USER_INPUT
        DX_GOAL_NR

    struct dx_quota_goal:
        int metric
        uint64_t target_value
        uint64_t current_value
        int nid
        char memcg_path[256]

    enum dx_goal_tuner:
        DX_GOAL_TUNER_CONSIST
        DX_GOAL_TUNER_TEMPORAL

    struct dx_quota:
        uint64_t ms
        uint64_t sz
        uint64_t reset_interval_ms
        uint32_t weight_sz, weight_nr_accesses, weight_age
        int goal_tuner
        uint32_t fail_charge_num, fail_charge_denom

    enum dx_wmark_metric:
        DX_WMARK_NONE
        DX_WMARK_FREE_MEM_RATE

    struct dx_wmarks:
        int metric
        uint64_t interval_us
        uint64_t high, mid, low

    enum dx_filter_type:
        DX_FILTER_NR

    uint32_t DX_FILTER_BIT(int type)

    struct dx_filter:
        int type
        bint matching
        bint allow
        uint64_t memcg_ino
        dx_range addr
        uint64_t target_idx
        uint64_t sz_min, sz_max

    struct dx_scheme:
        uint64_t min_sz, max_sz
        uint32_t min_nr_accesses, max_nr_accesses
        uint32_t min_age, max_age
        int action
        int target_nid
        uint64_t apply_interval_us
        dx_quota quota
        dx_wmarks wmarks
        const dx_filter *filters
        size_t nr_filters
        const dx_quota_goal *goals
        size_t nr_goals

    struct dx_scheme_stats:
        uint64_t nr_tried, sz_tried, nr_applied, sz_applied
        uint64_t sz_ops_filter_passed
        uint64_t qt_exceeds
        uint64_t nr_snapshots
        uint64_t nr_failed
        int last_errno
        uint64_t esz
        bint activated

    struct dx_tried_region:
        uint64_t start
        uint64_t end
        uint32_t nr_accesses
        uint32_t age
        uint64_t sz_filter_passed

    enum dx_clock:
        DX_CLOCK_REAL
        DX_CLOCK_VIRTUAL

    struct dx_stats:
        uint64_t nr_samples
        uint64_t nr_region_checks
        uint64_t nr_aggregations
        uint64_t nr_updates
        uint64_t nr_targets_lost
        uint64_t nr_tunings

    struct dx_cpu_model:
        uint64_t per_sample_ns
        uint64_t per_check_ns
        uint64_t per_aggr_ns
        uint64_t per_aggr_region_ns

    struct dx_counter:
        const char *name
        uint64_t value

    struct dx_ops_env:
        const char *procfs
        const char *sysfs
        uint64_t page_size

    struct dx_ctx:
        pass

    void dx_attrs_default(dx_attrs *attrs)
    int dx_attrs_validate(const dx_attrs *attrs)
    uint32_t dx_max_nr_accesses(const dx_attrs *attrs)

    const char *dx_action_name(int action)
    const char *dx_action_note(int action)

    size_t dx_nr_ops()
    const char *dx_ops_name(size_t index)

    int dx_ctx_new(dx_ctx **out, const dx_attrs *attrs, uint64_t seed)
    void dx_ctx_free(dx_ctx *ctx)
    int dx_ctx_select_ops(dx_ctx *ctx, const char *name, const dx_ops_env *env)
    void dx_ctx_set_clock(dx_ctx *ctx, dx_clock clock)
    uint32_t dx_ctx_actions(const dx_ctx *ctx)
    uint32_t dx_ctx_filters(const dx_ctx *ctx)
    int dx_ctx_add_scheme(dx_ctx *ctx, const dx_scheme *scheme)
    int dx_ctx_set_metric_roots(dx_ctx *ctx, const char *procfs, const char *sysfs)
    int dx_ctx_set_goal_value(dx_ctx *ctx, size_t scheme, size_t goal, uint64_t value)
    const char *dx_goal_metric_name(int metric)
    const char *dx_filter_type_name(int type)

    int DX_PAUSED
    int dx_ctx_set_attrs(dx_ctx *ctx, const dx_attrs *attrs)
    void dx_ctx_attrs(const dx_ctx *ctx, dx_attrs *out)
    void dx_ctx_set_cpu_model(dx_ctx *ctx, const dx_cpu_model *model)
    uint64_t dx_ctx_cpu_ns(const dx_ctx *ctx)

    int dx_ctx_run_aggregation(dx_ctx *ctx)
    void dx_ctx_request_stop(dx_ctx *ctx)

    uint64_t dx_ctx_now_ns(const dx_ctx *ctx)
    const dx_stats *dx_ctx_stats(const dx_ctx *ctx)
    size_t dx_ctx_nr_regions(const dx_ctx *ctx)
    size_t dx_ctx_nr_live_targets(const dx_ctx *ctx)
    size_t dx_ctx_nr_targets(const dx_ctx *ctx)
    int64_t dx_ctx_target_id(const dx_ctx *ctx, size_t index)
    bint dx_ctx_target_live(const dx_ctx *ctx, size_t index)
    size_t dx_ctx_nr_schemes(const dx_ctx *ctx)
    const dx_scheme *dx_ctx_scheme(const dx_ctx *ctx, size_t index)
    int dx_ctx_scheme_stats(const dx_ctx *ctx, size_t index, dx_scheme_stats *out)
    int dx_ctx_goal_value(const dx_ctx *ctx, size_t scheme, size_t goal, uint64_t *out)
    size_t dx_ctx_nr_tried_regions(const dx_ctx *ctx, size_t index)
    size_t dx_ctx_tried_regions_fill(const dx_ctx *ctx, size_t index, dx_tried_region *out,
                                     size_t cap)

    bint dx_ctx_snapshot_span(const dx_ctx *ctx, uint64_t *start_ns, uint64_t *end_ns)
    void dx_ctx_snapshot_intervals(const dx_ctx *ctx, uint64_t *sample_us, uint64_t *aggr_us)
    size_t dx_ctx_snapshot_nr_regions(const dx_ctx *ctx, size_t index)
    size_t dx_ctx_snapshot_fill(const dx_ctx *ctx, size_t index, dx_region_out *out, size_t cap)
    uint64_t dx_ctx_snapshot_nr_checks(const dx_ctx *ctx, size_t index)

    size_t dx_ctx_ops_counters(const dx_ctx *ctx, dx_counter *out, size_t cap)


cdef extern from "sim.h" nogil:
    struct dx_sim_range:
        uint64_t start
        uint64_t end
        double prob
        double rate_hz

    struct dx_sim_phase:
        uint64_t duration_us
        size_t nr_ranges
        const dx_sim_range *ranges

    int dx_sim_register()
    int dx_sim_add_target(dx_ctx *ctx, int64_t id, uint64_t size, uint64_t page_size,
                          const dx_sim_phase *phases, size_t nr_phases)


cdef extern from "vaddr.h" nogil:
    int dx_vaddr_register()
    int dx_vaddr_add_target(dx_ctx *ctx, int pid, const dx_range *ranges, size_t nr_ranges)


cdef extern from "paddr.h" nogil:
    int dx_paddr_register()
    int dx_paddr_add_target(dx_ctx *ctx, int64_t id, const dx_range *ranges, size_t nr_ranges)


cdef extern from "ops-common.h" nogil:
    const uint64_t PM_PFN_MASK
    const uint64_t PM_SOFT_DIRTY
    const uint64_t PM_MMAP_EXCLUSIVE
    const uint64_t PM_FILE
    const uint64_t PM_SWAP
    const uint64_t PM_PRESENT

    const uint64_t KPF_LRU
    const uint64_t KPF_COMPOUND_HEAD
    const uint64_t KPF_COMPOUND_TAIL
    const uint64_t KPF_HUGE
    const uint64_t KPF_NOPAGE
    const uint64_t KPF_THP
    const uint64_t KPF_ZERO_PAGE

    int dx_read_maps(const char *maps_path, dx_range **out, size_t *nr_out)
