// SPDX-License-Identifier: MIT
/*
 * damonx core: contexts, the registry of operations tables, and the
 * monitoring loop (regions.c has the rules that adapt the regions).
 *
 * The loop follows the Linux kernel's mm/damon/core.c (6.12) so that damonx
 * and the kernel's DAMON can be compared like for like: per sample, every
 * region's sampled page is prepared, checked a sampling interval later and
 * accounted; per aggregation, regions are merged, reported, acted on by the
 * schemes (damos.c), reset and split; every ops_update_us the backend re-reads the
 * targets' mappings.
 */
#define _GNU_SOURCE
#include "damonx.h"
#include "clock.h"
#include "tuning.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- random */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: fast, and good enough for picking sample addresses. */
uint64_t dx_rand_u64(struct dx_ctx *ctx)
{
	uint64_t *s = ctx->rng;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t dx_rand_range(struct dx_ctx *ctx, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo +
	       (uint64_t)(((unsigned __int128)dx_rand_u64(ctx) * (hi - lo)) >>
			  64);
}

/* ------------------------------------------------------------ attributes */

void dx_attrs_default(struct dx_attrs *attrs)
{
	attrs->sample_us = 5000;
	attrs->aggr_us = 100000;
	attrs->ops_update_us = 1000000;
	attrs->min_nr_regions = 10;
	attrs->max_nr_regions = 1000;
	attrs->min_region_sz = 4096;
	memset(&attrs->intervals_goal, 0, sizeof(attrs->intervals_goal));
	attrs->cpu_budget_bp = 0;
	attrs->rules = DX_RULES_ALL;
}

int dx_attrs_validate(const struct dx_attrs *a)
{
	if (!a->sample_us || !a->aggr_us || !a->ops_update_us)
		return -EINVAL;
	if (a->sample_us > a->aggr_us)
		return -EINVAL;
	if (a->min_nr_regions < 3 || a->min_nr_regions > a->max_nr_regions)
		return -EINVAL;
	if (!a->min_region_sz || (a->min_region_sz & (a->min_region_sz - 1)))
		return -EINVAL;
	if (a->rules & ~DX_RULES_ALL)
		return -EINVAL;
	if (a->cpu_budget_bp > 10000)
		return -EINVAL;
	/* as the kernel's damon_valid_intervals_goal(), and no empty goal */
	if (a->intervals_goal.aggrs) {
		const struct dx_intervals_goal *g = &a->intervals_goal;

		if (!g->access_bp || g->access_bp > 10000 ||
		    !g->min_sample_us || g->min_sample_us > g->max_sample_us ||
		    a->sample_us < g->min_sample_us ||
		    a->sample_us > g->max_sample_us)
			return -EINVAL;
	}
	return 0;
}

uint32_t dx_max_nr_accesses(const struct dx_attrs *attrs)
{
	uint64_t nr = attrs->aggr_us / attrs->sample_us;

	/* valid attributes never give 0; the window divides */
	if (!nr)
		return 1;
	return nr > UINT32_MAX ? UINT32_MAX : (uint32_t)nr;
}

/* ------------------------------------------------------------- registry */

/* Plenty for the backends of one library; the kernel has four. */
#define DX_NR_OPS_MAX 8

/* Filled when the library loads, read-only afterwards. */
static const struct dx_operations *registered_ops[DX_NR_OPS_MAX];
static size_t nr_registered_ops;

int dx_register_ops(const struct dx_operations *ops)
{
	const struct dx_operations *found;

	if (!ops->name)
		return -EINVAL;
	found = dx_find_ops(ops->name);
	if (found)
		return found == ops ? 0 : -EEXIST;
	if (nr_registered_ops == DX_NR_OPS_MAX)
		return -ENOSPC;
	registered_ops[nr_registered_ops++] = ops;
	return 0;
}

const struct dx_operations *dx_find_ops(const char *name)
{
	size_t i;

	for (i = 0; i < nr_registered_ops; i++)
		if (!strcmp(registered_ops[i]->name, name))
			return registered_ops[i];
	return NULL;
}

size_t dx_nr_ops(void)
{
	return nr_registered_ops;
}

const char *dx_ops_name(size_t index)
{
	return index < nr_registered_ops ? registered_ops[index]->name : NULL;
}

/* ------------------------------------------------------------- contexts */

int dx_ctx_new(struct dx_ctx **out, const struct dx_attrs *attrs, uint64_t seed)
{
	struct dx_ctx *ctx;
	int err, i;

	err = dx_attrs_validate(attrs);
	if (err)
		return err;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	ctx->attrs = *attrs;
	dx_ctx_set_metric_roots(ctx, "/proc", "/sys");
	dx_tuning_init(ctx);
	for (i = 0; i < 4; i++)
		ctx->rng[i] = splitmix64(&seed);
	*out = ctx;
	return 0;
}

void dx_ctx_set_ops(struct dx_ctx *ctx, const struct dx_operations *ops,
		    void *ops_priv)
{
	ctx->ops = *ops;
	ctx->ops_priv = ops_priv;
}

int dx_ctx_select_ops(struct dx_ctx *ctx, const char *name,
		      const struct dx_ops_env *env)
{
	static const struct dx_operations none;
	const struct dx_operations *ops = dx_find_ops(name);
	int err;

	if (!ops)
		return -ENOENT;
	if (ctx->ops.name || ctx->nr_targets)
		return -EBUSY;
	dx_ctx_set_ops(ctx, ops, NULL);
	if (ops->attach) {
		err = ops->attach(ctx, env);
		if (err) {
			dx_ctx_set_ops(ctx, &none, NULL);
			return err;
		}
	}
	return 0;
}

void dx_ctx_set_clock(struct dx_ctx *ctx, enum dx_clock clock)
{
	ctx->clock = clock;
}

static int reserve_targets(struct dx_ctx *ctx, size_t nr)
{
	struct dx_target *n;
	size_t cap;

	if (nr <= ctx->cap_targets)
		return 0;
	cap = ctx->cap_targets ? ctx->cap_targets * 2 : 4;
	n = realloc(ctx->targets, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	ctx->targets = n;
	ctx->cap_targets = cap;
	return 0;
}

int dx_ctx_add_target(struct dx_ctx *ctx, int64_t id, void *priv,
		      const struct dx_range *ranges, size_t nr_ranges)
{
	struct dx_target *t;
	int err;

	if (ctx->started)
		return -EBUSY;
	err = reserve_targets(ctx, ctx->nr_targets + 1);
	if (err)
		return err;
	t = &ctx->targets[ctx->nr_targets];
	memset(t, 0, sizeof(*t));
	t->id = id;
	t->priv = priv;
	if (ranges) {
		err = dx_init_regions(ctx, t, ranges, nr_ranges);
		if (err) {
			dx_target_clear_regions(t);
			return err;
		}
	}
	ctx->nr_targets++;
	return 0;
}

void dx_target_kill(struct dx_ctx *ctx, struct dx_target *t)
{
	if (t->dead)
		return;
	t->dead = true;
	dx_target_clear_regions(t);
	if (ctx->ops.target_cleanup)
		ctx->ops.target_cleanup(ctx, t);
	t->priv = NULL;
	ctx->stats.nr_targets_lost++;
}

void dx_ctx_free(struct dx_ctx *ctx)
{
	struct dx_target *t;

	if (!ctx)
		return;
	dx_for_each_target(t, ctx) {
		dx_target_clear_regions(t);
		if (!t->dead && ctx->ops.target_cleanup)
			ctx->ops.target_cleanup(ctx, t);
	}
	if (ctx->ops.cleanup)
		ctx->ops.cleanup(ctx);
	free(ctx->targets);
	dx_damos_free_all(ctx);
	free(ctx->snap);
	free(ctx->snap_nr);
	free(ctx->snap_nr_checks);
	free(ctx);
}

void dx_ctx_request_stop(struct dx_ctx *ctx)
{
	ctx->stop = 1;
}

/* -------------------------------------------------------------- queries */

uint64_t dx_ctx_now_ns(const struct dx_ctx *ctx)
{
	return ctx->now_ns;
}

const struct dx_stats *dx_ctx_stats(const struct dx_ctx *ctx)
{
	return &ctx->stats;
}

size_t dx_ctx_nr_regions(const struct dx_ctx *ctx)
{
	const struct dx_target *t;
	size_t nr = 0;

	dx_for_each_target(t, ctx)
		nr += t->nr_regions;
	return nr;
}

size_t dx_ctx_nr_live_targets(const struct dx_ctx *ctx)
{
	const struct dx_target *t;
	size_t nr = 0;

	dx_for_each_live_target(t, ctx)
		nr++;
	return nr;
}

size_t dx_ctx_nr_targets(const struct dx_ctx *ctx)
{
	return ctx->nr_targets;
}

int64_t dx_ctx_target_id(const struct dx_ctx *ctx, size_t index)
{
	return index < ctx->nr_targets ? ctx->targets[index].id : -1;
}

bool dx_ctx_target_live(const struct dx_ctx *ctx, size_t index)
{
	return index < ctx->nr_targets && !ctx->targets[index].dead;
}

size_t dx_ctx_ops_counters(const struct dx_ctx *ctx, struct dx_counter *out,
			   size_t cap)
{
	if (!ctx->ops.get_counters)
		return 0;
	return ctx->ops.get_counters(ctx, out, cap);
}

/* ------------------------------------------------------------- snapshot */

static int take_snapshot(struct dx_ctx *ctx)
{
	size_t nr = dx_ctx_nr_regions(ctx), k = 0;
	const struct dx_target *t;
	const struct dx_region *r;

	if (nr > ctx->snap_cap) {
		struct dx_region_out *n = realloc(ctx->snap, nr * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ctx->snap = n;
		ctx->snap_cap = nr;
	}
	dx_for_each_target(t, ctx) {
		ctx->snap_nr[t - ctx->targets] = t->nr_regions;
		ctx->snap_nr_checks[t - ctx->targets] = t->nr_checks;
		dx_for_each_region(r, t) {
			ctx->snap[k].start = r->start;
			ctx->snap[k].end = r->end;
			ctx->snap[k].nr_accesses = r->nr_accesses;
			ctx->snap[k].age = r->age;
			ctx->snap[k].nr_accesses_bp = r->nr_accesses_bp;
			k++;
		}
	}
	ctx->snap_start_ns = ctx->aggr_start_ns;
	ctx->snap_end_ns = ctx->now_ns;
	ctx->snap_sample_us = ctx->attrs.sample_us;
	ctx->snap_aggr_us = ctx->attrs.aggr_us;
	ctx->snap_taken = true;
	return 0;
}

bool dx_ctx_snapshot_span(const struct dx_ctx *ctx, uint64_t *start_ns,
			  uint64_t *end_ns)
{
	*start_ns = ctx->snap_start_ns;
	*end_ns = ctx->snap_end_ns;
	return ctx->snap_taken;
}

void dx_ctx_snapshot_intervals(const struct dx_ctx *ctx, uint64_t *sample_us,
			       uint64_t *aggr_us)
{
	*sample_us = ctx->snap_sample_us;
	*aggr_us = ctx->snap_aggr_us;
}

size_t dx_ctx_snapshot_nr_regions(const struct dx_ctx *ctx, size_t index)
{
	if (!ctx->snap_taken || index >= ctx->nr_targets)
		return 0;
	return ctx->snap_nr[index];
}

uint64_t dx_ctx_snapshot_nr_checks(const struct dx_ctx *ctx, size_t index)
{
	if (!ctx->snap_taken || index >= ctx->nr_targets)
		return 0;
	return ctx->snap_nr_checks[index];
}

size_t dx_ctx_snapshot_fill(const struct dx_ctx *ctx, size_t index,
			    struct dx_region_out *out, size_t cap)
{
	size_t i, off = 0, nr = dx_ctx_snapshot_nr_regions(ctx, index);

	if (nr > cap)
		nr = cap;
	if (!nr)
		return 0;
	for (i = 0; i < index; i++)
		off += ctx->snap_nr[i];
	memcpy(out, &ctx->snap[off], nr * sizeof(*out));
	return nr;
}

/* ------------------------------------------------------------------ loop */

void dx_region_account(struct dx_ctx *ctx, struct dx_region *r, bool accessed)
{
	uint32_t len_window = dx_max_nr_accesses(&ctx->attrs), add = 0;

	if (dx_region_checked(r)) {
		/* 1, or the samples a check stands for (adaptive checks) */
		if (accessed) {
			add = dx_sampling_weight(ctx, r);
			if (add > len_window - r->nr_accesses)
				add = len_window - r->nr_accesses;
			r->hit_addr = r->sampling_addr;
			r->nr_hits++;
		}
		r->nr_checks++;
	}
	/* a moving sum that assumes the last aggregation had no noise */
	r->nr_accesses_bp = r->nr_accesses_bp -
			    r->last_nr_accesses * 10000 / len_window +
			    add * 10000;
	r->nr_accesses += add;
}

/*
 * Signals reach a real-time loop only while it sleeps: they are blocked
 * while it works, and each sleep unblocks them (ppoll() with the caller's
 * mask), so that a signal that comes during the checks cuts the next sleep
 * short instead of waiting for the end of the aggregation (the race that
 * pselect() and ppoll() exist for).  Faults are never blocked.
 */
static void block_signals(sigset_t *old)
{
	static const int faults[] = { SIGSEGV, SIGBUS,	SIGFPE,
				      SIGILL,  SIGTRAP, SIGSYS };
	sigset_t set;
	size_t i;

	sigfillset(&set);
	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		sigdelset(&set, faults[i]);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

/*
 * Sleep until the context time deadline_ns with the signal mask awake (the
 * caller's); -EINTR when a signal came, also one that was pending already.
 */
static int sleep_until(struct dx_ctx *ctx, uint64_t deadline_ns,
		       const sigset_t *awake)
{
	struct timespec ts;
	uint64_t now;

	if (ctx->clock == DX_CLOCK_VIRTUAL) {
		if (deadline_ns > ctx->now_ns)
			ctx->now_ns = deadline_ns;
		return 0;
	}
	do {
		now = dx_clock_ns(CLOCK_MONOTONIC);
		ts = dx_ns_to_timespec(deadline_ns > now ? deadline_ns - now :
							   0);
		if (ppoll(NULL, 0, &ts, awake) < 0 && errno == EINTR) {
			ctx->now_ns = dx_clock_ns(CLOCK_MONOTONIC);
			return -EINTR;
		}
		ctx->now_ns = dx_clock_ns(CLOCK_MONOTONIC);
	} while (ctx->now_ns < deadline_ns);
	return 0;
}

/*
 * While the watermarks of every scheme say so, monitoring pauses: sleep
 * until the next watermark check and return DX_PAUSED, as the kernel's
 * kdamond_wait_activation() waits; 0 when some scheme is active.
 */
static int pause_for_watermarks(struct dx_ctx *ctx, const sigset_t *awake)
{
	uint64_t wait_ns = ctx->nr_schemes ? dx_damos_wait_activation(ctx) : 0;
	int err;

	if (!wait_ns)
		return 0;
	err = sleep_until(ctx, ctx->now_ns + wait_ns, awake);
	return err ? err : DX_PAUSED;
}

static int start(struct dx_ctx *ctx)
{
	int err;

	if (!ctx->nr_targets)
		return -EINVAL;
	if (ctx->ops.init) {
		err = ctx->ops.init(ctx);
		if (err)
			return err;
	}
	ctx->now_ns = ctx->clock == DX_CLOCK_VIRTUAL ?
			      0 :
			      dx_clock_ns(CLOCK_MONOTONIC);
	ctx->start_ns = ctx->now_ns;
	ctx->aggr_start_ns = ctx->now_ns;
	ctx->next_aggr_sample = dx_samples_of(ctx->attrs.aggr_us, &ctx->attrs);
	ctx->next_update_sample =
		dx_samples_of(ctx->attrs.ops_update_us, &ctx->attrs);
	ctx->sz_limit = dx_region_sz_limit(ctx);
	ctx->snap_nr = calloc(ctx->nr_targets, sizeof(*ctx->snap_nr));
	ctx->snap_nr_checks =
		calloc(ctx->nr_targets, sizeof(*ctx->snap_nr_checks));
	if (!ctx->snap_nr || !ctx->snap_nr_checks)
		return -ENOMEM;
	dx_sampling_plan(ctx);
	ctx->started = true;
	dx_tuning_start(ctx);
	return 0;
}

/* Drop targets that are gone; return how many are left. */
static size_t reap_targets(struct dx_ctx *ctx)
{
	struct dx_target *t;

	dx_for_each_live_target(t, ctx) {
		if (ctx->ops.target_valid && !ctx->ops.target_valid(ctx, t))
			dx_target_kill(ctx, t);
	}
	return dx_ctx_nr_live_targets(ctx);
}

/*
 * A random address in every region (in those checked in this sample, under
 * damonx's adaptive checks: sampling.c).
 */
static void pick_sampling_addrs(struct dx_ctx *ctx)
{
	dx_sampling_pick(ctx);
}

static void reset_aggregated(struct dx_ctx *ctx)
{
	struct dx_target *t;
	struct dx_region *r;

	dx_for_each_target(t, ctx) {
		dx_for_each_region(r, t) {
			r->last_nr_accesses = r->nr_accesses;
			r->nr_accesses = 0;
		}
	}
}

/*
 * The end of an aggregation: merge, report, act, tune the intervals (where
 * the kernel does; they change when the next aggregation begins, after the
 * split), reset, split.
 */
static int aggregate(struct dx_ctx *ctx)
{
	int err;

	dx_merge_regions(ctx, ctx->max_nr_accesses / 10, ctx->sz_limit);
	err = take_snapshot(ctx);
	if (err)
		return err;
	dx_damos_apply(ctx);
	ctx->next_aggr_sample += dx_samples_of(ctx->attrs.aggr_us, &ctx->attrs);
	dx_tuning_aggregated(ctx);
	reset_aggregated(ctx);
	err = dx_split_regions(ctx);
	if (err)
		return err;
	ctx->aggr_start_ns = ctx->now_ns;
	ctx->stats.nr_aggregations++;
	dx_tuning_next_aggregation(ctx);
	return 0;
}

static int run_aggregation(struct dx_ctx *ctx, const sigset_t *awake)
{
	int err;

	if (!ctx->started) {
		err = start(ctx);
		if (err)
			return err;
	}
	for (;;) {
		bool aggregated = false;
		size_t nr_checks;

		if (!ctx->checks_pending) {
			if (ctx->stop || !reap_targets(ctx))
				return 0;
			err = pause_for_watermarks(ctx, awake);
			if (err)
				return err;
			pick_sampling_addrs(ctx);
			/*
			 * A sampled page gets the sampling interval to be
			 * accessed, counted from when its accessed bit was
			 * cleared: the checks then take about as long as the
			 * clearing did, so that a slow pass over many regions
			 * does not lengthen the interval the pages are
			 * watched for (the kernel's kdamond sleeps the
			 * interval after its pass, which takes microseconds).
			 */
			if (ctx->clock == DX_CLOCK_REAL)
				ctx->now_ns = dx_clock_ns(CLOCK_MONOTONIC);
			ctx->deadline_ns =
				ctx->now_ns + ctx->attrs.sample_us * 1000;
			if (ctx->ops.prepare_access_checks) {
				err = ctx->ops.prepare_access_checks(ctx);
				if (err)
					return err;
			}
			ctx->checks_pending = true;
		}
		/* a signal returns to the caller, which may come back to go on */
		err = sleep_until(ctx, ctx->deadline_ns, awake);
		if (err)
			return err;
		ctx->checks_pending = false;
		if (ctx->stop)
			return 0;
		ctx->passed_samples++;
		ctx->stats.nr_samples++;
		nr_checks = ctx->nr_sample_checks;
		ctx->stats.nr_region_checks += nr_checks;
		if (ctx->ops.check_accesses) {
			err = ctx->ops.check_accesses(ctx);
			if (err < 0)
				return err;
			ctx->max_nr_accesses = (uint32_t)err;
		}
		dx_tuning_sampled(ctx, nr_checks);
		if (ctx->passed_samples >= ctx->next_aggr_sample) {
			err = aggregate(ctx);
			if (err)
				return err;
			aggregated = true;
		} else if (ctx->nr_schemes) {
			/* schemes with an apply interval of their own */
			dx_damos_apply(ctx);
		}
		if (ctx->passed_samples >= ctx->next_update_sample) {
			ctx->next_update_sample += dx_samples_of(
				ctx->attrs.ops_update_us, &ctx->attrs);
			if (ctx->ops.update) {
				err = ctx->ops.update(ctx);
				if (err)
					return err;
			}
			ctx->sz_limit = dx_region_sz_limit(ctx);
			ctx->stats.nr_updates++;
		}
		if (aggregated)
			return 1;
	}
}

int dx_ctx_run_aggregation(struct dx_ctx *ctx)
{
	sigset_t awake;
	int ret;

	if (ctx->clock == DX_CLOCK_VIRTUAL)
		return run_aggregation(ctx, NULL);
	block_signals(&awake);
	ret = run_aggregation(ctx, &awake);
	pthread_sigmask(SIG_SETMASK, &awake, NULL);
	return ret;
}
