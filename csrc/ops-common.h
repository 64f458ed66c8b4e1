/* SPDX-License-Identifier: MIT */
/*
 * What the real access checks of vaddr, fvaddr and paddr share: reading
 * /proc/PID/maps, /proc/PID/pagemap (virtual page to PFN) and
 * /proc/kpageflags (compound pages, LRU), and the idle page bitmap
 * /sys/kernel/mm/page_idle/bitmap (mark a page idle, later read whether it
 * still is).
 *
 * A sample costs, per region: at most one pagemap read (vaddr, fvaddr), one
 * to three kpageflags reads and one bitmap write at prepare time, one bitmap
 * read at check time, and, for a page whose bit reads accessed, one more
 * pagemap read and one more kpageflags read to confirm that it is still the
 * page that was marked; work is skipped for pages known to be absent and
 * shared by regions whose samples fall in the same page, folio, bitmap word
 * or block of pagemap entries.
 *
 * Pages count in the system's page size (PFNs, pagemap entries), which the
 * minimum region size may exceed but not undercut.
 */
#ifndef DAMONX_OPS_COMMON_H
#define DAMONX_OPS_COMMON_H

#include "damonx.h"

/* /proc/PID/pagemap entries (Documentation/admin-guide/mm/pagemap.rst). */
#define PM_PFN_MASK ((1ULL << 55) - 1) /* 0 without CAP_SYS_ADMIN */
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_MMAP_EXCLUSIVE (1ULL << 56)
#define PM_FILE (1ULL << 61)
#define PM_SWAP (1ULL << 62)
#define PM_PRESENT (1ULL << 63)

/*
 * /proc/kpageflags, as masks (include/uapi/linux/kernel-page-flags.h numbers
 * the bits: KPF_LRU there is 5, here 1 << 5).
 */
#define KPF_LRU (1ULL << 5)
#define KPF_ACTIVE (1ULL << 6)
#define KPF_MMAP (1ULL << 11)
#define KPF_ANON (1ULL << 12)
#define KPF_COMPOUND_HEAD (1ULL << 15)
#define KPF_COMPOUND_TAIL (1ULL << 16)
#define KPF_HUGE (1ULL << 17) /* hugetlbfs */
#define KPF_NOPAGE (1ULL << 20)
#define KPF_THP (1ULL << 22)
#define KPF_ZERO_PAGE (1ULL << 24)

/* Pagemap entries re-read with one pread at most: a 4 KiB block of them. */
#define DX_PAGEMAP_BATCH 512

/*
 * The mappings of a process, from a /proc/PID/maps file: sorted ranges, the
 * kernel's half of the address space (the vsyscall page) left out.  *out is
 * the caller's to free.
 */
int dx_read_maps(const char *maps_path, struct dx_range **out, size_t *nr_out);

/* Counters of the work done, for benchmarks and diagnostics. */
struct dx_access_check_stats {
	uint64_t nr_pagemap_reads;
	uint64_t nr_kpageflags_reads;
	uint64_t nr_bitmap_writes;
	uint64_t nr_bitmap_reads;
	uint64_t nr_absent; /* samples on pages not present / no PFN */
	uint64_t nr_unmapped; /* of which between mappings: no pagemap read */
	uint64_t nr_shared; /* samples answered by another region's check */
	uint64_t nr_maps_reads;
	/*
	 * samples whose bit read accessed but whose page was unmapped,
	 * replaced or taken off the LRU lists since it was marked, or whose
	 * process exited: counted as not accessed
	 */
	uint64_t nr_changed;
};

/* The state of the access checks: ctx->ops_priv of vaddr, fvaddr, paddr. */
struct dx_access_check {
	uint64_t page_size; /* bytes */
	/*
	 * folios are at most PMD-sized: a PMD maps page_size / 8 pages, so
	 * 1 << pmd_order is 512 pages of 4 KiB, 2048 of 16 KiB, 8192 of 64 KiB
	 */
	int pmd_order;
	int bitmap_fd;
	int kpageflags_fd;
	int kpagecgroup_fd; /* -1 without CONFIG_MEMCG: no memcg filter */
	char procfs[256];
	struct dx_access_check_stats stats;
	uint64_t batch[DX_PAGEMAP_BATCH]; /* pagemap entries being re-read */
};

/*
 * The entries of the operations tables that vaddr, fvaddr and paddr share.
 * attach opens the idle page bitmap and kpageflags under env's roots:
 * -ENOENT when the bitmap is missing (no CONFIG_IDLE_PAGE_TRACKING),
 * -EACCES/-EPERM when they cannot be opened, -EINVAL for a page size that is
 * no power of two of at least 1 KiB, or a minimum region size below it.
 */
int dx_ac_attach(struct dx_ctx *ctx, const struct dx_ops_env *env);
size_t dx_ac_get_counters(const struct dx_ctx *ctx, struct dx_counter *out,
			  size_t cap);
void dx_ac_cleanup(struct dx_ctx *ctx);

/*
 * prepare_access_checks, given how a backend finds the PFN of a sampled
 * address (0 when there is none): marks the folio head of every region's
 * sampled page idle, one bitmap write per word of neighbouring heads.  A
 * region's ops_cookie keeps its folio head + 1 (0: nothing to check) and
 * its sampled PFN from prepare to check.
 */
typedef uint64_t (*dx_sample_pfn_fn)(struct dx_access_check *ac,
				     struct dx_target *t, uint64_t addr);
int dx_ac_prepare_access_checks(struct dx_ctx *ctx, dx_sample_pfn_fn pfn_of);

/*
 * check_accesses, given how a backend confirms that the sampled pages of a
 * target whose bits read accessed are still the ones marked (NULL where they
 * cannot change: physical pages).  A page leaves the LRU lists when it is
 * migrated, collapsed, reclaimed or freed, and then its bit reads accessed
 * whatever happened: so after the bits are read, confirm() forgets
 * (dx_ac_forget()) the samples whose page changed, and the folios of the
 * others must still be on an LRU list.  Returns the largest nr_accesses.
 */
typedef void (*dx_confirm_fn)(struct dx_ctx *ctx, struct dx_target *t);
int dx_ac_check_accesses(struct dx_ctx *ctx, dx_confirm_fn confirm);
/* Count a region's sample as not accessed: its page changed since marked. */
void dx_ac_forget(struct dx_access_check *ac, struct dx_region *r);
/*
 * Confirm the samples of a process found accessed against its pagemap: a
 * page that is no longer present, or another PFN, is forgotten.  Entries of
 * neighbouring samples in one block of DX_PAGEMAP_BATCH come in one pread.
 */
void dx_confirm_pagemap(struct dx_access_check *ac, struct dx_target *t,
			int pagemap_fd);

/* The PFN of a process's page at addr from its pagemap, or 0 when none. */
uint64_t dx_pagemap_pfn(struct dx_access_check *ac, int pagemap_fd,
			uint64_t addr);
/*
 * The PFN whose idle bit stands for the page at pfn: the head of its folio.
 * 0 when the page cannot be tracked.
 */
uint64_t dx_folio_head(struct dx_access_check *ac, uint64_t pfn);

/*
 * What the page filters of a scheme need to know of the page at pfn: its
 * flags, and, for the filter types given (DX_FILTER_BIT()s), its folio's
 * size, its memory cgroup, and whether it was accessed since last looked
 * at (then it is marked idle again, as the kernel marks it old).  The
 * young state is the folio's: look once per folio (out->head_pfn,
 * out->nr_pages), or the second look finds it old.
 */
void dx_ac_page_info(struct dx_access_check *ac, uint64_t pfn, uint32_t types,
		     struct dx_page_info *out);

#endif /* DAMONX_OPS_COMMON_H */
