// SPDX-License-Identifier: MIT
/*
 * damonx core: tuning a running context.
 *
 * - Online changes of the attributes, with the kernel's damon_set_attrs()
 *   semantics: the regions' counts and ages are rescaled to the new
 *   intervals (damon_update_monitoring_result()).
 * - The monitoring intervals auto-tuning of the kernel (intervals_goal,
 *   Linux 6.15; kdamond_tune_intervals() in mm/damon/core.c of 7.x): every
 *   goal.aggrs aggregations, the share of the observable access events that
 *   the last aggregation found is compared with goal.access_bp, and both
 *   intervals are scaled together by the kernel's feedback rule.
 * - The CPU budget, damonx's own: per window of at least half a second, the
 *   CPU time of the whole process (CLOCK_PROCESS_CPUTIME_ID: the loop, and
 *   what the caller does with the snapshots and files) per sample gives the
 *   sampling interval at which it would use the budget; that is the lowest
 *   the sampling interval may go.  Past the longest sampling interval it
 *   sets, max_nr_regions comes down instead.  With an intervals goal, the
 *   goal steers and the budget is its ceiling.
 *
 * Both keep the ratio of the aggregation to the sampling interval (the
 * largest nr_accesses), so that nr_accesses keeps its meaning.
 */
#define _GNU_SOURCE
#include "tuning.h"
#include "clock.h"

#include <errno.h>

/* The budget measures over windows at least this long, ending at aggregations. */
#define DX_BUDGET_WINDOW_NS (500ULL * 1000 * 1000)
/* The longest sampling interval the budget sets without an intervals goal. */
#define DX_BUDGET_MAX_SAMPLE_US 1000000ULL

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

/* -------------------------------------------------------------- CPU time */

void dx_ctx_set_cpu_model(struct dx_ctx *ctx, const struct dx_cpu_model *model)
{
	ctx->cpu_model = *model;
}

uint64_t dx_ctx_cpu_ns(const struct dx_ctx *ctx)
{
	if (ctx->clock == DX_CLOCK_VIRTUAL)
		return ctx->virtual_cpu_ns;
	if (!ctx->started)
		return 0;
	return dx_clock_ns(CLOCK_PROCESS_CPUTIME_ID) - ctx->cpu_start_ns;
}

/* On the virtual clock, the work of the model costs CPU time, and time. */
static void charge(struct dx_ctx *ctx, uint64_t ns)
{
	if (ctx->clock != DX_CLOCK_VIRTUAL)
		return;
	ctx->virtual_cpu_ns += ns;
	ctx->now_ns += ns;
}

void dx_tuning_sampled(struct dx_ctx *ctx, size_t nr_checks)
{
	ctx->sampled_ns += ctx->attrs.sample_us * 1000;
	charge(ctx, ctx->cpu_model.per_sample_ns +
			    nr_checks * ctx->cpu_model.per_check_ns);
}

/* ------------------------------------------------ changing the attributes */

/*
 * A count of samples in one aggregation under old, as a count under new: the
 * kernel's damon_nr_samples_for_new_attrs(), through basis points.
 */
static uint32_t nr_samples_for_new_attrs(uint32_t nr,
					 const struct dx_attrs *old,
					 const struct dx_attrs *new)
{
	uint64_t bp = (uint64_t)nr * 10000 / dx_max_nr_accesses(old);

	return (uint32_t)(bp * dx_max_nr_accesses(new) / 10000);
}

/*
 * The kernel's damon_update_monitoring_result(): counts and ages in the units
 * of the new intervals.  In the middle of an aggregation, its counts so far
 * are dropped, as if it had just started.  The moving sum starts again from
 * the count the next aggregation starts with, as 6.12 sets it.
 */
static void rescale_regions(struct dx_ctx *ctx, const struct dx_attrs *new,
			    bool aggregating)
{
	const struct dx_attrs *old = &ctx->attrs;
	struct dx_target *t;
	struct dx_region *r;

	dx_for_each_target(t, ctx) {
		dx_for_each_region(r, t) {
			r->last_nr_accesses = nr_samples_for_new_attrs(
				r->last_nr_accesses, old, new);
			if (aggregating)
				r->nr_accesses = 0;
			else
				r->nr_accesses = nr_samples_for_new_attrs(
					r->nr_accesses, old, new);
			r->nr_accesses_bp = (aggregating ? r->last_nr_accesses :
							   r->nr_accesses) *
					    10000;
			r->age = (uint32_t)((unsigned __int128)r->age *
					    old->aggr_us / new->aggr_us);
		}
	}
}

/* Put attrs in effect; aggregating: in the middle of an aggregation. */
static void apply_attrs(struct dx_ctx *ctx, const struct dx_attrs *attrs,
			bool aggregating)
{
	if (ctx->started) {
		rescale_regions(ctx, attrs, aggregating);
		ctx->next_aggr_sample = ctx->passed_samples +
					dx_samples_of(attrs->aggr_us, attrs);
		ctx->next_update_sample =
			ctx->passed_samples +
			dx_samples_of(attrs->ops_update_us, attrs);
		if (aggregating)
			ctx->aggr_start_ns = ctx->now_ns;
	}
	ctx->attrs = *attrs;
	dx_damos_attrs_changed(ctx);
	if (ctx->started) {
		ctx->sz_limit = dx_region_sz_limit(ctx);
		/* which regions damonx's own rules check, under attrs */
		dx_sampling_plan(ctx);
	}
}

static void budget_restart_window(struct dx_ctx *ctx)
{
	struct dx_budget *b = &ctx->budget;

	b->cpu_ns = dx_ctx_cpu_ns(ctx);
	b->start_ns = ctx->now_ns;
	b->nr_samples = ctx->stats.nr_samples;
	b->nr_checks = ctx->stats.nr_region_checks;
	b->sampled_ns = ctx->sampled_ns;
}

void dx_tuning_init(struct dx_ctx *ctx)
{
	ctx->user_attrs = ctx->attrs;
	ctx->budget.max_nr_regions = ctx->attrs.max_nr_regions;
	ctx->budget.correction = 1;
}

int dx_ctx_set_attrs(struct dx_ctx *ctx, const struct dx_attrs *attrs)
{
	bool goal_was_on = ctx->user_attrs.intervals_goal.aggrs;
	int err = dx_attrs_validate(attrs);

	if (err)
		return err;
	if (ctx->started && attrs->min_region_sz != ctx->attrs.min_region_sz)
		return -EBUSY;
	ctx->user_attrs = *attrs;
	ctx->budget.floor_us = 0;
	ctx->budget.holding = false;
	ctx->budget.max_nr_regions = attrs->max_nr_regions;
	apply_attrs(ctx, attrs, ctx->passed_samples < ctx->next_aggr_sample);
	if (ctx->started) {
		budget_restart_window(ctx);
		/* a goal set now first tunes goal.aggrs aggregations later */
		if (!goal_was_on)
			ctx->next_tune_sample =
				ctx->passed_samples +
				dx_max_nr_accesses(attrs) *
					attrs->intervals_goal.aggrs;
	}
	return 0;
}

void dx_ctx_attrs(const struct dx_ctx *ctx, struct dx_attrs *out)
{
	*out = ctx->attrs;
}

void dx_tuning_start(struct dx_ctx *ctx)
{
	if (ctx->clock == DX_CLOCK_REAL)
		ctx->cpu_start_ns = dx_clock_ns(CLOCK_PROCESS_CPUTIME_ID);
	/* as kdamond_init_ctx(): the first tuning after goal.aggrs aggregations */
	ctx->next_tune_sample =
		ctx->next_aggr_sample * ctx->attrs.intervals_goal.aggrs;
	budget_restart_window(ctx);
}

/* ----------------------------------------------------- the intervals goal */

/*
 * The kernel's damon_feed_loop_next_input(): the input that should bring a
 * score proportional to it to the goal of 10,000, never below 10,000.
 */
uint64_t dx_feed_loop_next_input(uint64_t last_input, uint64_t score)
{
	const uint64_t goal = 10000, min_input = 10000;
	uint64_t score_goal_diff, compensation;
	bool over_achieving = score > goal;

	if (score == goal)
		return last_input;
	if (score >= goal * 2)
		return min_input;
	score_goal_diff = over_achieving ? score - goal : goal - score;
	if (last_input < UINT64_MAX / score_goal_diff)
		compensation = last_input * score_goal_diff / goal;
	else
		compensation = last_input / goal * score_goal_diff;
	if (over_achieving)
		return max_u64(last_input - compensation, min_input);
	if (last_input < UINT64_MAX - compensation)
		return last_input + compensation;
	return UINT64_MAX;
}

/*
 * The kernel's damon_get_intervals_score(): the access events (bytes times
 * nr_accesses) of the last aggregation, in basis points of access_bp of the
 * most there could be (bytes times the samples per aggregation).
 */
uint64_t dx_intervals_score(const struct dx_ctx *ctx)
{
	unsigned __int128 max_events = 0, events = 0, target, score;
	uint32_t aggr_samples = dx_max_nr_accesses(&ctx->attrs);
	const struct dx_target *t;
	const struct dx_region *r;

	dx_for_each_target(t, ctx) {
		dx_for_each_region(r, t) {
			uint64_t sz = r->end - r->start;

			max_events += (unsigned __int128)sz * aggr_samples;
			events += (unsigned __int128)sz * r->nr_accesses;
		}
	}
	target = max_events * ctx->user_attrs.intervals_goal.access_bp / 10000;
	if (!target)
		target = 1;
	score = events * 10000 / target;
	return score > UINT64_MAX ? UINT64_MAX : (uint64_t)score;
}

/*
 * The kernel's damon_get_intervals_adaptation_bp(): the factor, in basis
 * points, to scale the intervals by; reductions are halved (5,000 to
 * 10,000) so that the intervals do not shrink too fast.
 */
uint64_t dx_intervals_adaptation_bp(const struct dx_ctx *ctx)
{
	uint64_t score_bp = dx_intervals_score(ctx);
	uint64_t adaptation_bp =
		dx_feed_loop_next_input(100000000, score_bp) / 10000;

	if (adaptation_bp <= 10000)
		adaptation_bp = 5000 + adaptation_bp / 2;
	return adaptation_bp;
}

/* The kernel's kdamond_tune_intervals(): the next sampling interval. */
uint64_t dx_tuned_sample_us(const struct dx_ctx *ctx)
{
	const struct dx_intervals_goal *goal = &ctx->user_attrs.intervals_goal;
	uint64_t adaptation_bp = dx_intervals_adaptation_bp(ctx);
	unsigned __int128 sample;

	if (adaptation_bp == 10000)
		return ctx->attrs.sample_us;
	sample =
		(unsigned __int128)ctx->attrs.sample_us * adaptation_bp / 10000;
	if (sample > goal->max_sample_us)
		sample = goal->max_sample_us;
	return max_u64((uint64_t)sample, goal->min_sample_us);
}

/* ------------------------------------------------------------ the budget */

/* The longest sampling interval the budget may set. */
static uint64_t budget_max_sample_us(const struct dx_ctx *ctx)
{
	const struct dx_attrs *user = &ctx->user_attrs;

	if (user->intervals_goal.aggrs)
		return user->intervals_goal.max_sample_us;
	return max_u64(user->sample_us, DX_BUDGET_MAX_SAMPLE_US);
}

/*
 * At the end of a window: the lowest sampling interval, and the region
 * limit, that keep the CPU time within the budget.  A sample costs work of
 * CPU and takes the sampling interval plus extra (the work itself, waiting
 * for a CPU, the caller's handling of the snapshots) of time; the share
 * work / (interval + extra) is the budget at interval = work / budget -
 * extra.  The work of a sample is nearly all access checks, one per region,
 * and the work of an aggregation is spread over as many samples whatever
 * the intervals (their ratio is fixed): so the CPU time per check, measured
 * and smoothed, times the regions there are at the start of an aggregation
 * (the checks of each of its samples), predicts its work, and the budget is
 * met in one step.  Repeating it corrects
 * what depends on time instead.
 */
static void budget_update(struct dx_ctx *ctx)
{
	const struct dx_attrs *user = &ctx->user_attrs;
	struct dx_budget *b = &ctx->budget;
	uint64_t cap_us = budget_max_sample_us(ctx);
	uint64_t cpu_ns = dx_ctx_cpu_ns(ctx);
	uint64_t span_ns = ctx->now_ns - b->start_ns;
	uint64_t nr_samples = ctx->stats.nr_samples - b->nr_samples;
	uint64_t nr_checks = ctx->stats.nr_region_checks - b->nr_checks;
	uint64_t sampled_ns = ctx->sampled_ns - b->sampled_ns;
	size_t nr_regions = dx_ctx_nr_regions(ctx);
	double share = user->cpu_budget_bp / 10000.0, per_check_ns, extra_ns;
	double target_ns;
	uint64_t floor_us;

	if (span_ns < DX_BUDGET_WINDOW_NS || !nr_samples || !nr_checks)
		return;
	/*
	 * What the prediction missed while it held the intervals, it makes
	 * up for, a bounded part at a time: the regions may keep growing,
	 * some work goes with time rather than with checks, and damonx's own
	 * rules check a stable region in only one of 2 or 4 samples (so a
	 * sample costs less than the regions predict).  Down by at most 0.6
	 * and up by 1.25 per window: a quick settling from the prediction's
	 * side that keeps under the budget.
	 */
	if (b->holding) {
		double miss = (double)(cpu_ns - b->cpu_ns) / span_ns / share;

		miss = miss < 0.6 ? 0.6 : miss > 1.25 ? 1.25 : miss;
		b->correction *= miss;
		if (b->correction < 0.3)
			b->correction = 0.3;
		if (b->correction > 2)
			b->correction = 2;
	}
	per_check_ns = (double)(cpu_ns - b->cpu_ns) / nr_checks;
	/* smoothed, against the noise of one window */
	b->per_check_ns = b->per_check_ns > 0 ?
				  (b->per_check_ns + per_check_ns) / 2 :
				  per_check_ns;
	/* beyond the interval, the time a sample takes is mostly its work */
	extra_ns = span_ns > sampled_ns ?
			   (double)(span_ns - sampled_ns) / nr_checks :
			   0;
	budget_restart_window(ctx);

	/* the regions, just split, are the checks of the next samples */
	target_ns = nr_regions *
		    (b->per_check_ns * b->correction / share - extra_ns);
	floor_us = target_ns > 1000 ? (uint64_t)(target_ns / 1000) : 0;
	if (floor_us > cap_us) {
		/* fewer regions, in proportion to the CPU over the budget */
		uint64_t nr =
			(uint64_t)((double)nr_regions * cap_us / floor_us);

		nr = max_u64(nr, user->min_nr_regions);
		b->max_nr_regions = (uint32_t)min_u64(nr, b->max_nr_regions);
		floor_us = cap_us;
	} else if (b->max_nr_regions < user->max_nr_regions) {
		/* room again: up to twice the regions per window */
		double grow = floor_us ? (double)cap_us / floor_us : 2;
		uint64_t nr =
			(uint64_t)(b->max_nr_regions * (grow < 2 ? grow : 2));

		nr = max_u64(nr, (uint64_t)b->max_nr_regions + 1);
		b->max_nr_regions = (uint32_t)min_u64(nr, user->max_nr_regions);
	}
	b->floor_us = floor_us;
}

void dx_tuning_aggregated(struct dx_ctx *ctx)
{
	const struct dx_intervals_goal *goal = &ctx->user_attrs.intervals_goal;

	charge(ctx, ctx->cpu_model.per_aggr_ns +
			    dx_ctx_nr_regions(ctx) *
				    ctx->cpu_model.per_aggr_region_ns);
	if (goal->aggrs && ctx->passed_samples >= ctx->next_tune_sample) {
		ctx->next_tune_sample +=
			dx_max_nr_accesses(&ctx->attrs) * goal->aggrs;
		ctx->goal_sample_us = dx_tuned_sample_us(ctx);
	}
}

void dx_tuning_next_aggregation(struct dx_ctx *ctx)
{
	const struct dx_attrs *user = &ctx->user_attrs;
	struct dx_attrs next = ctx->attrs;
	uint64_t sample_us = user->sample_us;
	bool holding = false;

	if (user->intervals_goal.aggrs)
		sample_us = ctx->goal_sample_us ? ctx->goal_sample_us :
						  ctx->attrs.sample_us;
	ctx->goal_sample_us = 0;
	next.max_nr_regions = user->max_nr_regions;
	if (user->cpu_budget_bp) {
		budget_update(ctx);
		holding = ctx->budget.floor_us >= sample_us;
		sample_us = max_u64(sample_us, ctx->budget.floor_us);
		next.max_nr_regions = (uint32_t)min_u64(
			next.max_nr_regions, ctx->budget.max_nr_regions);
	}
	ctx->budget.holding = holding;
	next.sample_us = sample_us;
	next.aggr_us = sample_us == user->sample_us ?
			       user->aggr_us :
			       sample_us * dx_max_nr_accesses(user);
	if (next.sample_us == ctx->attrs.sample_us &&
	    next.aggr_us == ctx->attrs.aggr_us &&
	    next.max_nr_regions == ctx->attrs.max_nr_regions)
		return;
	/*
	 * The aggregation has just begun: its counts are 0 and the last ones
	 * are rescaled, which is what the kernel's tuning leaves, though it
	 * rescales just before the counts are reset.
	 */
	apply_attrs(ctx, &next, true);
	ctx->stats.nr_tunings++;
}
