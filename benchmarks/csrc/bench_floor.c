// SPDX-License-Identifier: MIT
#define _GNU_SOURCE
#include "bench_floor.h"
#include "clock.h"
#include "ops-common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static uint64_t thread_ns(void)
{
	return dx_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int dx_bench_floor(int pid, const char *procfs, const char *sysfs,
		   const uint64_t *starts, const uint64_t *ends,
		   size_t nr_regions, uint32_t nr_samples, uint64_t sample_us,
		   uint64_t seed, struct dx_floor_result *out)
{
	const uint64_t page = 4096;
	uint64_t *pfns, t0;
	int pagemap, kpf, bitmap, err = 0;
	struct timespec nap = dx_ns_to_timespec(sample_us * 1000);
	char path[300];
	uint32_t s;
	size_t i;

	if (!nr_regions)
		return -EINVAL;
	for (i = 0; i < nr_regions; i++)
		if (ends[i] < starts[i] + page)
			return -EINVAL;
	seed = seed ? seed : 1;
	snprintf(path, sizeof(path), "%s/%d/pagemap", procfs, pid);
	pagemap = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "%s/kpageflags", procfs);
	kpf = open(path, O_RDONLY);
	snprintf(path, sizeof(path), "%s/kernel/mm/page_idle/bitmap", sysfs);
	bitmap = open(path, O_RDWR);
	pfns = calloc(nr_regions, sizeof(*pfns));
	if (pagemap < 0 || kpf < 0 || bitmap < 0 || !pfns) {
		err = pfns ? -errno : -ENOMEM;
		goto out;
	}
	*out = (struct dx_floor_result){ 0 };
	for (s = 0; s < nr_samples; s++) {
		t0 = thread_ns();
		for (i = 0; i < nr_regions; i++) {
			uint64_t addr = starts[i] +
					xorshift(&seed) % (ends[i] - starts[i]);
			uint64_t entry = 0, flags = 0, bit;

			pfns[i] = 0;
			if (pread(pagemap, &entry, 8,
				  (off_t)(addr / page * 8)) != 8 ||
			    !(entry & PM_PRESENT) || !(entry & PM_PFN_MASK))
				continue;
			pfns[i] = entry & PM_PFN_MASK;
			if (pread(kpf, &flags, 8, (off_t)(pfns[i] * 8)) != 8)
				flags = 0;
			bit = 1ULL << (pfns[i] % 64);
			if (pwrite(bitmap, &bit, 8,
				   (off_t)(pfns[i] / 64 * 8)) != 8)
				pfns[i] = 0;
		}
		out->cpu_ns += thread_ns() - t0;
		nanosleep(&nap, NULL);
		t0 = thread_ns();
		for (i = 0; i < nr_regions; i++) {
			uint64_t word = 0;

			out->nr_checks++;
			if (!pfns[i]) {
				out->nr_absent++;
				continue;
			}
			if (pread(bitmap, &word, 8,
				  (off_t)(pfns[i] / 64 * 8)) == 8 &&
			    !(word >> (pfns[i] % 64) & 1))
				out->nr_accessed++;
		}
		out->cpu_ns += thread_ns() - t0;
	}
out:
	if (pagemap >= 0)
		close(pagemap);
	if (kpf >= 0)
		close(kpf);
	if (bitmap >= 0)
		close(bitmap);
	free(pfns);
	return err;
}
