// SPDX-License-Identifier: MIT
/*
 * recread: the columns of a target's snapshots, the selection a read
 * applies and the address coverage it keeps (see recread.h; the parser that
 * fills them is recparse.c).
 */
#include "recread.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------- columns */

void dx_rr_target_init(struct dx_rr_target *t, struct dx_rr_filter *filter,
		       bool keep)
{
	memset(t, 0, sizeof(*t));
	t->filter = filter;
	t->keep = keep;
}

void dx_rr_target_free(struct dx_rr_target *t)
{
	free(t->start_ns);
	free(t->end_ns);
	free(t->seen_index);
	free(t->offsets);
	free(t->sample_us);
	free(t->nr_checks);
	free(t->flags);
	free(t->regions);
	free(t->unions);
	memset(t, 0, sizeof(*t));
}

/* realloc the array ptr to n elements; false (ptr as it was) if memory ran out */
#define RESIZE(ptr, n)                                                     \
	({                                                                 \
		__typeof__(ptr) _p = realloc((ptr), (n) * sizeof(*(ptr))); \
		if (_p)                                                    \
			(ptr) = _p;                                        \
		_p != NULL;                                                \
	})

/* a capacity for nr elements: cap (64 at first) doubled as needed */
static size_t capacity(size_t cap, size_t nr)
{
	cap = cap ? cap : 64;
	while (cap < nr)
		cap *= 2;
	return cap;
}

struct dx_rr_region *dx_rr_pending(struct dx_rr_target *t, size_t nr)
{
	size_t cap = capacity(t->cap_regions, t->nr_regions + nr);

	if (cap > t->cap_regions) {
		if (!RESIZE(t->regions, cap))
			return NULL;
		t->cap_regions = cap;
	}
	return t->regions + t->nr_regions;
}

static int reserve_snaps(struct dx_rr_target *t, size_t nr)
{
	size_t cap = capacity(t->cap_snaps, nr);

	if (cap == t->cap_snaps)
		return 0;
	/* every per-snapshot column has this capacity (and one more offset) */
	if (!RESIZE(t->start_ns, cap) || !RESIZE(t->end_ns, cap) ||
	    !RESIZE(t->seen_index, cap) || !RESIZE(t->offsets, cap + 1) ||
	    !RESIZE(t->sample_us, cap) || !RESIZE(t->nr_checks, cap) ||
	    !RESIZE(t->flags, cap))
		return -ENOMEM;
	if (!t->cap_snaps)
		t->offsets[0] = 0;
	t->cap_snaps = cap;
	return 0;
}

/* ------------------------------------------------------------- coverage */

/* add [start, end) to the sorted union, joining what it meets or touches */
static int cover(struct dx_rr_target *t, uint64_t start, uint64_t end)
{
	struct dx_rr_range *u;
	size_t lo = 0, hi = t->nr_unions, last;

	/* the first range ending at or after start */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (t->unions[mid].end < start)
			lo = mid + 1;
		else
			hi = mid;
	}
	u = t->unions;
	if (lo < t->nr_unions && u[lo].start <= start && end <= u[lo].end)
		return 0; /* already covered: the usual case */
	if (lo == t->nr_unions || u[lo].start > end) {
		size_t cap = capacity(t->cap_unions, t->nr_unions + 1);

		if (cap > t->cap_unions) {
			if (!RESIZE(t->unions, cap))
				return -ENOMEM;
			t->cap_unions = cap;
		}
		u = t->unions;
		memmove(&u[lo + 1], &u[lo], (t->nr_unions - lo) * sizeof(*u));
		u[lo].start = start;
		u[lo].end = end;
		t->nr_unions++;
		return 0;
	}
	/* ranges lo..last meet [start, end): make them one */
	last = lo;
	while (last + 1 < t->nr_unions && u[last + 1].start <= end)
		last++;
	if (u[lo].start < start)
		start = u[lo].start;
	if (u[last].end > end)
		end = u[last].end;
	u[lo].start = start;
	u[lo].end = end;
	memmove(&u[lo + 1], &u[last + 1],
		(t->nr_unions - last - 1) * sizeof(*u));
	t->nr_unions -= last - lo;
	return 0;
}

/* add the non-empty regions of the pending snapshot to the coverage, a run
 * of contiguous or overlapping regions at a time when they come sorted */
static int cover_pending(struct dx_rr_target *t, size_t nr)
{
	const struct dx_rr_region *r = t->regions + t->nr_regions;
	uint64_t run_start = 0, run_end = 0;
	bool in_run = false;
	size_t i;
	int err;

	for (i = 0; i < nr; i++) {
		if (r[i].end <= r[i].start)
			continue;
		if (in_run && r[i].start >= run_start &&
		    r[i].start <= run_end) {
			if (r[i].end > run_end)
				run_end = r[i].end;
			continue;
		}
		if (in_run) {
			err = cover(t, run_start, run_end);
			if (err)
				return err;
		}
		run_start = r[i].start;
		run_end = r[i].end;
		in_run = true;
	}
	return in_run ? cover(t, run_start, run_end) : 0;
}

/* ------------------------------------------------------------ selection */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static bool time_kept(struct dx_rr_filter *f, const struct dx_rr_snap *s)
{
	uint64_t from = add_sat(f->base_ns, f->t0_ns);
	uint64_t to = add_sat(f->base_ns, f->t1_ns);

	f->time_decided = true;
	if (s->start_ns == s->end_ns)
		return from <= s->start_ns && s->start_ns < to;
	return s->start_ns < to && s->end_ns > from;
}

/* keep the parts of the pending regions inside the address range */
static size_t clip_pending(struct dx_rr_target *t, size_t nr)
{
	struct dx_rr_region *r = t->regions + t->nr_regions;
	uint64_t lo = t->filter->addr_start, hi = t->filter->addr_end;
	size_t i, n = 0;

	for (i = 0; i < nr; i++) {
		if (r[i].end <= lo || r[i].start >= hi)
			continue;
		r[n] = r[i];
		if (r[n].start < lo)
			r[n].start = lo;
		if (r[n].end > hi)
			r[n].end = hi;
		n++;
	}
	return n;
}

int dx_rr_commit(struct dx_rr_target *t, const struct dx_rr_snap *s)
{
	struct dx_rr_filter *f = t->filter;
	size_t nr = s->nr_regions, i;
	int err;

	if (t->nr_seen++ == 0 && !f->base_fixed &&
	    (!f->has_base || s->start_ns < f->base_ns)) {
		if (f->has_base && f->time_decided)
			f->base_moved = true;
		f->base_ns = s->start_ns;
		f->has_base = true;
	}
	if (!t->keep)
		return 0;
	err = cover_pending(t, nr);
	if (err)
		return err;
	if (f->by_time && !time_kept(f, s))
		return 0;
	if (f->by_addr)
		nr = clip_pending(t, nr);
	err = reserve_snaps(t, t->nr_snaps + 1);
	if (err)
		return err;
	i = t->nr_snaps;
	t->start_ns[i] = s->start_ns;
	t->end_ns[i] = s->end_ns;
	t->seen_index[i] = t->nr_seen - 1;
	t->sample_us[i] = s->sample_us;
	t->nr_checks[i] = s->nr_checks;
	t->flags[i] = s->flags;
	t->nr_regions += nr;
	t->offsets[i + 1] = t->nr_regions;
	t->nr_snaps++;
	return 1;
}
