// SPDX-License-Identifier: MIT
/*
 * Hot/cold with a moving hot set: the buffer is cut into slots of --hot-mib
 * MiB; the touches sweep the pages of one slot in address order, and the hot
 * slot moves to the next one (wrapping around) every --period-ms of wall
 * time.  Ground truth at time t after START t0:
 *
 *     slot = floor((t - t0) / period) mod (size / hot)
 *     hot range = [start + slot * hot, start + (slot + 1) * hot)
 *
 * and the rest of the buffer is never accessed (it was written once before
 * READY).  See wl_common.c for the arguments and the protocol.
 */
#include "wl_common.c"

static void work(struct wl *w)
{
	uint64_t nslots, hot_pages, n, p = 0, slot = 0, base;

	if (!w->hot) {
		fprintf(stderr, "hotcold needs --hot-mib\n");
		exit(2);
	}
	nslots = w->size / w->hot;
	hot_pages = w->hot / PAGE;
	base = 0;
	for (n = 0; n < w->touches; n++) {
		w->buf[(base + p) * PAGE]++;
		if (++p == hot_pages)
			p = 0;
		churn(w, n);
		if (!(n & 1023)) {
			uint64_t s = (now_ns() - w->t0) / w->period_ns % nslots;

			if (s != slot) {
				slot = s;
				base = slot * hot_pages;
			}
		}
	}
}
