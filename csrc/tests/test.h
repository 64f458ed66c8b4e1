/* SPDX-License-Identifier: MIT */
/*
 * A small test harness for the C unit tests, in the spirit of the kernel's
 * kunit: EXPECT() records a failure and goes on; RUN() names the test that
 * failures are reported under; test_report() prints the totals and gives
 * the exit status.
 */
#ifndef DAMONX_TEST_H
#define DAMONX_TEST_H

#include <stdio.h>

static int nr_failed, nr_checks;
static const char *cur_test;

#define EXPECT(cond)                                                      \
	do {                                                              \
		nr_checks++;                                              \
		if (!(cond)) {                                            \
			nr_failed++;                                      \
			fprintf(stderr, "FAIL %s:%d: %s: %s\n", __FILE__, \
				__LINE__, cur_test, #cond);               \
		}                                                         \
	} while (0)

#define EXPECT_EQ(a, b)                                                                    \
	do {                                                                               \
		unsigned long long _a = (unsigned long long)(a);                           \
		unsigned long long _b = (unsigned long long)(b);                           \
		nr_checks++;                                                               \
		if (_a != _b) {                                                            \
			nr_failed++;                                                       \
			fprintf(stderr,                                                    \
				"FAIL %s:%d: %s: %s == %llu (%#llx), want %llu (%#llx)\n", \
				__FILE__, __LINE__, cur_test, #a, _a, _a, _b,              \
				_b);                                                       \
		}                                                                          \
	} while (0)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define RUN(fn)                 \
	do {                    \
		cur_test = #fn; \
		fn();           \
	} while (0)

static inline int test_report(void)
{
	printf("%d checks, %d failed\n", nr_checks, nr_failed);
	return nr_failed ? 1 : 0;
}

#endif /* DAMONX_TEST_H */
