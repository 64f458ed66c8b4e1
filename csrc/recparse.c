// SPDX-License-Identifier: MIT
/*
 * recparse: the snapshots of damo's JSON records parsed into columns (see
 * recread.h).
 *
 * The parser accepts a snapshot only in the form damo and damonx write:
 * numbers as JSON integers or as strings of digits and thousands
 * separators, nr_accesses in samples and ages in aggregation intervals,
 * unknown keys holding plain JSON.  Everything else makes it stop with
 * DX_RR_SLOW, so that the caller's reader, which knows every form and every
 * error, decides; what this one accepts, that one reads the same way.  A
 * snapshot is parsed from its start each time, so running out of text
 * (DX_RR_MORE) only asks for more and the parse starts over.
 */
#include "recread.h"

#include <errno.h>
#include <string.h>

/* unknown values nested deeper than this are left to the caller */
#define DX_RR_MAX_DEPTH 32

/* what a parsing step ends with */
enum { P_OK, P_MORE, P_SLOW, P_NOMEM };

struct cursor {
	const char *p, *end;
};

/* character classes: JSON whitespace, and what ends a plain string */
#define C_WS 0x1
#define C_STR_END 0x2

static const unsigned char char_class[256] = {
	/* control characters need escapes in strings */
	[0x00 ... 0x08] = C_STR_END,
	['\t'] = C_WS | C_STR_END,
	['\n'] = C_WS | C_STR_END,
	[0x0b ... 0x0c] = C_STR_END,
	['\r'] = C_WS | C_STR_END,
	[0x0e ... 0x1f] = C_STR_END,
	[' '] = C_WS,
	['"'] = C_STR_END,
	['\\'] = C_STR_END,
};

static int skip_ws(struct cursor *c)
{
	while (c->p < c->end) {
		if (!(char_class[(unsigned char)*c->p] & C_WS))
			return P_OK;
		c->p++;
	}
	return P_MORE;
}

/* skip whitespace, then take ch */
static int take(struct cursor *c, char ch)
{
	int err = skip_ws(c);

	if (err)
		return err;
	if (*c->p != ch)
		return P_SLOW;
	c->p++;
	return P_OK;
}

/* a string without escapes or control characters, at its opening quote;
 * *s and *n: its contents */
static int string(struct cursor *c, const char **s, size_t *n)
{
	const char *p = c->p + 1;

	while (p < c->end && !(char_class[(unsigned char)*p] & C_STR_END))
		p++;
	if (p == c->end)
		return P_MORE;
	if (*p != '"')
		return P_SLOW; /* an escape or a control character */
	*s = c->p + 1;
	*n = p - *s;
	c->p = p + 1;
	return P_OK;
}

static int literal(struct cursor *c, const char *word)
{
	size_t n = strlen(word), avail = c->end - c->p;

	if (avail < n)
		return memcmp(c->p, word, avail) ? P_SLOW : P_MORE;
	if (memcmp(c->p, word, n))
		return P_SLOW;
	c->p += n;
	return P_OK;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

/* digits, at least one */
static int digits(struct cursor *c)
{
	if (c->p == c->end)
		return P_MORE;
	if (!is_digit(*c->p))
		return P_SLOW;
	while (c->p < c->end && is_digit(*c->p))
		c->p++;
	/* a number at the end of the text may go on */
	return c->p == c->end ? P_MORE : P_OK;
}

/* a JSON number, by its grammar */
static int number(struct cursor *c)
{
	int err;

	if (*c->p == '-')
		c->p++;
	if (c->p == c->end)
		return P_MORE;
	if (*c->p == '0')
		c->p++;
	else if ((err = digits(c)) != P_OK)
		return err;
	if (c->p == c->end)
		return P_MORE;
	if (*c->p == '.') {
		c->p++;
		if ((err = digits(c)) != P_OK)
			return err;
	}
	if (*c->p == 'e' || *c->p == 'E') {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if ((err = digits(c)) != P_OK)
			return err;
	}
	return P_OK;
}

static int value(struct cursor *c, int depth);

/* the opening bracket of an array or object; *done if it closes at once */
static int open_items(struct cursor *c, char open, bool *done)
{
	int err;

	if (*c->p != open)
		return P_SLOW;
	c->p++;
	if ((err = skip_ws(c)) != P_OK)
		return err;
	*done = *c->p == (open == '{' ? '}' : ']');
	if (*done)
		c->p++;
	return P_OK;
}

/* after an element or a member: the ',' and the whitespace before the
 * next one, or the closing bracket (*done) */
static int next_item(struct cursor *c, char close, bool *done)
{
	int err = skip_ws(c);

	if (err)
		return err;
	*done = *c->p == close;
	if (*c->p != ',' && !*done)
		return P_SLOW;
	c->p++;
	return *done ? P_OK : skip_ws(c);
}

/* an array or an object (open: its bracket), skipped */
static int items(struct cursor *c, int depth, char open)
{
	char close = open == '{' ? '}' : ']';
	const char *s;
	bool done;
	size_t n;
	int err;

	if ((err = open_items(c, open, &done)) != P_OK)
		return err;
	while (!done) {
		if (open == '{') {
			if (*c->p != '"')
				return P_SLOW;
			if ((err = string(c, &s, &n)) != P_OK ||
			    (err = take(c, ':')) != P_OK ||
			    (err = skip_ws(c)) != P_OK)
				return err;
		}
		if ((err = value(c, depth + 1)) != P_OK ||
		    (err = next_item(c, close, &done)) != P_OK)
			return err;
	}
	return P_OK;
}

/* any JSON value (its first character is there), skipped */
static int value(struct cursor *c, int depth)
{
	const char *s;
	size_t n;

	if (depth > DX_RR_MAX_DEPTH)
		return P_SLOW;
	switch (*c->p) {
	case '"':
		return string(c, &s, &n);
	case '{':
	case '[':
		return items(c, depth, *c->p);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	default:
		if (*c->p == '-' || is_digit(*c->p))
			return number(c);
		return P_SLOW;
	}
}

/* append digit d to *v; false if the value would pass max */
static bool add_digit(uint64_t *v, unsigned int d, uint64_t max)
{
	if (__builtin_mul_overflow(*v, 10, v) ||
	    __builtin_add_overflow(*v, d, v))
		return false;
	return *v <= max;
}

/*
 * An unsigned integer of at most max: a JSON integer, or a string of
 * digits and commas (damo's '4,096'), which reads as its digits.
 */
static int uint_value(struct cursor *c, uint64_t max, uint64_t *out)
{
	const char *p = c->p;
	size_t nr_digits = 0;
	uint64_t v = 0;

	if (*p == '"') {
		for (p++; p < c->end; p++) {
			unsigned int d = (unsigned char)*p - '0';

			if (*p == '"') {
				if (!nr_digits)
					return P_SLOW;
				c->p = p + 1;
				*out = v;
				return P_OK;
			}
			if (*p == ',')
				continue;
			if (d > 9 || !add_digit(&v, d, max))
				return P_SLOW; /* not digits, or out of range */
			nr_digits++;
		}
		return P_MORE;
	}
	if (*p == '0') {
		/* JSON has no leading zeros: what follows is the caller's */
		c->p = p + 1;
		*out = 0;
		return P_OK;
	}
	for (; p < c->end; p++) {
		unsigned int d = (unsigned char)*p - '0';

		if (d > 9)
			break;
		/* 19 digits always fit in 64 bits */
		if (++nr_digits < 20)
			v = v * 10 + d;
		else if (!add_digit(&v, d, UINT64_MAX))
			return P_SLOW;
	}
	if (!nr_digits || v > max)
		return P_SLOW; /* out of range: the caller says so */
	if (p == c->end)
		return P_MORE; /* the number may go on */
	c->p = p;
	*out = v;
	return P_OK;
}

/* the keys the parser knows, in a bitmask of the ones an object had */
enum key {
	K_OTHER = 0,
	/* snapshot */
	K_START_TIME,
	K_END_TIME,
	K_REGIONS,
	K_SAMPLE, /* the order of DX_RR_EXTRA_*, from here */
	K_CHECKS,
	K_STATS,
	K_STATS_LIST,
	/* region */
	K_START,
	K_END,
	K_NR_ACCESSES,
	K_AGE,
	/* nr_accesses and age, each in the order damo writes them */
	K_SAMPLES,
	K_PERCENT,
	K_USEC,
	K_AGGR_INTERVALS,
};

#define KEY(k, name) [k] = { name, sizeof(name) - 1 }

static const struct {
	const char *name;
	size_t len;
} keys[] = {
	KEY(K_START_TIME, "start_time"),
	KEY(K_END_TIME, "end_time"),
	KEY(K_REGIONS, "regions"),
	KEY(K_SAMPLE, "sample_interval_us"),
	KEY(K_CHECKS, "damonx_nr_checks"),
	KEY(K_STATS, "damos_stats"),
	KEY(K_STATS_LIST, "damonx_damos_stats"),
	KEY(K_START, "start"),
	KEY(K_END, "end"),
	KEY(K_NR_ACCESSES, "nr_accesses"),
	KEY(K_AGE, "age"),
	KEY(K_SAMPLES, "samples"),
	KEY(K_PERCENT, "percent"),
	KEY(K_USEC, "usec"),
	KEY(K_AGGR_INTERVALS, "aggr_intervals"),
};

/*
 * The key at c (a string), of those from first to last, and the ':' after
 * it; *seen collects them, and a key seen twice is left to the caller (the
 * last one would count).  *next is the key expected (damo's order, which
 * is the order of enum key): tried first, then set to the one after.
 * Leaves c at the value.
 */
static int key(struct cursor *c, enum key first, enum key last, enum key *next,
	       unsigned int *seen, enum key *k)
{
	size_t n = keys[*next].len;
	const char *s;
	unsigned int i;
	int err;

	if (*c->p != '"')
		return P_SLOW;
	*k = K_OTHER;
	if (*next && (size_t)(c->end - c->p) > n + 1 && c->p[n + 1] == '"' &&
	    !memcmp(c->p + 1, keys[*next].name, n)) {
		c->p += n + 2;
		*k = *next;
	} else {
		if ((err = string(c, &s, &n)) != P_OK)
			return err;
		for (i = first; i <= last && !*k; i++) {
			if (keys[i].len == n && !memcmp(keys[i].name, s, n))
				*k = i;
		}
	}
	if ((err = take(c, ':')) != P_OK || (err = skip_ws(c)) != P_OK)
		return err;
	if (*k) {
		if (*seen & (1u << *k))
			return P_SLOW;
		*seen |= 1u << *k;
	}
	*next = *k && *k < last ? *k + 1 : K_OTHER;
	return P_OK;
}

/*
 * nr_accesses or age: null, a count, or an object with the count under
 * main (samples, aggr_intervals) or another unit under alt (percent, usec),
 * which needs the record's intervals: the caller converts those.
 */
static int counter(struct cursor *c, enum key main, enum key alt, uint32_t *out)
{
	enum key first = main < alt ? main : alt, last = main ^ alt ^ first;
	bool done, has_main = false, has_alt = false;
	enum key k, next = first;
	unsigned int seen = 0;
	uint64_t v = 0;
	int err;

	*out = 0;
	if (*c->p == 'n')
		return literal(c, "null");
	if (*c->p != '{') {
		err = uint_value(c, UINT32_MAX, &v);
		*out = v;
		return err;
	}
	if ((err = open_items(c, '{', &done)) != P_OK)
		return err;
	while (!done) {
		if ((err = key(c, first, last, &next, &seen, &k)) != P_OK)
			return err;
		if (k != K_OTHER && *c->p == 'n') {
			err = literal(c, "null");
		} else if (k == main) {
			err = uint_value(c, UINT32_MAX, &v);
			has_main = true;
		} else {
			err = value(c, 2);
			has_alt |= k == alt;
		}
		if (err || (err = next_item(c, '}', &done)) != P_OK)
			return err;
	}
	if (!has_main && has_alt)
		return P_SLOW;
	*out = v;
	return P_OK;
}

static int region(struct cursor *c, struct dx_rr_region *r)
{
	const unsigned int need = 1u << K_START | 1u << K_END;
	enum key k, next = K_START;
	unsigned int seen = 0;
	bool done;
	int err;

	memset(r, 0, sizeof(*r));
	if ((err = open_items(c, '{', &done)) != P_OK)
		return err;
	while (!done) {
		if ((err = key(c, K_START, K_AGE, &next, &seen, &k)) != P_OK)
			return err;
		switch (k) {
		case K_START:
			err = uint_value(c, UINT64_MAX, &r->start);
			break;
		case K_END:
			err = uint_value(c, UINT64_MAX, &r->end);
			break;
		case K_NR_ACCESSES:
			err = counter(c, K_SAMPLES, K_PERCENT, &r->nr_accesses);
			break;
		case K_AGE:
			err = counter(c, K_AGGR_INTERVALS, K_USEC, &r->age);
			break;
		default:
			err = value(c, 2);
		}
		if (err || (err = next_item(c, '}', &done)) != P_OK)
			return err;
	}
	if ((seen & need) != need || r->end < r->start)
		return P_SLOW;
	return P_OK;
}

/* the regions list, into the pending ones of t */
static int regions(struct dx_rr_target *t, struct cursor *c, size_t *nr)
{
	struct dx_rr_region *r;
	bool done;
	int err;

	*nr = 0;
	if ((err = open_items(c, '[', &done)) != P_OK)
		return err;
	while (!done) {
		r = dx_rr_pending(t, *nr + 1);
		if (!r)
			return P_NOMEM;
		if ((err = region(c, &r[*nr])) != P_OK ||
		    (err = next_item(c, ']', &done)) != P_OK)
			return err;
		(*nr)++;
	}
	return P_OK;
}

/*
 * One snapshot, at its first character, into t's pending snapshot.
 * *stats: it has scheme statistics, which the caller converts.
 */
static int snapshot(struct dx_rr_target *t, struct cursor *c, const char *text,
		    struct dx_rr_result *r, bool *stats)
{
	const unsigned int need = 1u << K_START_TIME | 1u << K_END_TIME |
				  1u << K_REGIONS;
	struct dx_rr_snap *s = &t->pending;
	enum key k, next = K_START_TIME;
	unsigned int seen = 0;
	const char *from;
	bool done;
	int err;

	memset(s, 0, sizeof(*s));
	r->has_extra = 0;
	*stats = false;
	if ((err = open_items(c, '{', &done)) != P_OK)
		return err;
	while (!done) {
		if ((err = key(c, K_START_TIME, K_STATS_LIST, &next, &seen,
			       &k)) != P_OK)
			return err;
		from = c->p;
		if (k >= K_SAMPLE && *c->p == 'n') {
			err = literal(c, "null");
		} else if (k == K_START_TIME) {
			err = uint_value(c, UINT64_MAX, &s->start_ns);
		} else if (k == K_END_TIME) {
			err = uint_value(c, UINT64_MAX, &s->end_ns);
		} else if (k == K_REGIONS) {
			err = regions(t, c, &s->nr_regions);
		} else if (k == K_SAMPLE) {
			err = uint_value(c, UINT64_MAX, &s->sample_us);
			s->flags |= DX_RR_HAS_SAMPLE;
		} else if (k == K_CHECKS) {
			err = uint_value(c, UINT64_MAX, &s->nr_checks);
			s->flags |= DX_RR_HAS_CHECKS;
		} else {
			err = value(c, 1);
			*stats |= k == K_STATS || k == K_STATS_LIST;
		}
		if (err)
			return err;
		if (k >= K_SAMPLE) {
			r->extra[k - K_SAMPLE][0] = from - text;
			r->extra[k - K_SAMPLE][1] = c->p - text;
			r->has_extra |= 1u << (k - K_SAMPLE);
		}
		if ((err = next_item(c, '}', &done)) != P_OK)
			return err;
	}
	return (seen & need) == need ? P_OK : P_SLOW;
}

int dx_rr_parse(struct dx_rr_target *t, const char *text, size_t len,
		size_t pos, struct dx_rr_result *r)
{
	struct cursor c = { text + pos, text + len };
	bool stats;
	int err;

	r->last_end = 0;
	r->nr_committed = 0;
	for (;;) {
		r->pos = c.p - text;
		err = skip_ws(&c);
		r->start = c.p - text;
		if (err == P_OK)
			err = snapshot(t, &c, text, r, &stats);
		if (err == P_NOMEM)
			return -ENOMEM;
		if (err == P_MORE)
			return DX_RR_MORE;
		if (err == P_SLOW)
			return DX_RR_SLOW;
		if (stats) {
			r->snap_end = c.p - text;
			return DX_RR_EXTRAS;
		}
		err = dx_rr_commit(t, &t->pending);
		if (err < 0)
			return err;
		r->last_end = c.p - text;
		r->nr_committed++;
		if (skip_ws(&c) != P_OK || (*c.p != ',' && *c.p != ']')) {
			r->pos = r->last_end;
			return DX_RR_NEXT;
		}
		if (*c.p++ == ']') {
			r->pos = c.p - text;
			return DX_RR_END;
		}
	}
}
