// SPDX-License-Identifier: MIT
/*
 * Uniform random access: each touch writes a page drawn uniformly from the
 * whole buffer.  Ground truth: the whole buffer is accessed (each page at
 * the same rate); with --hot-mib H, the first H MiB only (the rest, written
 * once, stays cold).  See wl_common.c for the arguments and the protocol.
 */
#include "wl_common.c"

static void work(struct wl *w)
{
	uint64_t n, s = w->seed * 0x9E3779B97F4A7C15ULL | 1;
	uint64_t npages = w->hot ? w->hot / PAGE : w->npages;

	for (n = 0; n < w->touches; n++) {
		w->buf[xorshift(&s) % npages * PAGE]++;
		churn(w, n);
	}
}
