// SPDX-License-Identifier: MIT
/*
 * Unit tests of the real access checks (ops-common.c, vaddr.c, paddr.c) on
 * a fake /proc and /sys: regular files in a temporary directory stand for
 * PID/maps, PID/pagemap, kpageflags and the idle page bitmap.
 *
 * A regular file is no page_idle bitmap: a write replaces a word instead of
 * setting idle bits, and a read gives what the file holds.  So the tests
 * call prepare_access_checks and check_accesses themselves, read what
 * prepare wrote, and write between the two calls the bits they want check
 * to find: a set bit is a page still idle, a clear bit a page accessed.
 *
 * Build and run: make -C csrc test   (AddressSanitizer + UBSan)
 */
#define _GNU_SOURCE
#include "../ops-common.c"
#include "../paddr.c"
#include "../vaddr.c"
#include "../sim.h"
#include "test.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define PAGE 4096ULL

/* The fake process's mappings, and the PFNs behind them. */
#define FAKE_SMALL 0x100000ULL /* 16 pages of 4 KiB */
#define FAKE_THP 0x200000ULL /* one PMD-sized folio */
#define FAKE_MTHP 0x600000ULL /* four folios of 16 pages (order 4) */
#define FAKE_STACK 0x7ff000000ULL
#define PFN_SMALL 0x1000ULL
#define PFN_THP 0x2000ULL
#define PFN_MTHP 0x4000ULL /* PMD-aligned: the first head is on a PMD edge */

/* Pages of FAKE_SMALL that cannot be tracked, and why. */
enum {
	SMALL_HIDDEN_PFN = 3, /* present, PFN reads 0 (no CAP_SYS_ADMIN) */
	SMALL_SWAPPED = 4,
	SMALL_NOT_PRESENT = 5,
	SMALL_NOT_LRU = 6,
	SMALL_ZERO_PAGE = 7,
	SMALL_NO_PAGE = 8,
	SMALL_HUGETLB = 9,
	SMALL_NR = 16,
};

static const char maps_text[] =
	"00100000-00110000 rw-p 00000000 00:00 0\n"
	"00200000-00400000 rw-p 00000000 00:00 0\n"
	"00600000-00640000 rw-p 00000000 00:00 0\n"
	"7ff000000-7ff001000 rw-p 00000000 00:00 0  [stack]\n"
	"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n";

static char root[64];
static char procfs[128], sysfs[128];
static char pagemap_path[256], kpageflags_path[256], bitmap_path[256];
static char maps_path[256];

static void put_u64(const char *path, uint64_t index, uint64_t value)
{
	int fd = open(path, O_WRONLY);

	if (fd < 0 || pwrite(fd, &value, 8, (off_t)(index * 8)) != 8) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static uint64_t get_u64(const char *path, uint64_t index)
{
	uint64_t value = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || read_u64(fd, index, &value)) {
		perror(path);
		exit(2);
	}
	close(fd);
	return value;
}

static void write_file(const char *path, const char *text, off_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    (size && ftruncate(fd, size))) {
		perror(path);
		exit(2);
	}
	close(fd);
}

static void make_dirs(const char *path)
{
	char buf[256], *p;

	snprintf(buf, sizeof(buf), "%s", path);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0755);
		*p = '/';
	}
	mkdir(buf, 0755);
}

/* Write count values from index on. */
static void put_u64s(const char *path, uint64_t index, uint64_t first,
		     uint64_t step, uint64_t or_mask, uint64_t count)
{
	uint64_t *v = malloc(count * sizeof(*v)), i;
	int fd = open(path, O_WRONLY);

	for (i = 0; v && i < count; i++)
		v[i] = (first + i * step) | or_mask;
	if (!v || fd < 0 ||
	    pwrite(fd, v, count * 8, (off_t)(index * 8)) !=
		    (ssize_t)(count * 8)) {
		perror(path);
		exit(2);
	}
	close(fd);
	free(v);
}

/* The standard content of the fake tree: 4 KiB pages. */
static void fill_tree(void);

/* A fake tree for this process (so that its pidfd is alive). */
static void make_tree(void)
{
	char dir[256];

	snprintf(root, sizeof(root), "/tmp/dx-test-access-XXXXXX");
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		exit(2);
	}
	snprintf(procfs, sizeof(procfs), "%s/proc", root);
	snprintf(sysfs, sizeof(sysfs), "%s/sys", root);
	snprintf(dir, sizeof(dir), "%s/%d", procfs, getpid());
	make_dirs(dir);
	snprintf(dir, sizeof(dir), "%s/kernel/mm/page_idle", sysfs);
	make_dirs(dir);

	snprintf(maps_path, sizeof(maps_path), "%s/%d/maps", procfs, getpid());
	snprintf(pagemap_path, sizeof(pagemap_path), "%s/%d/pagemap", procfs,
		 getpid());
	snprintf(kpageflags_path, sizeof(kpageflags_path), "%s/kpageflags",
		 procfs);
	snprintf(bitmap_path, sizeof(bitmap_path),
		 "%s/kernel/mm/page_idle/bitmap", sysfs);
	fill_tree();
}

static void fill_tree(void)
{
	uint64_t i;

	write_file(maps_path, maps_text, 0);
	write_file(pagemap_path, "",
		   (off_t)((FAKE_MTHP + 64 * PAGE) / PAGE * 8));
	for (i = 0; i < SMALL_NR; i++)
		put_u64(pagemap_path, FAKE_SMALL / PAGE + i,
			PM_PRESENT | (PFN_SMALL + i));
	put_u64(pagemap_path, FAKE_SMALL / PAGE + SMALL_HIDDEN_PFN, PM_PRESENT);
	put_u64(pagemap_path, FAKE_SMALL / PAGE + SMALL_SWAPPED,
		PM_SWAP | 0x1234); /* swap type and offset, no PFN */
	put_u64(pagemap_path, FAKE_SMALL / PAGE + SMALL_NOT_PRESENT, 0);
	for (i = 0; i < 512; i++)
		put_u64(pagemap_path, FAKE_THP / PAGE + i,
			PM_PRESENT | (PFN_THP + i));
	for (i = 0; i < 64; i++)
		put_u64(pagemap_path, FAKE_MTHP / PAGE + i,
			PM_PRESENT | (PFN_MTHP + i));

	write_file(kpageflags_path, "", (off_t)((PFN_MTHP + 64) * 8));
	for (i = 0; i < SMALL_NR; i++)
		put_u64(kpageflags_path, PFN_SMALL + i, KPF_LRU);
	put_u64(kpageflags_path, PFN_SMALL + SMALL_NOT_LRU, 0);
	put_u64(kpageflags_path, PFN_SMALL + SMALL_ZERO_PAGE, KPF_ZERO_PAGE);
	put_u64(kpageflags_path, PFN_SMALL + SMALL_NO_PAGE, KPF_NOPAGE);
	put_u64(kpageflags_path, PFN_SMALL + SMALL_HUGETLB,
		KPF_HUGE | KPF_COMPOUND_HEAD | KPF_LRU);
	put_u64(kpageflags_path, PFN_THP,
		KPF_LRU | KPF_COMPOUND_HEAD | KPF_THP);
	for (i = 1; i < 512; i++)
		put_u64(kpageflags_path, PFN_THP + i,
			KPF_COMPOUND_TAIL | KPF_THP);
	for (i = 0; i < 64; i++)
		put_u64(kpageflags_path, PFN_MTHP + i,
			i % 16 ? KPF_COMPOUND_TAIL | KPF_THP :
				 KPF_LRU | KPF_COMPOUND_HEAD | KPF_THP);

	write_file(bitmap_path, "", (off_t)((PFN_MTHP + 64) / 8));
}

static void remove_tree(void)
{
	char dir[256];

	unlink(maps_path);
	unlink(pagemap_path);
	unlink(kpageflags_path);
	unlink(bitmap_path);
	snprintf(dir, sizeof(dir), "%s/%d", procfs, getpid());
	rmdir(dir);
	rmdir(procfs);
	snprintf(dir, sizeof(dir), "%s/kernel/mm/page_idle", sysfs);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "%s/kernel/mm", sysfs);
	rmdir(dir);
	snprintf(dir, sizeof(dir), "%s/kernel", sysfs);
	rmdir(dir);
	rmdir(sysfs);
	rmdir(root);
}

/* Every word of the bitmap back to 0: no page marked idle. */
static void clear_bitmap(void)
{
	write_file(bitmap_path, "", (off_t)((PFN_MTHP + 64) / 8));
}

/*
 * A context of ops on the fake tree: pages of page_size bytes (0: the
 * system's), regions of at least min_sz; or what selecting ops returned.
 */
static int try_ctx(struct dx_ctx **ctx, const char *ops, uint64_t page_size,
		   uint64_t min_sz)
{
	struct dx_ops_env env = { .procfs = procfs,
				  .sysfs = sysfs,
				  .page_size = page_size };
	struct dx_attrs a;
	int err;

	dx_attrs_default(&a);
	a.min_nr_regions = 3;
	a.min_region_sz = min_sz;
	*ctx = NULL;
	if (dx_ctx_new(ctx, &a, 1)) {
		fprintf(stderr, "cannot make a context\n");
		exit(2);
	}
	err = dx_ctx_select_ops(*ctx, ops, &env);
	if (err) {
		dx_ctx_free(*ctx);
		*ctx = NULL;
	}
	return err;
}

static struct dx_ctx *make_paged_ctx(const char *ops, uint64_t page_size,
				     uint64_t min_sz)
{
	struct dx_ctx *ctx;

	if (try_ctx(&ctx, ops, page_size, min_sz)) {
		fprintf(stderr, "cannot make a %s context on %s\n", ops, root);
		exit(2);
	}
	return ctx;
}

static struct dx_ctx *make_ctx(const char *ops)
{
	return make_paged_ctx(ops, PAGE, PAGE);
}

/* An fvaddr context on the fake process, every mapping a fixed range. */
static struct dx_ctx *make_fvaddr_ctx(void)
{
	struct dx_range ranges[] = { { FAKE_SMALL,
				       FAKE_SMALL + SMALL_NR * PAGE },
				     { FAKE_THP, FAKE_THP + 512 * PAGE },
				     { FAKE_MTHP, FAKE_MTHP + 64 * PAGE } };
	struct dx_ctx *ctx = make_ctx("fvaddr");

	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), ranges, 3), 0);
	return ctx;
}

/*
 * Make the only target's regions one minimum region per sample address
 * (ascending).
 */
static void set_samples(struct dx_ctx *ctx, const uint64_t *addrs, size_t nr)
{
	struct dx_target *t = &ctx->targets[0];
	uint64_t sz = ctx->attrs.min_region_sz;
	size_t i;

	dx_target_clear_regions(t);
	for (i = 0; i < nr; i++) {
		uint64_t start = addrs[i] & ~(sz - 1);

		EXPECT_EQ(dx_target_add_region(t, start, start + sz), 0);
		t->regions[i].sampling_addr = addrs[i];
	}
}

/* Each region's nr_accesses, against want[]. */
static void expect_accesses(struct dx_ctx *ctx, const uint32_t *want, size_t nr)
{
	struct dx_target *t = &ctx->targets[0];
	size_t i;

	EXPECT_EQ(t->nr_regions, nr);
	for (i = 0; i < nr && i < t->nr_regions; i++)
		EXPECT_EQ(t->regions[i].nr_accesses, want[i]);
}

static const struct dx_access_check_stats *stats_of(struct dx_ctx *ctx)
{
	return &((struct dx_access_check *)ctx->ops_priv)->stats;
}

/* ---------------------------------------------------------------- tests */

static void test_read_maps(void)
{
	char path[256], *text, *p;
	struct dx_range *maps = NULL;
	size_t nr = 0, i;

	EXPECT_EQ(dx_read_maps(maps_path, &maps, &nr), 0);
	/* the vsyscall page is left out */
	EXPECT_EQ(nr, 4);
	if (nr == 4) {
		EXPECT_EQ(maps[0].start, FAKE_SMALL);
		EXPECT_EQ(maps[1].end, FAKE_THP + 512 * PAGE);
		EXPECT_EQ(maps[3].start, FAKE_STACK);
		EXPECT_EQ(maps[3].end, FAKE_STACK + PAGE);
	}
	free(maps);

	/* past the first read buffer, malformed lines, no final newline */
	text = malloc(5000 * 64);
	p = text;
	p += sprintf(p, "not a mapping\n\n");
	for (i = 0; i < 5000; i++)
		p += sprintf(p, "%llx-%llx r--p 00000000 00:00 0   /a/b/c%s",
			     (unsigned long long)(0x10000 + 2 * i * PAGE),
			     (unsigned long long)(0x10000 + (2 * i + 1) * PAGE),
			     i == 4999 ? "" : "\n");
	snprintf(path, sizeof(path), "%s/big-maps", root);
	write_file(path, text, 0);
	free(text);
	EXPECT_EQ(dx_read_maps(path, &maps, &nr), 0);
	EXPECT_EQ(nr, 5000);
	if (nr == 5000) {
		EXPECT_EQ(maps[0].start, 0x10000);
		EXPECT_EQ(maps[4999].end, 0x10000 + 9999 * PAGE);
	}
	free(maps);
	unlink(path);

	EXPECT_EQ(dx_read_maps("/nonexistent/maps", &maps, &nr), -ENOENT);
}

static void test_pagemap_lookup(void)
{
	struct dx_ctx *ctx = make_fvaddr_ctx();
	struct dx_access_check *ac = ctx->ops_priv;
	int fd = ((struct va_target *)ctx->targets[0].priv)->pagemap_fd;

	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_SMALL), PFN_SMALL);
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_SMALL + PAGE + 123),
		  PFN_SMALL + 1);
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_THP + 7 * PAGE), PFN_THP + 7);
	/* no PFN: hidden, swapped out, not present, past the file's end */
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_SMALL + SMALL_HIDDEN_PFN * PAGE),
		  0);
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_SMALL + SMALL_SWAPPED * PAGE), 0);
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_SMALL + SMALL_NOT_PRESENT * PAGE),
		  0);
	EXPECT_EQ(dx_pagemap_pfn(ac, fd, FAKE_STACK), 0);
	EXPECT_EQ(ac->stats.nr_pagemap_reads, 7);
	dx_ctx_free(ctx);
}

/* The head of pfn's folio, and how many kpageflags reads it took. */
static uint64_t head_of(struct dx_access_check *ac, uint64_t pfn,
			uint64_t *nr_reads)
{
	uint64_t before = ac->stats.nr_kpageflags_reads, head;

	head = dx_folio_head(ac, pfn);
	*nr_reads = ac->stats.nr_kpageflags_reads - before;
	return head;
}

static void test_folio_head(void)
{
	struct dx_ctx *ctx = make_fvaddr_ctx();
	struct dx_access_check *ac = ctx->ops_priv;
	uint64_t offs[] = { 1, 2, 3, 255, 256, 300, 511 }, nr_reads;
	size_t i;

	/* a small page is its own head */
	EXPECT_EQ(head_of(ac, PFN_SMALL + 1, &nr_reads), PFN_SMALL + 1);
	EXPECT_EQ(nr_reads, 1);
	/* pages that cannot be tracked */
	EXPECT_EQ(dx_folio_head(ac, PFN_SMALL + SMALL_NOT_LRU), 0);
	EXPECT_EQ(dx_folio_head(ac, PFN_SMALL + SMALL_ZERO_PAGE), 0);
	EXPECT_EQ(dx_folio_head(ac, PFN_SMALL + SMALL_NO_PAGE), 0);
	EXPECT_EQ(dx_folio_head(ac, PFN_SMALL + SMALL_HUGETLB), 0);
	EXPECT_EQ(dx_folio_head(ac, PFN_MTHP + 64 + 1000), 0); /* no flags */

	/* a PMD-sized folio: its head, in at most three reads */
	EXPECT_EQ(head_of(ac, PFN_THP, &nr_reads), PFN_THP);
	EXPECT_EQ(nr_reads, 1);
	for (i = 0; i < ARRAY_SIZE(offs); i++) {
		EXPECT_EQ(head_of(ac, PFN_THP + offs[i], &nr_reads), PFN_THP);
		EXPECT(nr_reads <= 3);
	}

	/*
	 * Folios of 16 pages: each tail finds its own folio's head, never the
	 * PMD-aligned PFN that heads the first one.
	 */
	for (i = 0; i < 64; i++)
		EXPECT_EQ(dx_folio_head(ac, PFN_MTHP + i),
			  PFN_MTHP + i / 16 * 16);

	/* a head that is not on an LRU list cannot be tracked, nor its tails */
	put_u64(kpageflags_path, PFN_THP, KPF_COMPOUND_HEAD | KPF_THP);
	EXPECT_EQ(dx_folio_head(ac, PFN_THP + 5), 0);
	EXPECT_EQ(dx_folio_head(ac, PFN_THP + 300), 0);
	put_u64(kpageflags_path, PFN_MTHP + 16, KPF_COMPOUND_HEAD | KPF_THP);
	EXPECT_EQ(dx_folio_head(ac, PFN_MTHP + 17), 0);
	put_u64(kpageflags_path, PFN_THP,
		KPF_LRU | KPF_COMPOUND_HEAD | KPF_THP);
	put_u64(kpageflags_path, PFN_MTHP + 16,
		KPF_LRU | KPF_COMPOUND_HEAD | KPF_THP);
	dx_ctx_free(ctx);
}

/*
 * Heads that share a bitmap word are marked with one write, a folio
 * sampled twice in a row once; check reads each word once and finds
 * accessed exactly the pages whose bit the test cleared.
 */
static void test_marks_in_batches_and_checks(void)
{
	uint64_t addrs[] = {
		FAKE_SMALL, /* PFN 0x1000: word 0x40 */
		FAKE_SMALL + PAGE, /* 0x1001: same word */
		FAKE_SMALL + 2 * PAGE + 99, /* 0x1002: same word */
		FAKE_THP + 5 * PAGE, /* tail of 0x2000: word 0x80 */
		FAKE_THP + 256 * PAGE, /* the same folio again */
		FAKE_MTHP + 17 * PAGE, /* tail of 0x4010: word 0x100 */
		FAKE_MTHP + 63 * PAGE, /* tail of 0x4030: same word */
	};
	struct dx_ctx *ctx = make_fvaddr_ctx();
	const struct dx_access_check_stats *st = stats_of(ctx);
	struct dx_region *r = NULL;
	size_t i;
	int max_nr;

	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	EXPECT_EQ(st->nr_bitmap_writes, 3);
	EXPECT_EQ(st->nr_absent, 0);
	EXPECT_EQ(st->nr_pagemap_reads, ARRAY_SIZE(addrs));
	EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64), 0x7);
	EXPECT_EQ(get_u64(bitmap_path, PFN_THP / 64), 0x1);
	EXPECT_EQ(get_u64(bitmap_path, PFN_MTHP / 64),
		  (1ULL << 16) | (1ULL << 48));
	EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64 + 1), 0);

	/* accessed since: 0x1000, 0x1002 and 0x4030; idle: the others */
	put_u64(bitmap_path, PFN_SMALL / 64, 0x2);
	put_u64(bitmap_path, PFN_MTHP / 64, 1ULL << 16);
	max_nr = ctx->ops.check_accesses(ctx);
	EXPECT_EQ(max_nr, 1);
	EXPECT_EQ(st->nr_bitmap_reads, 3);
	EXPECT_EQ(st->nr_shared, 4);
	{
		const uint32_t want[] = { 1, 0, 1, 0, 0, 0, 1 };

		i = 0;
		dx_for_each_region(r, &ctx->targets[0])
			EXPECT_EQ(r->nr_accesses, want[i++]);
	}
	dx_ctx_free(ctx);
}

/* Pages without a trackable folio are never marked and never accessed. */
static void test_untrackable_pages_count_as_not_accessed(void)
{
	uint64_t addrs[] = {
		FAKE_SMALL + SMALL_HIDDEN_PFN * PAGE,
		FAKE_SMALL + SMALL_SWAPPED * PAGE,
		FAKE_SMALL + SMALL_NOT_PRESENT * PAGE,
		FAKE_SMALL + SMALL_NOT_LRU * PAGE,
		FAKE_SMALL + SMALL_ZERO_PAGE * PAGE,
		FAKE_SMALL + SMALL_NO_PAGE * PAGE,
		FAKE_SMALL + SMALL_HUGETLB * PAGE,
	};
	struct dx_ctx *ctx = make_fvaddr_ctx();
	const struct dx_access_check_stats *st = stats_of(ctx);
	struct dx_region *r;

	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	EXPECT_EQ(st->nr_absent, ARRAY_SIZE(addrs));
	EXPECT_EQ(st->nr_bitmap_writes, 0);
	EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64), 0);
	/* every bit reads accessed, yet none of them counts */
	EXPECT_EQ(ctx->ops.check_accesses(ctx), 0);
	EXPECT_EQ(st->nr_bitmap_reads, 0);
	dx_for_each_region(r, &ctx->targets[0])
		EXPECT_EQ(r->nr_accesses, 0);
	dx_ctx_free(ctx);
}

/* vaddr: three regions from maps; samples between mappings need no read. */
static void test_vaddr_follows_the_mappings(void)
{
	struct dx_ctx *ctx = make_ctx("vaddr");
	const struct dx_access_check_stats *st = stats_of(ctx);
	struct dx_range fixed = { FAKE_SMALL, FAKE_SMALL + PAGE };
	struct dx_target *t;
	uint64_t addrs[] = { FAKE_SMALL + 0x80000, FAKE_THP + PAGE };

	/* vaddr finds the ranges itself */
	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), &fixed, 1), -EINVAL);
	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), NULL, 0), 0);
	t = &ctx->targets[0];
	EXPECT_EQ(t->nr_regions, 0);
	EXPECT_EQ(ctx->ops.init(ctx), 0);
	EXPECT_EQ(st->nr_maps_reads, 1);
	EXPECT(t->nr_regions >= 3);
	if (t->nr_regions >= 3) {
		EXPECT_EQ(t->regions[0].start, FAKE_SMALL);
		EXPECT_EQ(t->regions[t->nr_regions - 1].end, FAKE_STACK + PAGE);
	}
	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	EXPECT_EQ(st->nr_unmapped, 1);
	EXPECT_EQ(st->nr_absent, 1);
	EXPECT_EQ(st->nr_pagemap_reads, 1);
	EXPECT_EQ(get_u64(bitmap_path, PFN_THP / 64), 1);

	/* a new mapping is seen at the next update */
	write_file(maps_path,
		   "00100000-00110000 rw-p 00000000 00:00 0\n"
		   "00180000-00190000 rw-p 00000000 00:00 0\n"
		   "7ff000000-7ff001000 rw-p 00000000 00:00 0  [stack]\n",
		   0);
	EXPECT_EQ(ctx->ops.update(ctx), 0);
	EXPECT_EQ(st->nr_maps_reads, 2);
	EXPECT_EQ(t->regions[t->nr_regions - 1].end, FAKE_STACK + PAGE);
	EXPECT_EQ(((struct va_target *)t->priv)->nr_maps, 3);

	/*
	 * mappings with one gap between them: the two blocks, never the gap
	 * (the kernel would drop every region: docs/kernel-differences.md)
	 */
	write_file(maps_path,
		   "00100000-00110000 rw-p 00000000 00:00 0\n"
		   "00110000-00120000 rw-p 00000000 00:00 0\n"
		   "7ff000000-7ff001000 rw-p 00000000 00:00 0  [stack]\n",
		   0);
	EXPECT_EQ(ctx->ops.update(ctx), 0);
	EXPECT_EQ(t->regions[0].start, FAKE_SMALL);
	EXPECT_EQ(t->regions[t->nr_regions - 1].start, FAKE_STACK);
	EXPECT_EQ(t->regions[t->nr_regions - 1].end, FAKE_STACK + PAGE);
	EXPECT_EQ(t->regions[t->nr_regions - 2].end, FAKE_SMALL + 0x20000);
	write_file(maps_path, maps_text, 0);
	dx_ctx_free(ctx);
}

/* paddr: a sampled address is a physical one; no pagemap. */
static void test_paddr_samples_pfns_directly(void)
{
	struct dx_range phys = { PFN_THP * PAGE, (PFN_THP + 512) * PAGE };
	uint64_t addrs[] = { (PFN_THP + 3) * PAGE + 5, (PFN_THP + 400) * PAGE };
	struct dx_ctx *ctx = make_ctx("paddr");
	const struct dx_access_check_stats *st = stats_of(ctx);

	EXPECT_EQ(dx_paddr_add_target(ctx, 0, NULL, 0), -EINVAL);
	EXPECT_EQ(dx_paddr_add_target(ctx, 7, &phys, 1), 0);
	EXPECT_EQ(ctx->targets[0].nr_regions, 3); /* min_nr_regions */
	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	EXPECT_EQ(st->nr_pagemap_reads, 0);
	EXPECT_EQ(st->nr_bitmap_writes, 1);
	EXPECT_EQ(get_u64(bitmap_path, PFN_THP / 64), 1);
	EXPECT_EQ(ctx->ops.check_accesses(ctx), 0); /* still idle */
	dx_ctx_free(ctx);
}

/* ------------------------------------------------------------ page sizes */

/*
 * Regions of two pages on 4 KiB pages: the pagemap is still indexed by page,
 * so every sampled page is found (the page size is the system's, not the
 * minimum region size).
 */
static void test_regions_larger_than_pages(void)
{
	uint64_t addrs[] = { FAKE_SMALL + PAGE, FAKE_SMALL + 2 * PAGE + 5,
			     FAKE_SMALL + 13 * PAGE };
	struct dx_ctx *ctx = make_paged_ctx("fvaddr", 0, 2 * PAGE);
	struct dx_range range = { FAKE_SMALL, FAKE_SMALL + SMALL_NR * PAGE };
	const struct dx_access_check_stats *st;

	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), &range, 1), 0);
	st = stats_of(ctx);
	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	EXPECT_EQ(st->nr_absent, 0);
	EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64),
		  (1ULL << 1) | (1ULL << 2) | (1ULL << 13));
	dx_ctx_free(ctx);
}

/* Regions smaller than a page cannot be checked: refused. */
static void test_regions_smaller_than_pages_are_refused(void)
{
	struct dx_ctx *ctx;

	EXPECT_EQ(try_ctx(&ctx, "vaddr", 0, PAGE / 2), -EINVAL);
	EXPECT_EQ(try_ctx(&ctx, "paddr", 16384, 8192), -EINVAL);
	EXPECT_EQ(try_ctx(&ctx, "fvaddr", 65536, 16384), -EINVAL);
	EXPECT_EQ(try_ctx(&ctx, "fvaddr", 3000, 16384), -EINVAL);
	EXPECT_EQ(try_ctx(&ctx, "fvaddr", 16384, 16384), 0);
	dx_ctx_free(ctx);
	/* sim has no pages of the system's */
	EXPECT_EQ(try_ctx(&ctx, "sim", 0, 1024), 0);
	dx_ctx_free(ctx);
}

#define VA_SMALL 0x10000000ULL
#define VA_PMD 0x40000000ULL

/*
 * 4, 16 and 64 KiB pages (x86-64, arm64 and ppc64 kernels): pagemap entries
 * and PFNs count pages of that size, and a PMD maps page_size / 8 of them,
 * so a PMD-sized folio has order 9, 11 or 13.
 */
static void test_page_sizes(void)
{
	static const uint64_t sizes[] = { 4096, 16384, 65536 };
	size_t k;

	for (k = 0; k < ARRAY_SIZE(sizes); k++) {
		uint64_t p = sizes[k], nr_pmd = p / 8, nr_reads;
		uint64_t offs[] = { 1, 2, nr_pmd / 2 + 3, nr_pmd - 1 };
		struct dx_range ranges[] = { { VA_SMALL, VA_SMALL + 16 * p },
					     { VA_PMD, VA_PMD + nr_pmd * p } };
		uint64_t addrs[] = { VA_SMALL + 5 * p + 7,
				     VA_PMD + (nr_pmd - 2) * p };
		struct dx_range phys = { PFN_SMALL * p, (PFN_SMALL + 16) * p };
		uint64_t phys_addrs[] = { (PFN_SMALL + 9) * p + p - 1 };
		struct dx_access_check *ac;
		struct dx_ctx *ctx;
		size_t i;
		int fd;

		write_file(pagemap_path, "",
			   (off_t)((VA_PMD / p + nr_pmd) * 8));
		put_u64s(pagemap_path, VA_SMALL / p, PFN_SMALL, 1, PM_PRESENT,
			 16);
		put_u64s(pagemap_path, VA_PMD / p, PFN_THP, 1, PM_PRESENT,
			 nr_pmd);
		write_file(kpageflags_path, "",
			   (off_t)((PFN_THP + nr_pmd) * 8));
		put_u64s(kpageflags_path, PFN_SMALL, KPF_LRU, 0, 0, 16);
		put_u64(kpageflags_path, PFN_THP,
			KPF_LRU | KPF_COMPOUND_HEAD | KPF_THP);
		put_u64s(kpageflags_path, PFN_THP + 1,
			 KPF_COMPOUND_TAIL | KPF_THP, 0, 0, nr_pmd - 1);

		ctx = make_paged_ctx("fvaddr", p, p);
		EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), ranges, 2), 0);
		ac = ctx->ops_priv;
		fd = ((struct va_target *)ctx->targets[0].priv)->pagemap_fd;
		EXPECT_EQ(dx_pagemap_pfn(ac, fd, VA_SMALL + 3 * p + p / 2),
			  PFN_SMALL + 3);
		EXPECT_EQ(dx_pagemap_pfn(ac, fd, VA_PMD + (nr_pmd - 1) * p),
			  PFN_THP + nr_pmd - 1);
		for (i = 0; i < ARRAY_SIZE(offs); i++) {
			EXPECT_EQ(head_of(ac, PFN_THP + offs[i], &nr_reads),
				  PFN_THP);
			EXPECT(nr_reads <= 3);
		}
		clear_bitmap();
		set_samples(ctx, addrs, ARRAY_SIZE(addrs));
		EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
		EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64), 1ULL << 5);
		EXPECT_EQ(get_u64(bitmap_path, PFN_THP / 64), 1);
		dx_ctx_free(ctx);

		/* paddr: a physical address over the page size is a PFN */
		ctx = make_paged_ctx("paddr", p, p);
		EXPECT_EQ(dx_paddr_add_target(ctx, 0, &phys, 1), 0);
		clear_bitmap();
		set_samples(ctx, phys_addrs, 1);
		EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
		EXPECT_EQ(get_u64(bitmap_path, PFN_SMALL / 64), 1ULL << 9);
		dx_ctx_free(ctx);
	}
	fill_tree();
}

/* ------------------------------------------------- pages that change */

/*
 * Between mark and check a page may be migrated, collapsed, reclaimed or
 * freed: its idle bit then reads accessed (only LRU pages read idle).  The
 * check re-reads the pagemap and the folio's flags before it believes a
 * bit that says accessed.
 */
static void test_pages_that_changed_are_not_accessed(void)
{
	uint64_t addrs[] = {
		FAKE_SMALL, /* unchanged: accessed */
		FAKE_SMALL + 1 * PAGE, /* another page mapped there since */
		FAKE_SMALL + 2 * PAGE, /* swapped out since */
		FAKE_SMALL + 10 * PAGE, /* off the LRU lists since */
		FAKE_THP + 7 * PAGE, /* its folio's head left the LRU */
		FAKE_MTHP + 20 * PAGE, /* unchanged, in a large folio */
	};
	const uint32_t want[] = { 1, 0, 0, 0, 0, 1 };
	struct dx_ctx *ctx = make_fvaddr_ctx();
	const struct dx_access_check_stats *st = stats_of(ctx);

	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	put_u64(pagemap_path, FAKE_SMALL / PAGE + 1,
		PM_PRESENT | (PFN_SMALL + 12));
	put_u64(pagemap_path, FAKE_SMALL / PAGE + 2, PM_SWAP | 0x99);
	put_u64(kpageflags_path, PFN_SMALL + 10, 0);
	put_u64(kpageflags_path, PFN_THP, KPF_COMPOUND_HEAD | KPF_THP);
	clear_bitmap(); /* every bit reads accessed */
	EXPECT_EQ(ctx->ops.check_accesses(ctx), 1);
	expect_accesses(ctx, want, ARRAY_SIZE(want));
	EXPECT_EQ(st->nr_changed, 4);
	dx_ctx_free(ctx);
	fill_tree();
}

/*
 * The re-reads are for pages whose bit says accessed, and neighbours whose
 * pagemap entries share a 4 KiB block are re-read with one pread.
 */
static void test_rereads_are_batched(void)
{
	uint64_t addrs[] = {
		FAKE_SMALL,
		FAKE_SMALL + PAGE,
		FAKE_SMALL + 2 * PAGE,
		FAKE_SMALL + 11 * PAGE, /* the same 4 KiB of pagemap */
		FAKE_THP + 5 * PAGE, /* another block */
		FAKE_MTHP + 3 * PAGE, /* idle: no re-read */
	};
	const uint32_t want[] = { 1, 1, 1, 1, 1, 0 };
	struct dx_ctx *ctx = make_fvaddr_ctx();
	const struct dx_access_check_stats *st = stats_of(ctx);
	uint64_t pagemap_reads, kpageflags_reads;

	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	pagemap_reads = st->nr_pagemap_reads;
	kpageflags_reads = st->nr_kpageflags_reads;
	/* all accessed but the folio of 0x4000 */
	put_u64(bitmap_path, PFN_SMALL / 64, 0);
	put_u64(bitmap_path, PFN_THP / 64, 0);
	EXPECT_EQ(ctx->ops.check_accesses(ctx), 1);
	expect_accesses(ctx, want, ARRAY_SIZE(want));
	EXPECT_EQ(st->nr_pagemap_reads - pagemap_reads, 2);
	/* one flags read per folio found accessed */
	EXPECT_EQ(st->nr_kpageflags_reads - kpageflags_reads, 5);
	EXPECT_EQ(st->nr_changed, 0);
	dx_ctx_free(ctx);
}

/*
 * A process that exits between mark and check frees its pages, whose bits
 * then read accessed: its regions get no access from that sample, even when
 * its pagemap still reads (this fake one does, as a reused pid's would).
 */
static void test_a_process_that_exits_is_not_accessed(void)
{
	uint64_t addrs[] = { FAKE_SMALL, FAKE_THP };
	const uint32_t want[] = { 0, 0 };
	struct dx_range range = { FAKE_SMALL, FAKE_THP + 512 * PAGE };
	char dir[300], pm[320], maps[320];
	struct dx_ctx *ctx = make_ctx("fvaddr");
	pid_t child = fork();

	if (child == 0) {
		pause();
		_exit(0);
	}
	snprintf(dir, sizeof(dir), "%s/%d", procfs, (int)child);
	snprintf(pm, sizeof(pm), "%s/pagemap", dir);
	snprintf(maps, sizeof(maps), "%s/maps", dir);
	EXPECT_EQ(mkdir(dir, 0755), 0);
	EXPECT_EQ(symlink(pagemap_path, pm), 0);
	EXPECT_EQ(symlink(maps_path, maps), 0);
	EXPECT_EQ(dx_vaddr_add_target(ctx, child, &range, 1), 0);
	clear_bitmap();
	set_samples(ctx, addrs, ARRAY_SIZE(addrs));
	EXPECT_EQ(ctx->ops.prepare_access_checks(ctx), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	clear_bitmap();
	EXPECT_EQ(ctx->ops.check_accesses(ctx), 0);
	expect_accesses(ctx, want, ARRAY_SIZE(want));
	EXPECT_EQ(stats_of(ctx)->nr_changed, 2);
	dx_ctx_free(ctx);
	unlink(pm);
	unlink(maps);
	rmdir(dir);
}

/* Each backend takes only the targets and gives only the counters it has. */
static void test_backends_keep_to_their_contexts(void)
{
	struct dx_sim_range none = { 0, PAGE, 0.0, 0 };
	struct dx_sim_phase ph = { 1000, 1, &none };
	struct dx_range r = { FAKE_SMALL, FAKE_SMALL + PAGE };
	struct dx_ctx *sim = make_ctx("sim"), *pa = make_ctx("paddr");
	struct dx_ctx *fva = make_ctx("fvaddr");
	struct dx_counter c[16];
	size_t nr;

	EXPECT_EQ(dx_vaddr_add_target(sim, getpid(), NULL, 0), -EINVAL);
	EXPECT_EQ(dx_paddr_add_target(sim, 0, &r, 1), -EINVAL);
	EXPECT_EQ(dx_vaddr_add_target(pa, getpid(), &r, 1), -EINVAL);
	EXPECT_EQ(dx_sim_add_target(pa, 0, PAGE, PAGE, &ph, 1), -EINVAL);
	EXPECT_EQ(dx_paddr_add_target(fva, 0, &r, 1), -EINVAL);
	/* fvaddr needs its ranges */
	EXPECT_EQ(dx_vaddr_add_target(fva, getpid(), NULL, 0), -EINVAL);
	EXPECT_EQ(dx_vaddr_add_target(fva, getpid(), &r, 1), 0);
	EXPECT_EQ(dx_ctx_nr_targets(fva) + dx_ctx_nr_targets(pa) +
			  dx_ctx_nr_targets(sim),
		  1);

	EXPECT_EQ(dx_ctx_ops_counters(sim, c, ARRAY_SIZE(c)), 0);
	nr = dx_ctx_ops_counters(pa, c, ARRAY_SIZE(c));
	EXPECT_EQ(nr, 9);
	EXPECT(!strcmp(c[0].name, "nr_pagemap_reads"));
	EXPECT(!strcmp(c[7].name, "nr_maps_reads"));
	EXPECT(!strcmp(c[8].name, "nr_changed"));
	EXPECT_EQ(dx_ctx_ops_counters(pa, c, 2), 9); /* short buffer */
	dx_ctx_free(sim);
	dx_ctx_free(pa);
	dx_ctx_free(fva);
}

/* Apply an action with no filters, as a scheme of that action would. */
static uint64_t apply_action(struct dx_ctx *ctx, struct dx_target *t,
			     struct dx_region *r, int action, int *err)
{
	struct dx_damos d = { .s = { .action = action } };
	uint64_t passed = 0;

	return ctx->ops.apply_scheme(ctx, t, r, &d, &passed, err);
}

/*
 * The actions each table applies: process_madvise(2)'s and move_pages(2)'s,
 * and none on paddr.
 */
static void test_backends_declare_their_actions(void)
{
	struct dx_ctx *va = make_ctx("vaddr"), *pa = make_ctx("paddr");
	struct dx_scheme s = { .max_sz = UINT64_MAX,
			       .max_nr_accesses = UINT32_MAX,
			       .max_age = UINT32_MAX,
			       .action = DX_ACTION_HUGEPAGE };

	EXPECT_EQ(dx_ctx_actions(va),
		  DX_ACTION_BIT(DX_ACTION_STAT) |
			  DX_ACTION_BIT(DX_ACTION_WILLNEED) |
			  DX_ACTION_BIT(DX_ACTION_COLD) |
			  DX_ACTION_BIT(DX_ACTION_PAGEOUT) |
			  DX_ACTION_BIT(DX_ACTION_COLLAPSE) |
			  DX_ACTION_BIT(DX_ACTION_MIGRATE_HOT) |
			  DX_ACTION_BIT(DX_ACTION_MIGRATE_COLD));
	EXPECT_EQ(dx_ctx_add_scheme(va, &s), -EOPNOTSUPP);
	s.action = DX_ACTION_NOHUGEPAGE;
	EXPECT_EQ(dx_ctx_add_scheme(va, &s), -EOPNOTSUPP);
	s.action = DX_ACTION_COLLAPSE;
	EXPECT_EQ(dx_ctx_add_scheme(va, &s), 0);
	EXPECT_EQ(dx_ctx_actions(pa), DX_ACTION_BIT(DX_ACTION_STAT));
	s.action = DX_ACTION_PAGEOUT;
	EXPECT_EQ(dx_ctx_add_scheme(pa, &s), -EOPNOTSUPP);
	dx_ctx_free(va);
	dx_ctx_free(pa);
}

/*
 * Actions act on this very process: on a mapping of its own they apply, on
 * addresses where it maps nothing they fail, and the failure is reported.
 */
static void test_vaddr_apply_reports_failures(void)
{
	const uint64_t sz = 64 * PAGE;
	char *mem = mmap(NULL, sz, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t lo = (uintptr_t)mem;
	struct dx_range whole = { lo, lo + sz };
	struct dx_region r = { .start = lo, .end = lo + sz };
	struct dx_ctx *ctx = make_ctx("fvaddr");
	struct dx_target *t;
	char text[512];
	int err = 0;

	EXPECT(mem != MAP_FAILED);
	memset(mem, 1, sz);
	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), &whole, 1), 0);
	t = &ctx->targets[0];
	EXPECT_EQ(apply_action(ctx, t, &r, DX_ACTION_COLD, &err), sz);
	EXPECT_EQ(err, 0);
	/* nothing is mapped there in this process */
	r.start = FAKE_SMALL;
	r.end = FAKE_SMALL + SMALL_NR * PAGE;
	EXPECT_EQ(apply_action(ctx, t, &r, DX_ACTION_PAGEOUT, &err), 0);
	EXPECT_EQ(err, -ENOMEM);
	dx_ctx_free(ctx);

	/*
	 * vaddr advises the mappings inside a region, not the holes between
	 * them; a mapping that went away since the last update fails.
	 */
	snprintf(text, sizeof(text),
		 "%llx-%llx rw-p 00000000 00:00 0\n"
		 "%llx-%llx rw-p 00000000 00:00 0\n",
		 (unsigned long long)FAKE_SMALL,
		 (unsigned long long)(FAKE_SMALL + SMALL_NR * PAGE),
		 (unsigned long long)lo, (unsigned long long)(lo + sz));
	write_file(maps_path, text, 0);
	ctx = make_ctx("vaddr");
	EXPECT_EQ(dx_vaddr_add_target(ctx, getpid(), NULL, 0), 0);
	EXPECT_EQ(ctx->ops.init(ctx), 0);
	t = &ctx->targets[0];
	r.start = FAKE_SMALL;
	r.end = lo + sz;
	err = 0;
	EXPECT_EQ(apply_action(ctx, t, &r, DX_ACTION_WILLNEED, &err), sz);
	EXPECT_EQ(err, -ENOMEM);
	r.start = lo + PAGE;
	r.end = lo + 3 * PAGE;
	err = 0;
	EXPECT_EQ(apply_action(ctx, t, &r, DX_ACTION_COLD, &err), 2 * PAGE);
	EXPECT_EQ(err, 0);
	dx_ctx_free(ctx);
	write_file(maps_path, maps_text, 0);
	munmap(mem, sz);
}

/* Apply a stat scheme with one page filter to [start, end): bytes passed. */
static uint64_t filtered(struct dx_ctx *ctx, const struct dx_filter *f,
			 uint64_t start, uint64_t end)
{
	struct dx_scheme s = { .max_sz = UINT64_MAX,
			       .max_nr_accesses = UINT32_MAX,
			       .max_age = UINT32_MAX,
			       .action = DX_ACTION_STAT,
			       .filters = f,
			       .nr_filters = 1 };
	struct dx_region r = { .start = start, .end = end };
	uint64_t passed = 0;
	int err = 0;

	dx_damos_free_all(ctx);
	EXPECT_EQ(dx_ctx_add_scheme(ctx, &s), 0);
	ctx->ops.apply_scheme(ctx, &ctx->targets[0], &r, &ctx->schemes[0],
			      &passed, &err);
	EXPECT_EQ(err, 0);
	return passed;
}

/*
 * Page filters look at each folio once: the young state of a huge page is
 * its folio's (looking marks it old again) and holds for each of its
 * pages, as does the folio's size.
 */
static void test_page_filters_look_once_per_folio(void)
{
	struct dx_ctx *ctx = make_fvaddr_ctx();
	const struct dx_access_check_stats *st = stats_of(ctx);
	struct dx_filter young = { .type = DX_FILTER_YOUNG,
				   .matching = true,
				   .allow = true };
	struct dx_filter sz = { .type = DX_FILTER_HUGEPAGE_SIZE,
				.matching = true,
				.allow = true,
				.sz_min = 16 * PAGE,
				.sz_max = 16 * PAGE };
	uint64_t thp_end = FAKE_THP + 512 * PAGE, reads;

	clear_bitmap(); /* never marked idle: young */
	reads = st->nr_kpageflags_reads;
	EXPECT_EQ(filtered(ctx, &young, FAKE_THP, thp_end), 512 * PAGE);
	EXPECT(st->nr_kpageflags_reads - reads <= 4);
	EXPECT_EQ(get_u64(bitmap_path, PFN_THP / 64), 1); /* marked old */
	EXPECT_EQ(filtered(ctx, &young, FAKE_THP, thp_end), 0);
	/* folios of 16 pages, and one of 512 */
	EXPECT_EQ(filtered(ctx, &sz, FAKE_MTHP, FAKE_MTHP + 64 * PAGE),
		  64 * PAGE);
	EXPECT_EQ(filtered(ctx, &sz, FAKE_THP, thp_end), 0);
	sz.sz_min = sz.sz_max = 512 * PAGE;
	EXPECT_EQ(filtered(ctx, &sz, FAKE_THP + PAGE, thp_end), 511 * PAGE);
	dx_ctx_free(ctx);
}

static void test_missing_files_are_reported(void)
{
	struct dx_ops_env env = { .procfs = procfs, .sysfs = sysfs };
	struct dx_ctx *ctx = NULL;
	struct dx_attrs a;
	char moved[300];

	dx_attrs_default(&a);
	EXPECT_EQ(dx_ctx_new(&ctx, &a, 1), 0);
	snprintf(moved, sizeof(moved), "%s.moved", bitmap_path);
	EXPECT_EQ(rename(bitmap_path, moved), 0);
	EXPECT_EQ(dx_ctx_select_ops(ctx, "vaddr", &env), -ENOENT);
	EXPECT_EQ(rename(moved, bitmap_path), 0);
	/* the context is free to try again */
	EXPECT_EQ(dx_ctx_select_ops(ctx, "vaddr", &env), 0);
	EXPECT_EQ(dx_vaddr_add_target(ctx, 0, NULL, 0), -EINVAL);
	dx_ctx_free(ctx);
}

int main(void)
{
	if (dx_sim_register() || dx_vaddr_register() || dx_paddr_register())
		return 2;
	make_tree();
	RUN(test_read_maps);
	RUN(test_pagemap_lookup);
	RUN(test_folio_head);
	RUN(test_marks_in_batches_and_checks);
	RUN(test_untrackable_pages_count_as_not_accessed);
	RUN(test_vaddr_follows_the_mappings);
	RUN(test_paddr_samples_pfns_directly);
	RUN(test_backends_keep_to_their_contexts);
	RUN(test_missing_files_are_reported);
	RUN(test_backends_declare_their_actions);
	RUN(test_vaddr_apply_reports_failures);
	RUN(test_page_filters_look_once_per_folio);
	RUN(test_regions_larger_than_pages);
	RUN(test_regions_smaller_than_pages_are_refused);
	RUN(test_page_sizes);
	RUN(test_pages_that_changed_are_not_accessed);
	RUN(test_rereads_are_batched);
	RUN(test_a_process_that_exits_is_not_accessed);
	remove_tree();
	return test_report();
}
