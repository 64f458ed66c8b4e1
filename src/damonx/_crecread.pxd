# A one-to-one mirror of csrc/recread.h (damo's JSON record schema read into
# columns).  Keep in step with it.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "recread.h" nogil:
    struct dx_rr_filter:
        bint by_time
        uint64_t t0_ns, t1_ns
        bint by_addr
        uint64_t addr_start, addr_end
        bint has_base, base_fixed
        uint64_t base_ns
        bint time_decided, base_moved

    struct dx_rr_region:
        uint64_t start
        uint64_t end
        uint32_t nr_accesses
        uint32_t age

    struct dx_rr_range:
        uint64_t start
        uint64_t end

    enum:
        DX_RR_HAS_SAMPLE
        DX_RR_HAS_CHECKS

    struct dx_rr_snap:
        uint64_t start_ns, end_ns
        size_t nr_regions
        uint64_t sample_us
        uint64_t nr_checks
        unsigned int flags

    struct dx_rr_target:
        dx_rr_filter *filter
        bint keep
        uint64_t nr_seen
        size_t nr_snaps, cap_snaps
        uint64_t *start_ns
        uint64_t *end_ns
        uint64_t *seen_index
        int64_t *offsets
        uint64_t *sample_us
        uint64_t *nr_checks
        uint8_t *flags
        size_t nr_regions, cap_regions
        dx_rr_region *regions
        size_t nr_unions, cap_unions
        dx_rr_range *unions
        dx_rr_snap pending

    void dx_rr_target_init(dx_rr_target *t, dx_rr_filter *filter, bint keep)
    void dx_rr_target_free(dx_rr_target *t)
    dx_rr_region *dx_rr_pending(dx_rr_target *t, size_t nr)
    int dx_rr_commit(dx_rr_target *t, const dx_rr_snap *s)

    enum dx_rr_status:
        DX_RR_END
        DX_RR_NEXT
        DX_RR_MORE
        DX_RR_SLOW
        DX_RR_EXTRAS

    enum:
        DX_RR_EXTRA_SAMPLE
        DX_RR_EXTRA_CHECKS
        DX_RR_EXTRA_STATS
        DX_RR_EXTRA_STATS_LIST
        DX_RR_NR_EXTRAS

    struct dx_rr_result:
        size_t pos, start
        size_t last_end
        size_t nr_committed
        size_t snap_end
        size_t extra[4][2]
        unsigned int has_extra

    int dx_rr_parse(dx_rr_target *t, const char *text, size_t len, size_t pos,
                    dx_rr_result *r)

    int dx_rr_heatmap_add(const dx_rr_region *regions, size_t nr_regions,
                          const int64_t *offsets, size_t nr_snaps,
                          const double *edges, size_t nr_abins, double scale,
                          const int64_t *pair_snap, const int64_t *pair_bin,
                          const double *pair_weight, size_t nr_pairs,
                          size_t nr_tbins, double *num, double *den)
