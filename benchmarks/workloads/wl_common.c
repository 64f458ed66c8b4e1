// SPDX-License-Identifier: MIT
/*
 * The common part of the benchmark workloads (included by each of them).
 *
 *     WORKLOAD --size-mib N --touches-m M [--hot-mib H] [--period-ms P]
 *              [--seed S] [--churn-touches C] [--thp 1] [--sparse-kib K]
 *
 * Maps N MiB of private anonymous memory in 4 KiB pages (MADV_NOHUGEPAGE;
 * with --thp 1 the system's THP mode decides), 2 MiB aligned, writes every
 * page once (with --sparse-kib, past the first H MiB one page every K KiB
 * only: sparse data, where a huge page holds mostly untouched memory), prints
 *
 *     READY <start_hex> <end_hex>
 *
 * and then reads commands from stdin, one per line: "GO" runs the work once
 * (M million page touches; a touch writes one byte of a page; "GO N" does N
 * touches instead) and prints
 *
 *     START <t0_ns>
 *     DONE <t0_ns> <t1_ns> <runtime_s>
 *
 * (times on CLOCK_MONOTONIC, the clock of time.monotonic_ns()); "QUIT" or
 * the end of stdin exits.  The process dies with its parent.
 *
 * TLB churn: every C touches (8192 by default, a fixed amount of work so
 * that every run does the same) the workload maps a 64-page scratch buffer,
 * writes its first and last page and unmaps it.  Unmapping a range of more than 33 pages flushes this CPU's TLB, as
 * allocators do all the time in real programs; a real CPU also evicts
 * translations constantly, so the accessed bit of a page is set again soon
 * after a monitor clears it.  Under emulation (QEMU's TCG) a small working
 * set keeps its translations cached forever, and without the churn no
 * monitor (damonx, the kernel's DAMON or a page_idle scanner) would see
 * the accesses again once it cleared the accessed bits.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>

#include "../../csrc/clock.h"

#define PAGE 4096ULL
#define HUGE (2ULL << 20)
#define MIB (1ULL << 20)

struct wl {
	volatile unsigned char *buf; /* 2 MiB aligned */
	uint64_t size, npages;
	uint64_t touches;
	uint64_t hot, period_ns; /* hot set size and move period (hotcold) */
	uint64_t seed;
	uint64_t churn_touches;
	uint64_t t0;
	uint64_t thp; /* 1: no MADV_NOHUGEPAGE */
	uint64_t sparse; /* bytes between the pages written past hot; 0: all */
};

static uint64_t now_ns(void)
{
	return dx_clock_ns(CLOCK_MONOTONIC);
}

static void churn_tlb(void)
{
	unsigned char *s = mmap(NULL, 64 * PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (s == MAP_FAILED)
		return;
	s[0] = 1;
	s[63 * PAGE] = 1;
	munmap(s, 64 * PAGE);
}

/* Called after every touch n: churn the TLB every churn_touches touches. */
static inline void churn(struct wl *w, uint64_t n)
{
	if (n % w->churn_touches == w->churn_touches - 1)
		churn_tlb();
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s --size-mib N --touches-m M [--hot-mib H] "
		"[--period-ms P] [--seed S] [--churn-touches C] [--thp 1] "
		"[--sparse-kib K]\n",
		prog);
	exit(2);
}

static uint64_t num(const char *s, const char *prog)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || end == s)
		usage(prog);
	return v;
}

static void setup(struct wl *w, int argc, char **argv)
{
	uint64_t size_mib = 0, touches_m = 0, hot_mib = 0, period_ms = 5000;
	unsigned char *m;
	uint64_t i;
	int a;

	w->seed = 1;
	w->churn_touches = 8192;
	for (a = 1; a + 1 < argc; a += 2) {
		uint64_t v = num(argv[a + 1], argv[0]);

		if (!strcmp(argv[a], "--size-mib"))
			size_mib = v;
		else if (!strcmp(argv[a], "--touches-m"))
			touches_m = v;
		else if (!strcmp(argv[a], "--hot-mib"))
			hot_mib = v;
		else if (!strcmp(argv[a], "--period-ms"))
			period_ms = v;
		else if (!strcmp(argv[a], "--seed"))
			w->seed = v ? v : 1;
		else if (!strcmp(argv[a], "--churn-touches"))
			w->churn_touches = v;
		else if (!strcmp(argv[a], "--thp"))
			w->thp = v;
		else if (!strcmp(argv[a], "--sparse-kib"))
			w->sparse = v * 1024;
		else
			usage(argv[0]);
	}
	if (a != argc || !size_mib || !touches_m || hot_mib > size_mib ||
	    !period_ms || !w->churn_touches || w->thp > 1 || w->sparse % PAGE)
		usage(argv[0]);
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	w->size = size_mib * MIB;
	w->npages = w->size / PAGE;
	w->touches = touches_m * 1000000ULL;
	w->hot = hot_mib * MIB;
	w->period_ns = period_ms * 1000000ULL;
	m = mmap(NULL, w->size + HUGE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (m == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	m += -(uintptr_t)m % HUGE;
	if (!w->thp)
		madvise(m, w->size, MADV_NOHUGEPAGE);
	for (i = 0; i < w->npages; i++)
		if (!w->sparse || i * PAGE < w->hot ||
		    (i * PAGE - w->hot) % w->sparse == 0)
			m[i * PAGE] = 1;
	w->buf = m;
	printf("READY %#llx %#llx\n", (unsigned long long)(uintptr_t)m,
	       (unsigned long long)((uintptr_t)m + w->size));
	fflush(stdout);
}

static inline uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void work(struct wl *w);

int main(int argc, char **argv)
{
	struct wl w = { 0 };
	uint64_t touches;
	char line[64];

	setup(&w, argc, argv);
	touches = w.touches;
	while (fgets(line, sizeof(line), stdin)) {
		uint64_t t1;

		if (!strncmp(line, "QUIT", 4))
			break;
		if (strncmp(line, "GO", 2))
			continue;
		w.touches = touches;
		if (line[2] == ' ' && strtoull(line + 3, NULL, 10))
			w.touches = strtoull(line + 3, NULL, 10);
		w.t0 = now_ns();
		printf("START %llu\n", (unsigned long long)w.t0);
		fflush(stdout);
		work(&w);
		t1 = now_ns();
		printf("DONE %llu %llu %.6f\n", (unsigned long long)w.t0,
		       (unsigned long long)t1, (double)(t1 - w.t0) / 1e9);
		fflush(stdout);
	}
	return 0;
}
