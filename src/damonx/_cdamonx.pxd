# A one-to-one mirror of csrc/damonx.h and the backend headers: keep in step.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "damonx.h" nogil:
    struct dx_attrs:
        uint64_t sample_us
        uint64_t aggr_us
        uint64_t ops_update_us
        uint32_t min_nr_regions
        uint32_t max_nr_regions
        uint64_t min_region_sz

    struct dx_range:
        uint64_t start
        uint64_t end

    struct dx_region:
        uint64_t start
        uint64_t end
        uint64_t sampling_addr
        uint64_t ops_cookie
        uint32_t nr_accesses
        uint32_t nr_accesses_bp
        uint32_t last_nr_accesses
        uint32_t age

    struct dx_region_out:
        uint64_t start
        uint64_t end
        uint32_t nr_accesses
        uint32_t age

    struct dx_target:
        int64_t id
        bint dead
        size_t nr_regions
        dx_region *regions
        void *priv

    enum:
        DX_ACTION_STAT
        DX_ACTION_WILLNEED
        DX_ACTION_COLD
        DX_ACTION_PAGEOUT
        DX_ACTION_HUGEPAGE
        DX_ACTION_NR

    struct dx_scheme:
        uint64_t min_sz, max_sz
        uint32_t min_nr_accesses, max_nr_accesses
        uint32_t min_age, max_age
        int action
        uint64_t nr_tried, sz_tried, nr_applied, sz_applied

    struct dx_operations:
        const char *name

    enum:
        DX_CLOCK_REAL
        DX_CLOCK_VIRTUAL

    struct dx_stats:
        uint64_t nr_samples
        uint64_t nr_region_checks
        uint64_t nr_aggregations
        uint64_t nr_updates
        uint64_t nr_targets_lost

    struct dx_ctx:
        dx_attrs attrs
        dx_operations ops
        void *ops_priv
        int clock
        dx_target *targets
        size_t nr_targets
        dx_scheme *schemes
        size_t nr_schemes
        bint started
        uint64_t now_ns
        dx_region_out *snap
        size_t *snap_nr
        uint64_t snap_start_ns
        uint64_t snap_end_ns
        dx_stats stats

    void dx_attrs_default(dx_attrs *attrs)
    int dx_attrs_validate(const dx_attrs *attrs)
    int dx_ctx_new(dx_ctx **out, const dx_attrs *attrs, uint64_t seed)
    void dx_ctx_free(dx_ctx *ctx)
    void dx_ctx_set_ops(dx_ctx *ctx, const dx_operations *ops, void *ops_priv)
    int dx_ctx_add_target(dx_ctx *ctx, int64_t id, void *priv)
    int dx_ctx_add_scheme(dx_ctx *ctx, const dx_scheme *scheme)
    void dx_ctx_request_stop(dx_ctx *ctx)
    size_t dx_ctx_nr_regions(const dx_ctx *ctx)
    size_t dx_ctx_nr_live_targets(const dx_ctx *ctx)
    int dx_ctx_run_aggregation(dx_ctx *ctx)
    int dx_init_regions(dx_ctx *ctx, dx_target *t, const dx_range *ranges, size_t nr_ranges)


cdef extern from "ops_sim.h" nogil:
    struct dx_sim_range:
        uint64_t start
        uint64_t end
        double prob

    struct dx_sim_phase:
        uint64_t duration_us
        size_t nr_ranges
        const dx_sim_range *ranges

    void dx_sim_ops(dx_operations *ops)
    int dx_sim_add_target(dx_ctx *ctx, int64_t id, uint64_t size, uint64_t page_size,
                          const dx_sim_phase *phases, size_t nr_phases)


cdef extern from "ops_proc.h" nogil:
    enum:
        DX_PROC_VADDR
        DX_PROC_FVADDR
        DX_PROC_PADDR

    struct dx_proc_stats:
        uint64_t nr_pagemap_reads
        uint64_t nr_kpageflags_reads
        uint64_t nr_bitmap_writes
        uint64_t nr_bitmap_reads
        uint64_t nr_absent
        uint64_t nr_unmapped
        uint64_t nr_shared
        uint64_t nr_maps_reads

    int dx_proc_attach(dx_ctx *ctx, int mode, const char *procfs, const char *sysfs)
    int dx_proc_add_pid(dx_ctx *ctx, int pid, const dx_range *ranges, size_t nr_ranges)
    int dx_proc_add_ranges(dx_ctx *ctx, int64_t id, const dx_range *ranges, size_t nr_ranges)
    int dx_proc_read_maps(const char *maps_path, dx_range **out, size_t *nr_out)
    const dx_proc_stats *dx_proc_get_stats(const dx_ctx *ctx)

