// SPDX-License-Identifier: MIT
/*
 * The quota of a DAMOS scheme, with the rules of the Linux kernel's
 * mm/damon/core.c (7.x): the metrics of its goals (read from /proc and /sys
 * once per reset interval), the feedback loop that tunes the effective size
 * quota, the regions' scores and the histogram that gives the lowest score
 * still inside the quota, the charge of what was tried; and the
 * watermarks, read once per watermark interval.  damos.c applies the
 * schemes; damos.h holds what the two share.
 */
#define _GNU_SOURCE
#include "damonx.h"
#include "damos.h"
#include "tuning.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NSEC_PER_MSEC 1000000ULL

/* --------------------------------------------------------------- metrics */

/* Read a small file (at most 16 KiB) into buf, NUL-terminated. */
static int read_small(const char *path, char *buf, size_t bufsz)
{
	size_t len = 0;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (len + 1 < bufsz &&
	       (n = read(fd, buf + len, bufsz - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	return 0;
}

/* The value of "KEY: N" (meminfo) or "KEY N" in text, or -ENOENT. */
static int field_u64(const char *text, const char *key, uint64_t *out)
{
	size_t klen = strlen(key);
	const char *p = text;

	while ((p = strstr(p, key))) {
		bool at_start = p == text || p[-1] == '\n' || p[-1] == ' ';
		const char *q = p + klen;

		if (at_start && (*q == ':' || *q == ' ')) {
			while (*q == ':' || *q == ' ')
				q++;
			if (sscanf(q, "%" SCNu64, out) == 1)
				return 0;
		}
		p += klen;
	}
	return -ENOENT;
}

/* MemTotal and MemFree (kB) of a meminfo file, node or system. */
static int read_meminfo(const char *path, uint64_t *total, uint64_t *free_kb)
{
	char buf[16384];
	int err = read_small(path, buf, sizeof(buf));

	if (err)
		return err;
	if (field_u64(buf, "MemTotal", total) ||
	    field_u64(buf, "MemFree", free_kb))
		return -EINVAL;
	return 0;
}

/* The kernel's free_mem_rate: MemFree per mille of MemTotal. */
static int free_mem_rate(struct dx_ctx *ctx, uint64_t *out)
{
	char path[300];
	uint64_t total, free_kb;
	int err;

	snprintf(path, sizeof(path), "%s/meminfo", ctx->metric_procfs);
	err = read_meminfo(path, &total, &free_kb);
	if (err)
		return err;
	*out = total ? free_kb * 1000 / total : 0;
	return 0;
}

/* "some ... total=N" of /proc/pressure/memory: microseconds stalled. */
static uint64_t some_mem_psi_total(struct dx_ctx *ctx)
{
	char path[300], buf[1024];
	const char *total;
	uint64_t v = 0;

	snprintf(path, sizeof(path), "%s/pressure/memory", ctx->metric_procfs);
	if (read_small(path, buf, sizeof(buf)))
		return 0; /* no PSI: as the kernel without CONFIG_PSI */
	total = strstr(buf, "total=");
	if (strncmp(buf, "some", 4) || !total ||
	    sscanf(total + 6, "%" SCNu64, &v) != 1)
		return 0;
	return v;
}

/* The kernel's damos_get_node_mem_bp(): used or free per 10000. */
static uint64_t node_mem_bp(struct dx_ctx *ctx, const struct dx_quota_goal *g)
{
	bool used = g->metric == DX_GOAL_NODE_MEM_USED_BP;
	uint64_t total, free_kb;
	char path[320];

	snprintf(path, sizeof(path), "%s/devices/system/node/node%d/meminfo",
		 ctx->metric_sysfs, g->nid);
	if (g->nid < 0 || read_meminfo(path, &total, &free_kb))
		return used ? 0 : 10000; /* no such node */
	if (!total || total < free_kb)
		return used ? 10000 : 0;
	return mult_frac(used ? total - free_kb : free_kb, 10000, total);
}

/*
 * The memory a cgroup uses on a node: the anon and file pages of its
 * memory.numa_stat (cgroup v2), as the kernel's LRU pages of the memcg.
 */
static uint64_t node_memcg_bp(struct dx_ctx *ctx, const struct dx_quota_goal *g)
{
	bool used = g->metric == DX_GOAL_NODE_MEMCG_USED_BP;
	uint64_t total, free_kb, sz_used = 0;
	char path[600], buf[16384], key[32];
	const char *kinds[] = { "anon ", "file " };
	size_t i;

	snprintf(path, sizeof(path), "%s/devices/system/node/node%d/meminfo",
		 ctx->metric_sysfs, g->nid);
	if (g->nid < 0 || read_meminfo(path, &total, &free_kb))
		return used ? 0 : 10000;
	snprintf(path, sizeof(path), "%s/fs/cgroup/%s/memory.numa_stat",
		 ctx->metric_sysfs, g->memcg_path);
	if (read_small(path, buf, sizeof(buf)))
		return used ? 0 : 10000; /* no such cgroup */
	snprintf(key, sizeof(key), "N%d=", g->nid);
	for (i = 0; i < 2; i++) {
		const char *line = strstr(buf, kinds[i]);
		const char *nl = line ? strchr(line, '\n') : NULL;
		const char *v = line ? strstr(line, key) : NULL;
		uint64_t bytes;

		if (v && (!nl || v < nl) &&
		    sscanf(v + strlen(key), "%" SCNu64, &bytes) == 1)
			sz_used += bytes;
	}
	total *= 1024;
	if (!total || total < sz_used)
		return used ? 10000 : 0;
	return mult_frac(used ? sz_used : total - sz_used, 10000, total);
}

/* Active or inactive LRU memory per 10000 of both (/proc/meminfo). */
static uint64_t in_active_mem_bp(struct dx_ctx *ctx, bool active)
{
	char path[300], buf[16384];
	uint64_t a = 0, i = 0, total;

	snprintf(path, sizeof(path), "%s/meminfo", ctx->metric_procfs);
	if (read_small(path, buf, sizeof(buf)))
		return 0;
	field_u64(buf, "Active", &a);
	field_u64(buf, "Inactive", &i);
	total = a + i ? a + i : 1;
	return mult_frac(active ? a : i, 10000, total);
}

/* The kernel's damos_set_psi_current_val(). */
static void set_psi_value(struct dx_ctx *ctx, struct dx_damos *d, size_t gi)
{
	struct dx_quota_goal *g = &d->goals[gi];
	uint64_t now = some_mem_psi_total(ctx), last = d->last_psi_total[gi];

	d->last_psi_total[gi] = now;
	if (last != UINT64_MAX) {
		g->current_value = now - last;
		return;
	}
	/* the first round: no effect */
	if (d->s.quota.goal_tuner == DX_GOAL_TUNER_CONSIST || !d->esz)
		g->current_value = g->target_value;
	else
		g->current_value = 0;
}

static void set_goal_value(struct dx_ctx *ctx, struct dx_damos *d, size_t gi)
{
	struct dx_quota_goal *g = &d->goals[gi];

	switch (g->metric) {
	case DX_GOAL_SOME_MEM_PSI_US:
		set_psi_value(ctx, d, gi);
		break;
	case DX_GOAL_NODE_MEM_USED_BP:
	case DX_GOAL_NODE_MEM_FREE_BP:
		g->current_value = node_mem_bp(ctx, g);
		break;
	case DX_GOAL_NODE_MEMCG_USED_BP:
	case DX_GOAL_NODE_MEMCG_FREE_BP:
		g->current_value = node_memcg_bp(ctx, g);
		break;
	case DX_GOAL_ACTIVE_MEM_BP:
	case DX_GOAL_INACTIVE_MEM_BP:
		g->current_value = in_active_mem_bp(
			ctx, g->metric == DX_GOAL_ACTIVE_MEM_BP);
		break;
	default: /* user_input: as the user set it */
		break;
	}
}

/* ----------------------------------------------------------------- quota */

/* The highest score of the goals: the least aggressive. */
static uint64_t quota_score(struct dx_ctx *ctx, struct dx_damos *d)
{
	uint64_t highest = 0, score;
	size_t i;

	for (i = 0; i < d->s.nr_goals; i++) {
		set_goal_value(ctx, d, i);
		score = mult_frac(d->goals[i].current_value, 10000,
				  d->goals[i].target_value);
		if (score > highest)
			highest = score;
	}
	return highest;
}

bool dx_damos_quota_is_set(const struct dx_damos *d)
{
	return d->esz || d->s.quota.sz || d->s.quota.ms || d->s.nr_goals;
}

bool dx_damos_quota_is_full(const struct dx_ctx *ctx, const struct dx_damos *d)
{
	if (!dx_damos_quota_is_set(d))
		return false;
	if (d->charged_sz >= d->esz)
		return true;
	/* actions go region by region: less than one region left is full */
	return d->esz - d->charged_sz < ctx->attrs.min_region_sz;
}

/* The kernel's damos_set_effective_quota(). */
static void set_effective_quota(struct dx_ctx *ctx, struct dx_damos *d)
{
	const struct dx_quota *q = &d->s.quota;
	uint64_t esz = UINT64_MAX, throughput, esz_time;

	if (!q->ms && !d->s.nr_goals) {
		d->esz = q->sz;
		return;
	}
	if (d->s.nr_goals) {
		uint64_t score = quota_score(ctx, d);

		if (q->goal_tuner == DX_GOAL_TUNER_CONSIST) {
			d->esz_bp = dx_feed_loop_next_input(
				d->esz_bp > 10000 ? d->esz_bp : 10000, score);
		} else if (score >= 10000) {
			d->esz_bp = 0;
		} else {
			d->esz_bp = q->sz && q->sz <= UINT64_MAX / 10000 ?
					    q->sz * 10000 :
					    UINT64_MAX;
		}
		esz = d->esz_bp / 10000;
	}
	if (q->ms) {
		/* bytes per millisecond of the work done so far */
		if (d->total_charged_ns)
			throughput = mult_frac(d->total_charged_sz, 1000000,
					       d->total_charged_ns);
		else
			throughput = (uint64_t)sysconf(_SC_PAGESIZE) * 1024;
		esz_time = sat_mul(throughput, q->ms);
		if (esz_time < ctx->attrs.min_region_sz)
			esz_time = ctx->attrs.min_region_sz;
		if (esz_time < esz)
			esz = esz_time;
	}
	if (q->sz && q->sz < esz)
		esz = q->sz;
	d->esz = esz;
}

/* The moving sum of accesses, as the kernel's damon_nr_accesses_mvsum(). */
uint32_t dx_damos_mvsum(const struct dx_ctx *ctx, const struct dx_region *r)
{
	uint64_t window = dx_max_nr_accesses(&ctx->attrs), left, left_bp;

	left = ctx->passed_samples >= ctx->next_aggr_sample ?
		       0 :
		       ctx->next_aggr_sample - ctx->passed_samples;
	left_bp = mult_frac(left, 10000, window);
	if (left_bp == 10000)
		return r->last_nr_accesses;
	return (uint32_t)(r->nr_accesses +
			  mult_frac(r->last_nr_accesses, left_bp, 10000));
}

#define MAX_SUBSCORE 100
#define MAX_AGE_IN_LOG 32

/* The kernel's damon_hot_score(): 0 (cold) to DX_DAMOS_MAX_SCORE (hot). */
static int hot_score(const struct dx_ctx *ctx, const struct dx_region *r,
		     const struct dx_damos *d)
{
	uint64_t fw = d->s.quota.weight_nr_accesses, aw = d->s.quota.weight_age;
	uint64_t age_s = (uint64_t)r->age * ctx->attrs.aggr_us / 1000000;
	int64_t freq, age_log = 0, age_sub, hot;

	freq = (int64_t)mult_frac(dx_damos_mvsum(ctx, r), MAX_SUBSCORE,
				  dx_max_nr_accesses(&ctx->attrs));
	if (age_s) {
		age_log = 64 - __builtin_clzll(age_s); /* ilog2() + 1 */
		if (age_log > MAX_AGE_IN_LOG)
			age_log = MAX_AGE_IN_LOG;
	}
	/* when not accessed at all, the older the colder */
	if (!freq)
		age_log = -age_log;
	age_sub =
		(age_log + MAX_AGE_IN_LOG) * MAX_SUBSCORE / MAX_AGE_IN_LOG / 2;
	hot = (int64_t)fw * freq + (int64_t)aw * age_sub;
	if (fw + aw)
		hot /= (int64_t)(fw + aw);
	hot = hot * DX_DAMOS_MAX_SCORE / MAX_SUBSCORE;
	if (hot > DX_DAMOS_MAX_SCORE)
		hot = DX_DAMOS_MAX_SCORE;
	return hot < 0 ? 0 : (int)hot;
}

/*
 * How much a region is worth acting on, as the kernel's operations score
 * it: the coldest first for pageout and migrate_cold, the hottest first
 * for migrate_hot; every region alike for the other actions.
 */
int dx_damos_score(const struct dx_ctx *ctx, const struct dx_region *r,
		   const struct dx_damos *d)
{
	switch (d->s.action) {
	case DX_ACTION_PAGEOUT:
	case DX_ACTION_MIGRATE_COLD:
	case DX_ACTION_LRU_DEPRIO:
		return DX_DAMOS_MAX_SCORE - hot_score(ctx, r, d);
	case DX_ACTION_MIGRATE_HOT:
	case DX_ACTION_LRU_PRIO:
		return hot_score(ctx, r, d);
	default:
		return DX_DAMOS_MAX_SCORE;
	}
}

/* ---------------------------------------------------- charging the quota */

void dx_damos_adjust_quota(struct dx_ctx *ctx, struct dx_damos *d)
{
	uint64_t reset_ns =
		sat_mul(d->s.quota.reset_interval_ms, NSEC_PER_MSEC);
	uint64_t cumulated = 0;
	struct dx_target *t;
	int score, max_score = 0;
	size_t idx;

	if (!dx_damos_quota_is_set(d))
		return;
	/* the first charge window */
	if (!d->charging) {
		d->charging = true;
		d->charged_from_ns = ctx->now_ns;
		set_effective_quota(ctx, d);
	}
	/* a new charge window */
	if (ctx->now_ns < d->charged_from_ns ||
	    ctx->now_ns - d->charged_from_ns >= reset_ns) {
		if (dx_damos_quota_is_full(ctx, d))
			d->stat.qt_exceeds++;
		d->total_charged_sz += d->charged_sz;
		d->charged_from_ns = ctx->now_ns;
		d->charged_sz = 0;
		set_effective_quota(ctx, d);
	}
	/* the lowest score whose regions, with all hotter, fill the quota */
	memset(ctx->score_hist, 0, sizeof(ctx->score_hist));
	dx_for_each_live_target(t, ctx) {
		for (idx = 0; idx < t->nr_regions; idx++) {
			const struct dx_region *r = &t->regions[idx];

			if (!dx_damos_pattern_matches(ctx, r, d))
				continue;
			if (dx_damos_core_filter_out(
				    ctx, (size_t)(t - ctx->targets), idx, d))
				continue;
			r = &t->regions[idx]; /* split, maybe */
			score = dx_damos_score(ctx, r, d);
			ctx->score_hist[score] += r->end - r->start;
			if (score > max_score)
				max_score = score;
		}
	}
	for (score = max_score;; score--) {
		cumulated += ctx->score_hist[score];
		if (cumulated >= d->esz || !score)
			break;
	}
	d->min_score = (uint32_t)score;
}

/*
 * The kernel's damos_skip_charged_region(): once a quota filled up, the
 * next window starts where the last one stopped, not at the first region.
 */
bool dx_damos_skip_charged_region(struct dx_ctx *ctx, size_t ti, size_t idx,
				  struct dx_damos *d)
{
	struct dx_target *t = &ctx->targets[ti];
	uint64_t min_sz = ctx->attrs.min_region_sz, to_skip;
	const struct dx_region *r = &t->regions[idx];
	bool skip = false;

	if (d->charge_target_from != SIZE_MAX) {
		if (ti != d->charge_target_from)
			return true;
		if (d->charge_addr_from && r->end <= d->charge_addr_from) {
			skip = true;
		} else if (d->charge_addr_from &&
			   r->start < d->charge_addr_from) {
			to_skip = ALIGN_DOWN(d->charge_addr_from - r->start,
					     min_sz);
			if (!to_skip) {
				if (r->end - r->start <= min_sz) {
					skip = true;
					goto out;
				}
				to_skip = min_sz;
			}
			dx_split_region_at(t, idx, to_skip);
			skip = true;
		}
	}
out:
	if (idx == t->nr_regions - 1) {
		d->charge_target_from = SIZE_MAX;
		d->charge_addr_from = 0;
	}
	return skip;
}

void dx_damos_charge_quota(struct dx_damos *d, uint64_t sz, uint64_t applied)
{
	const struct dx_quota *q = &d->s.quota;

	/* a failed part is charged at the fail charge ratio, if any */
	if (!q->fail_charge_denom || applied > sz)
		d->charged_sz += sz;
	else
		d->charged_sz += applied + mult_frac(sz - applied,
						     q->fail_charge_num,
						     q->fail_charge_denom);
}

/* ------------------------------------------------------------ watermarks */

/*
 * The kernel's damos_wmark_wait_us(), in ns: 0 when the scheme is active,
 * else how long until its watermarks are checked again.  damonx reads the
 * metric once per interval_us, where the kernel reads it at every sample
 * while the scheme is active.
 */
static uint64_t wmark_wait_ns(struct dx_ctx *ctx, struct dx_damos *d)
{
	const struct dx_wmarks *w = &d->s.wmarks;
	uint64_t interval_ns = sat_mul(w->interval_us, 1000), metric;

	if (w->metric == DX_WMARK_NONE)
		return 0;
	if (ctx->now_ns < d->wmark_next_check_ns)
		return d->stat.activated ? 0 :
					   d->wmark_next_check_ns - ctx->now_ns;
	d->wmark_next_check_ns = ctx->now_ns + interval_ns;
	if (free_mem_rate(ctx, &metric))
		return 0; /* no metric: as the kernel, which always has one */
	if (metric > w->high || w->low > metric) {
		d->stat.activated = false;
		return interval_ns;
	}
	if (w->high >= metric && metric >= w->mid && !d->stat.activated)
		return interval_ns;
	d->stat.activated = true;
	return 0;
}

uint64_t dx_damos_wait_activation(struct dx_ctx *ctx)
{
	uint64_t min_wait = 0, wait;
	struct dx_damos *d;
	bool first = true;

	dx_for_each_scheme(d, ctx) {
		wait = wmark_wait_ns(ctx, d);
		if (first || wait < min_wait)
			min_wait = wait;
		first = false;
	}
	return min_wait;
}
