// SPDX-License-Identifier: MIT
/*
 * Sequential sweep: touches every page of the buffer in address order, pass
 * after pass.  Ground truth: the whole buffer is accessed all the time; with
 * --hot-mib H, the first H MiB only (the rest, written once, stays cold).
 * See wl_common.c for the arguments and the protocol.
 */
#include "wl_common.c"

static void work(struct wl *w)
{
	uint64_t n, p = 0, npages = w->hot ? w->hot / PAGE : w->npages;

	for (n = 0; n < w->touches; n++) {
		w->buf[p * PAGE]++;
		if (++p == npages)
			p = 0;
		churn(w, n);
	}
}
