// SPDX-License-Identifier: MIT
/*
 * DAMOS, DAMON-based operation schemes, with the rules of the Linux
 * kernel's mm/damon/core.c (7.x): access patterns matched against the
 * moving sum of accesses; quotas of time and size per reset interval, with
 * the regions most worth acting on first (a histogram of scores gives the
 * lowest score that still fits the quota); quota goals and their feedback
 * loop; watermarks that pause monitoring; filters of the core (addr,
 * target) and of the operations (pages), where the first that matches
 * decides; the apply interval, and statistics.
 *
 * The loop calls dx_damos_wait_activation() before each sample and
 * dx_damos_apply() after it (after the merge, at the end of an aggregation);
 * the metrics that need files are read once per reset or watermark
 * interval, never per region.
 */
#define _GNU_SOURCE
#include "damonx.h"
#include "clock.h"
#include "damos.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ names */

/*
 * Where no table can apply an action, why, and what to use instead:
 * process_madvise(2) takes only MADV_COLD, MADV_PAGEOUT, MADV_WILLNEED and
 * MADV_COLLAPSE (mm/madvise.c), and the kernel's DAMON applies the others
 * from inside the target's mm or to the LRU lists, which user space cannot.
 */
#define DX_NOTE_HUGEPAGE                                                       \
	"the kernel refuses MADV_HUGEPAGE and MADV_NOHUGEPAGE through "        \
	"process_madvise(2) (EINVAL), so damonx cannot apply them to another " \
	"process; 'collapse' (MADV_COLLAPSE) makes huge pages of a range now"
#define DX_NOTE_LRU                                                        \
	"user space cannot move pages between the kernel's LRU lists; "    \
	"'cold' (MADV_COLD) deactivates pages, 'willneed' reads them in, " \
	"or use the kernel's DAMON (paddr) for this action"

static const struct {
	const char *name;
	const char *note;
} actions[DX_ACTION_NR] = {
	[DX_ACTION_STAT] = { "stat", NULL },
	[DX_ACTION_WILLNEED] = { "willneed", NULL },
	[DX_ACTION_COLD] = { "cold", NULL },
	[DX_ACTION_PAGEOUT] = { "pageout", NULL },
	[DX_ACTION_HUGEPAGE] = { "hugepage", DX_NOTE_HUGEPAGE },
	[DX_ACTION_NOHUGEPAGE] = { "nohugepage", DX_NOTE_HUGEPAGE },
	[DX_ACTION_COLLAPSE] = { "collapse", NULL },
	[DX_ACTION_LRU_PRIO] = { "lru_prio", DX_NOTE_LRU },
	[DX_ACTION_LRU_DEPRIO] = { "lru_deprio", DX_NOTE_LRU },
	[DX_ACTION_MIGRATE_HOT] = { "migrate_hot", NULL },
	[DX_ACTION_MIGRATE_COLD] = { "migrate_cold", NULL },
};

static const char *const goal_metrics[DX_GOAL_NR] = {
	[DX_GOAL_USER_INPUT] = "user_input",
	[DX_GOAL_SOME_MEM_PSI_US] = "some_mem_psi_us",
	[DX_GOAL_NODE_MEM_USED_BP] = "node_mem_used_bp",
	[DX_GOAL_NODE_MEM_FREE_BP] = "node_mem_free_bp",
	[DX_GOAL_NODE_MEMCG_USED_BP] = "node_memcg_used_bp",
	[DX_GOAL_NODE_MEMCG_FREE_BP] = "node_memcg_free_bp",
	[DX_GOAL_ACTIVE_MEM_BP] = "active_mem_bp",
	[DX_GOAL_INACTIVE_MEM_BP] = "inactive_mem_bp",
};

static const char *const filter_types[DX_FILTER_NR] = {
	[DX_FILTER_ANON] = "anon",
	[DX_FILTER_ACTIVE] = "active",
	[DX_FILTER_MEMCG] = "memcg",
	[DX_FILTER_YOUNG] = "young",
	[DX_FILTER_HUGEPAGE_SIZE] = "hugepage_size",
	[DX_FILTER_UNMAPPED] = "unmapped",
	[DX_FILTER_ADDR] = "addr",
	[DX_FILTER_TARGET] = "target",
};

const char *dx_action_name(int action)
{
	return action >= 0 && action < DX_ACTION_NR ? actions[action].name :
						      NULL;
}

const char *dx_action_note(int action)
{
	return action >= 0 && action < DX_ACTION_NR ? actions[action].note :
						      NULL;
}

const char *dx_goal_metric_name(int metric)
{
	return metric >= 0 && metric < DX_GOAL_NR ? goal_metrics[metric] : NULL;
}

const char *dx_filter_type_name(int type)
{
	return type >= 0 && type < DX_FILTER_NR ? filter_types[type] : NULL;
}

uint32_t dx_ctx_actions(const struct dx_ctx *ctx)
{
	uint32_t applied = ctx->ops.apply_scheme ? ctx->ops.actions : 0;

	return DX_ACTION_BIT(DX_ACTION_STAT) | applied;
}

uint32_t dx_ctx_filters(const struct dx_ctx *ctx)
{
	uint32_t ops = ctx->ops.apply_scheme ? ctx->ops.filters : 0;

	return DX_CORE_FILTERS | (ops & ~DX_CORE_FILTERS);
}

/* --------------------------------------------------------------- schemes */

static bool is_core_filter(const struct dx_filter *f)
{
	return DX_FILTER_BIT(f->type) & DX_CORE_FILTERS;
}

static int check_scheme(const struct dx_ctx *ctx, const struct dx_scheme *s)
{
	const struct dx_wmarks *w = &s->wmarks;
	size_t i;

	if (s->action < 0 || s->action >= DX_ACTION_NR ||
	    s->min_sz > s->max_sz || s->min_nr_accesses > s->max_nr_accesses ||
	    s->min_age > s->max_age)
		return -EINVAL;
	if ((s->nr_filters && !s->filters) || (s->nr_goals && !s->goals))
		return -EINVAL;
	if (s->quota.goal_tuner != DX_GOAL_TUNER_CONSIST &&
	    s->quota.goal_tuner != DX_GOAL_TUNER_TEMPORAL)
		return -EINVAL;
	if (w->metric != DX_WMARK_NONE &&
	    (w->metric != DX_WMARK_FREE_MEM_RATE || !w->interval_us ||
	     w->high < w->mid || w->mid < w->low))
		return -EINVAL;
	for (i = 0; i < s->nr_goals; i++)
		if (s->goals[i].metric < 0 ||
		    s->goals[i].metric >= DX_GOAL_NR ||
		    !s->goals[i].target_value ||
		    !memchr(s->goals[i].memcg_path, '\0',
			    sizeof(s->goals[i].memcg_path)))
			return -EINVAL;
	for (i = 0; i < s->nr_filters; i++) {
		const struct dx_filter *f = &s->filters[i];

		if (f->type < 0 || f->type >= DX_FILTER_NR ||
		    (f->type == DX_FILTER_ADDR &&
		     f->addr.start >= f->addr.end) ||
		    (f->type == DX_FILTER_HUGEPAGE_SIZE &&
		     f->sz_min > f->sz_max))
			return -EINVAL;
	}
	if (!(dx_ctx_actions(ctx) & DX_ACTION_BIT(s->action)))
		return -EOPNOTSUPP;
	for (i = 0; i < s->nr_filters; i++)
		if (!(dx_ctx_filters(ctx) & DX_FILTER_BIT(s->filters[i].type)))
			return -EOPNOTSUPP;
	return 0;
}

/* What memory no filter of a kind matched becomes: the kernel's rule. */
static void set_default_reject(struct dx_damos *d)
{
	const struct dx_filter *last_core = NULL, *last_ops = NULL;
	size_t i;

	for (i = 0; i < d->s.nr_filters; i++) {
		if (is_core_filter(&d->filters[i]))
			last_core = &d->filters[i];
		else
			last_ops = &d->filters[i];
	}
	/*
	 * An allow filter as the last says "only this": memory that matched
	 * none is rejected; but what the core lets through still meets the
	 * page filters.
	 */
	d->core_default_reject = !last_ops && last_core && last_core->allow;
	d->ops_default_reject = last_ops && last_ops->allow;
}

static void set_next_apply(struct dx_ctx *ctx, struct dx_damos *d)
{
	uint64_t interval = d->s.apply_interval_us ? d->s.apply_interval_us :
						     ctx->attrs.aggr_us;

	d->next_apply_sample =
		ctx->passed_samples + interval / ctx->attrs.sample_us;
}

void dx_damos_attrs_changed(struct dx_ctx *ctx)
{
	size_t i;

	for (i = 0; i < ctx->nr_schemes; i++)
		set_next_apply(ctx, &ctx->schemes[i]);
}

int dx_ctx_add_scheme(struct dx_ctx *ctx, const struct dx_scheme *scheme)
{
	struct dx_damos *n, *d;
	int err = check_scheme(ctx, scheme);
	size_t i;

	if (err)
		return err;
	n = realloc(ctx->schemes, (ctx->nr_schemes + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->schemes = n;
	d = &ctx->schemes[ctx->nr_schemes];
	memset(d, 0, sizeof(*d));
	d->s = *scheme;
	d->filters = calloc(scheme->nr_filters + 1, sizeof(*d->filters));
	d->goals = calloc(scheme->nr_goals + 1, sizeof(*d->goals));
	d->last_psi_total =
		calloc(scheme->nr_goals + 1, sizeof(*d->last_psi_total));
	if (!d->filters || !d->goals || !d->last_psi_total) {
		free(d->filters);
		free(d->goals);
		free(d->last_psi_total);
		return -ENOMEM;
	}
	if (scheme->nr_filters)
		memcpy(d->filters, scheme->filters,
		       scheme->nr_filters * sizeof(*d->filters));
	if (scheme->nr_goals)
		memcpy(d->goals, scheme->goals,
		       scheme->nr_goals * sizeof(*d->goals));
	for (i = 0; i < scheme->nr_goals; i++)
		d->last_psi_total[i] = UINT64_MAX;
	d->s.filters = d->filters;
	d->s.goals = d->goals;
	d->charge_target_from = SIZE_MAX;
	d->stat.activated = true;
	set_default_reject(d);
	set_next_apply(ctx, d);
	ctx->nr_schemes++;
	return 0;
}

void dx_damos_free_all(struct dx_ctx *ctx)
{
	struct dx_damos *d;

	dx_for_each_scheme(d, ctx) {
		free(d->filters);
		free(d->goals);
		free(d->last_psi_total);
		free(d->tried);
	}
	free(ctx->schemes);
	ctx->schemes = NULL;
	ctx->nr_schemes = 0;
}

int dx_ctx_set_metric_roots(struct dx_ctx *ctx, const char *procfs,
			    const char *sysfs)
{
	if (strlen(procfs) >= sizeof(ctx->metric_procfs) ||
	    strlen(sysfs) >= sizeof(ctx->metric_sysfs))
		return -EINVAL;
	strcpy(ctx->metric_procfs, procfs);
	strcpy(ctx->metric_sysfs, sysfs);
	return 0;
}

size_t dx_ctx_nr_schemes(const struct dx_ctx *ctx)
{
	return ctx->nr_schemes;
}

const struct dx_scheme *dx_ctx_scheme(const struct dx_ctx *ctx, size_t index)
{
	return index < ctx->nr_schemes ? &ctx->schemes[index].s : NULL;
}

int dx_ctx_scheme_stats(const struct dx_ctx *ctx, size_t index,
			struct dx_scheme_stats *out)
{
	if (index >= ctx->nr_schemes)
		return -EINVAL;
	*out = ctx->schemes[index].stat;
	out->esz = ctx->schemes[index].esz;
	return 0;
}

int dx_ctx_set_goal_value(struct dx_ctx *ctx, size_t scheme, size_t goal,
			  uint64_t value)
{
	if (scheme >= ctx->nr_schemes ||
	    goal >= ctx->schemes[scheme].s.nr_goals)
		return -EINVAL;
	ctx->schemes[scheme].goals[goal].current_value = value;
	return 0;
}

int dx_ctx_goal_value(const struct dx_ctx *ctx, size_t scheme, size_t goal,
		      uint64_t *out)
{
	if (scheme >= ctx->nr_schemes ||
	    goal >= ctx->schemes[scheme].s.nr_goals)
		return -EINVAL;
	*out = ctx->schemes[scheme].goals[goal].current_value;
	return 0;
}

size_t dx_ctx_nr_tried_regions(const struct dx_ctx *ctx, size_t index)
{
	return index < ctx->nr_schemes ? ctx->schemes[index].nr_tried : 0;
}

size_t dx_ctx_tried_regions_fill(const struct dx_ctx *ctx, size_t index,
				 struct dx_tried_region *out, size_t cap)
{
	size_t nr = dx_ctx_nr_tried_regions(ctx, index);

	if (nr > cap)
		nr = cap;
	if (nr)
		memcpy(out, ctx->schemes[index].tried, nr * sizeof(*out));
	return nr;
}

bool dx_damos_pattern_matches(const struct dx_ctx *ctx,
			      const struct dx_region *r,
			      const struct dx_damos *d)
{
	uint64_t sz = r->end - r->start;
	uint32_t nr = dx_damos_mvsum(ctx, r);

	return d->s.min_sz <= sz && sz <= d->s.max_sz &&
	       d->s.min_nr_accesses <= nr && nr <= d->s.max_nr_accesses &&
	       d->s.min_age <= r->age && r->age <= d->s.max_age;
}

/* ---------------------------------------------------------------- filters */

/*
 * Whether a core filter matches region idx of target ti; an addr filter
 * splits a region that straddles its range (the kernel's
 * damos_filter_match()).  *err gets the split's error.
 */
static bool core_filter_match(struct dx_ctx *ctx, size_t ti, size_t idx,
			      const struct dx_filter *f, int *err)
{
	struct dx_target *t = &ctx->targets[ti];
	const struct dx_region *r = &t->regions[idx];
	uint64_t start, end;
	bool matched;

	*err = 0;
	if (f->type == DX_FILTER_TARGET) {
		matched = ti == f->target_idx;
	} else {
		start = ALIGN_DOWN(f->addr.start, ctx->attrs.min_region_sz);
		end = ALIGN_DOWN(f->addr.end, ctx->attrs.min_region_sz);
		if (start <= r->start && r->end <= end) {
			matched = true;
		} else if (r->end <= start || end <= r->start) {
			matched = false;
		} else if (r->start < start) {
			*err = dx_split_region_at(t, idx, start - r->start);
			matched = false;
		} else {
			*err = dx_split_region_at(t, idx, end - r->start);
			matched = true;
		}
	}
	return matched == f->matching;
}

/* The kernel's damos_core_filter_out(). */
bool dx_damos_core_filter_out(struct dx_ctx *ctx, size_t ti, size_t idx,
			      struct dx_damos *d)
{
	size_t i;
	int err;

	d->core_filters_allowed = false;
	for (i = 0; i < d->s.nr_filters; i++) {
		const struct dx_filter *f = &d->filters[i];

		if (!is_core_filter(f))
			continue;
		if (core_filter_match(ctx, ti, idx, f, &err)) {
			if (f->allow)
				d->core_filters_allowed = true;
			return !f->allow;
		}
		if (err)
			return true;
	}
	return d->core_default_reject;
}

bool dx_damos_has_ops_filters(const struct dx_damos *d)
{
	return dx_damos_ops_filter_types(d) != 0;
}

uint32_t dx_damos_ops_filter_types(const struct dx_damos *d)
{
	uint32_t types = 0;
	size_t i;

	for (i = 0; i < d->s.nr_filters; i++)
		if (!is_core_filter(&d->filters[i]))
			types |= DX_FILTER_BIT(d->filters[i].type);
	return types;
}

/* /proc/kpageflags bits (include/uapi/linux/kernel-page-flags.h). */
#define KPF_ACTIVE_BIT (1ULL << 6)
#define KPF_MMAP_BIT (1ULL << 11)
#define KPF_ANON_BIT (1ULL << 12)

bool dx_damos_ops_filter_out(const struct dx_damos *d,
			     const struct dx_page_info *page)
{
	size_t i;

	/* memory an allow filter of the core let through is not filtered */
	if (d->core_filters_allowed)
		return false;
	for (i = 0; i < d->s.nr_filters; i++) {
		const struct dx_filter *f = &d->filters[i];
		bool matched;

		switch (f->type) {
		case DX_FILTER_ANON:
			matched = page->kpageflags & KPF_ANON_BIT;
			break;
		case DX_FILTER_ACTIVE:
			matched = page->kpageflags & KPF_ACTIVE_BIT;
			break;
		case DX_FILTER_MEMCG:
			matched = page->memcg_ino &&
				  page->memcg_ino == f->memcg_ino;
			break;
		case DX_FILTER_YOUNG:
			matched = page->young;
			break;
		case DX_FILTER_HUGEPAGE_SIZE:
			matched = f->sz_min <= page->folio_sz &&
				  page->folio_sz <= f->sz_max;
			break;
		case DX_FILTER_UNMAPPED:
			matched = !(page->kpageflags & KPF_MMAP_BIT);
			break;
		default:
			continue; /* the core's */
		}
		if (matched == f->matching)
			return !f->allow;
	}
	return d->ops_default_reject;
}

/* --------------------------------------------------------------- applying */

static void record_tried(struct dx_ctx *ctx, struct dx_damos *d,
			 const struct dx_region *r, uint64_t sz_passed)
{
	struct dx_tried_region *tr;

	if (d->nr_tried == d->cap_tried) {
		size_t cap = d->cap_tried ? d->cap_tried * 2 : 64;
		struct dx_tried_region *n = realloc(d->tried, cap * sizeof(*n));

		if (!n)
			return; /* the list is a report: drop, never fail */
		d->tried = n;
		d->cap_tried = cap;
	}
	tr = &d->tried[d->nr_tried++];
	tr->start = r->start;
	tr->end = r->end;
	tr->nr_accesses = dx_damos_mvsum(ctx, r);
	tr->age = r->age;
	tr->sz_filter_passed = sz_passed;
}

/* The kernel's damos_apply_scheme() on region idx of target ti. */
static void apply_scheme(struct dx_ctx *ctx, size_t ti, size_t idx,
			 struct dx_damos *d)
{
	struct dx_target *t = &ctx->targets[ti];
	uint64_t sz = t->regions[idx].end - t->regions[idx].start;
	uint64_t applied = 0, passed = 0, t0;
	struct dx_region *r;
	int err = 0;

	if (dx_damos_quota_is_set(d) && d->charged_sz + sz > d->esz) {
		sz = ALIGN_DOWN(d->esz - d->charged_sz,
				ctx->attrs.min_region_sz);
		if (!sz || dx_split_region_at(t, idx, sz))
			goto update_stat;
	}
	if (dx_damos_core_filter_out(ctx, ti, idx, d))
		return;
	r = &t->regions[idx];
	sz = r->end - r->start;
	t0 = dx_clock_ns(CLOCK_MONOTONIC);
	if (d->s.action != DX_ACTION_STAT || dx_damos_has_ops_filters(d))
		applied = ctx->ops.apply_scheme(ctx, t, r, d, &passed, &err);
	d->total_charged_ns += dx_clock_ns(CLOCK_MONOTONIC) - t0;
	record_tried(ctx, d, r, passed);
	dx_damos_charge_quota(d, sz, applied);
	if (dx_damos_quota_is_full(ctx, d)) {
		d->charge_target_from = ti;
		d->charge_addr_from = r->end;
	}
	/*
	 * A region acted on starts ageing anew, so that an action on regions
	 * older than some age does not hit the same ones at every pass.
	 */
	if (d->s.action != DX_ACTION_STAT)
		r->age = 0;
update_stat:
	d->stat.nr_tried++;
	d->stat.sz_tried += sz;
	if (applied)
		d->stat.nr_applied++;
	d->stat.sz_applied += applied;
	d->stat.sz_ops_filter_passed += passed;
	if (err) {
		d->stat.nr_failed++;
		d->stat.last_errno = -err;
	}
}

static bool due(const struct dx_ctx *ctx, const struct dx_damos *d)
{
	return ctx->passed_samples >= d->next_apply_sample;
}

/* Every due, active scheme on region idx of target ti, in turn. */
static void apply_schemes_to(struct dx_ctx *ctx, size_t ti, size_t idx)
{
	struct dx_target *t = &ctx->targets[ti];
	struct dx_damos *d;

	dx_for_each_scheme(d, ctx) {
		if (!due(ctx, d) || !d->stat.activated)
			continue;
		if (dx_damos_quota_is_full(ctx, d))
			continue;
		if (dx_damos_skip_charged_region(ctx, ti, idx, d))
			continue;
		if (dx_damos_pattern_matches(ctx, &t->regions[idx], d) &&
		    (!dx_damos_quota_is_set(d) ||
		     dx_damos_score(ctx, &t->regions[idx], d) >=
			     (int)d->min_score))
			apply_scheme(ctx, ti, idx, d);
		if (idx == t->nr_regions - 1)
			d->stat.nr_snapshots++;
	}
}

/*
 * Regions split for a quota or an addr filter go back together when nothing
 * tells them apart, as the kernel's damos_apply_target() does.
 */
static size_t merge_back(struct dx_ctx *ctx, struct dx_target *t, size_t idx,
			 uint64_t sz_limit)
{
	const struct dx_region *p, *r;

	if (!idx)
		return idx;
	p = &t->regions[idx - 1];
	r = &t->regions[idx];
	if (p->end != r->start || p->age != r->age ||
	    p->last_nr_accesses != r->last_nr_accesses ||
	    p->nr_accesses != r->nr_accesses || r->end - p->start > sz_limit)
		return idx;
	dx_merge_two(t, idx - 1);
	return idx - 1;
}

void dx_damos_apply(struct dx_ctx *ctx)
{
	bool any = false;
	struct dx_damos *d;
	uint64_t sz_limit;
	size_t ti, idx;

	dx_for_each_scheme(d, ctx) {
		if (!due(ctx, d) || !d->stat.activated)
			continue;
		any = true;
		d->nr_tried = 0; /* the tried regions of this pass only */
		dx_damos_adjust_quota(ctx, d);
	}
	if (!any)
		return;
	sz_limit = dx_region_sz_limit(ctx);
	for (ti = 0; ti < ctx->nr_targets && !ctx->stop; ti++) {
		struct dx_target *t = &ctx->targets[ti];

		if (t->dead) {
			dx_for_each_scheme(d, ctx) {
				if (d->charge_target_from == ti) {
					d->charge_target_from = SIZE_MAX;
					d->charge_addr_from = 0;
				}
			}
			continue;
		}
		/* a stop request stops the actions at once, not the pass */
		for (idx = 0; idx < t->nr_regions && !ctx->stop; idx++) {
			apply_schemes_to(ctx, ti, idx);
			idx = merge_back(ctx, t, idx, sz_limit);
		}
	}
	dx_for_each_scheme(d, ctx)
		if (due(ctx, d))
			set_next_apply(ctx, d);
}
