// SPDX-License-Identifier: MIT
#include "sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

struct sim_phase {
	uint64_t end_us; /* phase end, simulated time since start */
	size_t nr_ranges;
	struct dx_range *ranges;
	/* a page of ranges[i] is accessed when a 32-bit draw is below this */
	uint64_t *thresholds;
	double *rates_hz; /* per range: 0, or the rate thresholds come from */
	uint64_t thresholds_sample_us; /* the interval of the rates' thresholds */
};

struct sim_target {
	uint64_t size;
	uint64_t page_size;
	size_t nr_phases;
	struct sim_phase *phases;
};

static void free_sim_target(struct sim_target *st)
{
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->nr_phases; i++) {
		free(st->phases[i].ranges);
		free(st->phases[i].thresholds);
		free(st->phases[i].rates_hz);
	}
	free(st->phases);
	free(st);
}

static uint64_t prob_threshold(double prob)
{
	return (uint64_t)(prob * 4294967296.0);
}

static struct sim_phase *phase_at(struct sim_target *st, uint64_t t_us,
				  uint64_t sample_us)
{
	struct sim_phase *p;
	size_t i;

	for (i = 0; i + 1 < st->nr_phases; i++)
		if (t_us < st->phases[i].end_us)
			break;
	p = &st->phases[i];
	/* the sampling interval may change while monitoring */
	if (p->thresholds_sample_us != sample_us) {
		for (i = 0; i < p->nr_ranges; i++)
			if (p->rates_hz[i] > 0)
				p->thresholds[i] = prob_threshold(-expm1(
					-p->rates_hz[i] * sample_us / 1e6));
		p->thresholds_sample_us = sample_us;
	}
	return p;
}

static int sim_check_accesses(struct dx_ctx *ctx)
{
	/*
	 * the accesses happened during the sampling interval that just ended;
	 * phases count from the start of monitoring, so that a workload runs
	 * the same on the real clock as on the virtual one
	 */
	uint64_t t_us =
		(ctx->now_ns - ctx->start_ns) / 1000 - ctx->attrs.sample_us;
	uint32_t max_nr = 0;
	struct dx_target *t;
	struct dx_region *r;

	dx_for_each_live_target(t, ctx) {
		struct sim_target *st = t->priv;
		const struct sim_phase *p =
			phase_at(st, t_us, ctx->attrs.sample_us);

		dx_for_each_region(r, t) {
			uint64_t page = r->sampling_addr -
					r->sampling_addr % st->page_size;
			long k = dx_find_range(p->ranges, p->nr_ranges, page);
			bool accessed = k >= 0 && (dx_rand_u64(ctx) >> 32) <
							  p->thresholds[k];

			dx_region_account(ctx, r, accessed);
			if (r->nr_accesses > max_nr)
				max_nr = r->nr_accesses;
		}
	}
	return (int)max_nr;
}

static void sim_target_cleanup(struct dx_ctx *ctx, struct dx_target *t)
{
	(void)ctx;
	free_sim_target(t->priv);
	t->priv = NULL;
}

static const struct dx_operations sim_ops = {
	.name = "sim",
	.check_accesses = sim_check_accesses,
	.target_cleanup = sim_target_cleanup,
};

int dx_sim_register(void)
{
	return dx_register_ops(&sim_ops);
}

int dx_sim_add_target(struct dx_ctx *ctx, int64_t id, uint64_t size,
		      uint64_t page_size, const struct dx_sim_phase *phases,
		      size_t nr_phases)
{
	struct dx_range whole = { 0, size };
	struct sim_target *st;
	uint64_t end_us = 0;
	size_t i, j;
	int err;

	if (ctx->ops.check_accesses != sim_check_accesses || !size ||
	    !page_size || (page_size & (page_size - 1)) || size % page_size ||
	    !nr_phases)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->size = size;
	st->page_size = page_size;
	st->phases = calloc(nr_phases, sizeof(*st->phases));
	if (!st->phases) {
		free(st);
		return -ENOMEM;
	}
	st->nr_phases = nr_phases;
	for (i = 0; i < nr_phases; i++) {
		const struct dx_sim_phase *in = &phases[i];
		struct sim_phase *p = &st->phases[i];

		err = -EINVAL;
		if (!in->duration_us)
			goto fail;
		end_us += in->duration_us;
		p->end_us = end_us;
		p->ranges = calloc(in->nr_ranges ? in->nr_ranges : 1,
				   sizeof(*p->ranges));
		p->thresholds = calloc(in->nr_ranges ? in->nr_ranges : 1,
				       sizeof(*p->thresholds));
		p->rates_hz = calloc(in->nr_ranges ? in->nr_ranges : 1,
				     sizeof(*p->rates_hz));
		err = -ENOMEM;
		if (!p->ranges || !p->thresholds || !p->rates_hz)
			goto fail;
		p->nr_ranges = in->nr_ranges;
		for (j = 0; j < in->nr_ranges; j++) {
			const struct dx_sim_range *r = &in->ranges[j];

			err = -EINVAL;
			if (r->start >= r->end || r->end > size ||
			    !(r->prob >= 0.0 && r->prob <= 1.0) ||
			    !(r->rate_hz >= 0.0 && r->rate_hz < INFINITY) ||
			    (j && r->start < in->ranges[j - 1].end))
				goto fail;
			p->ranges[j].start = r->start;
			p->ranges[j].end = r->end;
			p->thresholds[j] = prob_threshold(r->prob);
			p->rates_hz[j] = r->rate_hz;
		}
	}
	err = dx_ctx_add_target(ctx, id, st, &whole, 1);
	if (err)
		goto fail;
	return 0;
fail:
	free_sim_target(st);
	return err;
}
