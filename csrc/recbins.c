// SPDX-License-Identifier: MIT
/*
 * recbins: the cells of a heatmap from a target's columns (see recread.h).
 *
 * Each snapshot that weighs in a time bin is reduced to one row per address
 * bin: the integral over the bin of its regions' access rate and of their
 * coverage.  The row is then added, times the snapshot's weight, to the
 * cells of that time bin.  So the work is one pass over the regions, with
 * no array of (snapshot, address bin) pairs, and the memory is two rows.
 *
 * The arithmetic is the one numpy did before this file existed, in the same
 * order (regions in address order, then snapshots in the pairs' order), so
 * a record read in part gives, to the bit, the cells of the whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "recread.h"

/* The number of edges[0..nr_bins] that are <= x (upper bound). */
static size_t edges_le(const double *edges, size_t nr_bins, double x)
{
	size_t lo = 0, hi = nr_bins + 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (edges[mid] <= x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The number of edges[0..nr_bins] that are < x (lower bound). */
static size_t edges_lt(const double *edges, size_t nr_bins, double x)
{
	size_t lo = 0, hi = nr_bins + 1;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (edges[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Add region r to the rows: the overlap of [start, end) with each bin it
 * meets, times the rate, and the overlap itself. */
static void add_region(const struct dx_rr_region *r, const double *edges,
		       size_t nr_bins, double scale, double *rate,
		       double *cover)
{
	double start = (double)r->start, end = (double)r->end;
	double acc = (double)r->nr_accesses * scale;
	size_t bin = edges_le(edges, nr_bins, start);
	size_t last = edges_lt(edges, nr_bins, end);

	bin = bin ? bin - 1 : 0;
	if (last > nr_bins)
		last = nr_bins;
	for (; bin < last; bin++) {
		double lo = start > edges[bin] ? start : edges[bin];
		double hi = end < edges[bin + 1] ? end : edges[bin + 1];
		double overlap = hi - lo > 0 ? hi - lo : 0;

		rate[bin] += overlap * acc;
		cover[bin] += overlap;
	}
}

/* A region's index, ordered by its start and then by its index. */
struct by_start {
	uint64_t start;
	size_t index;
};

static int cmp_by_start(const void *a, const void *b)
{
	const struct by_start *x = a, *y = b;

	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * The rows of the nr regions r (one snapshot) into rate and cover, in
 * address order: sorted (stably) first when they are not.  *order is a
 * buffer of *order_len entries, grown as needed.
 */
static int snapshot_rows(const struct dx_rr_region *r, size_t nr,
			 const double *edges, size_t nr_bins, double scale,
			 double *rate, double *cover, struct by_start **order,
			 size_t *order_len)
{
	size_t i;

	memset(rate, 0, nr_bins * sizeof(*rate));
	memset(cover, 0, nr_bins * sizeof(*cover));
	for (i = 1; i < nr && r[i].start >= r[i - 1].start; i++)
		;
	if (i >= nr) {
		for (i = 0; i < nr; i++)
			add_region(&r[i], edges, nr_bins, scale, rate, cover);
		return 0;
	}
	if (*order_len < nr) {
		struct by_start *grown = realloc(*order, nr * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		*order = grown;
		*order_len = nr;
	}
	for (i = 0; i < nr; i++)
		(*order)[i] = (struct by_start){ r[i].start, i };
	qsort(*order, nr, sizeof(**order), cmp_by_start);
	for (i = 0; i < nr; i++)
		add_region(&r[(*order)[i].index], edges, nr_bins, scale, rate,
			   cover);
	return 0;
}

int dx_rr_heatmap_add(const struct dx_rr_region *regions, size_t nr_regions,
		      const int64_t *offsets, size_t nr_snaps,
		      const double *edges, size_t nr_abins, double scale,
		      const int64_t *pair_snap, const int64_t *pair_bin,
		      const double *pair_weight, size_t nr_pairs,
		      size_t nr_tbins, double *num, double *den)
{
	struct by_start *order = NULL;
	size_t order_len = 0, p, bin;
	double *rate, *cover;
	int64_t cur = -1;
	int err = 0;

	if (!nr_abins)
		return -EINVAL;
	rate = calloc(2 * nr_abins, sizeof(*rate));
	if (!rate)
		return -ENOMEM;
	cover = rate + nr_abins;
	for (p = 0; p < nr_pairs; p++) {
		int64_t snap = pair_snap[p], tbin = pair_bin[p];
		double w = pair_weight[p];
		double *n, *d;

		if (snap < 0 || (uint64_t)snap >= nr_snaps || tbin < 0 ||
		    (uint64_t)tbin >= nr_tbins) {
			err = -EINVAL;
			break;
		}
		if (snap != cur) {
			int64_t lo = offsets[snap], hi = offsets[snap + 1];

			if (lo < 0 || hi < lo || (uint64_t)hi > nr_regions) {
				err = -EINVAL;
				break;
			}
			err = snapshot_rows(regions + lo, (size_t)(hi - lo),
					    edges, nr_abins, scale, rate, cover,
					    &order, &order_len);
			if (err)
				break;
			cur = snap;
		}
		n = num + (size_t)tbin * nr_abins;
		d = den + (size_t)tbin * nr_abins;
		for (bin = 0; bin < nr_abins; bin++) {
			n[bin] += w * rate[bin];
			d[bin] += w * cover[bin];
		}
	}
	free(order);
	free(rate);
	return err;
}
