"""A pure-Python reference of the damonx monitoring loop, for benchmarks.

Regions are plain Python objects in a list; the loop, the simulated access
checks and the regions adjustment follow csrc/core.c, csrc/regions.c and csrc/sim.c
rule for rule (the same integer arithmetic, the same random draws per
region, the same merge and split rules), written the way one would write
them in Python without tuning for speed nor against it.  One target, the
sim backend on a virtual clock, no schemes.

    from damonx import Attrs, Workload
    mon = PyMonitor(Workload.hot_cold(1 << 30, 128 << 20, 256 << 20), Attrs())
    mon.run(20)
    regions = mon.snapshot_array()   # numpy array of damonx.REGION_DTYPE
"""

import bisect
import random

import numpy as np

from damonx.dtypes import REGION_DTYPE

U32 = 0xFFFFFFFF


def align_down(x, a):
    return x & ~(a - 1)


def align_up(x, a):
    return align_down(x + a - 1, a)


class Region:
    __slots__ = (
        "start",
        "end",
        "sampling_addr",
        "nr_accesses",
        "nr_accesses_bp",
        "last_nr_accesses",
        "age",
    )

    def __init__(self, start, end):
        self.start = start
        self.end = end
        self.sampling_addr = 0
        self.nr_accesses = 0
        self.nr_accesses_bp = 0
        self.last_nr_accesses = 0
        self.age = 0

    def copy(self):
        r = Region(self.start, self.end)
        r.nr_accesses = self.nr_accesses
        r.nr_accesses_bp = self.nr_accesses_bp
        r.last_nr_accesses = self.last_nr_accesses
        r.age = self.age
        return r


def merge_into(left, right):
    """Fold right into its left neighbour (size-weighted averages)."""
    sz_l = left.end - left.start
    sz_r = right.end - right.start
    left.nr_accesses = (left.nr_accesses * sz_l + right.nr_accesses * sz_r) // (sz_l + sz_r)
    left.nr_accesses_bp = left.nr_accesses * 10000
    left.age = (left.age * sz_l + right.age * sz_r) // (sz_l + sz_r)
    left.end = right.end


def merge_regions_of(regions, threshold, sz_limit, count_age):
    """One merge pass (dx_merge_regions_of); returns the new list."""
    kept = []
    for r in regions:
        if count_age:
            if abs(r.nr_accesses - r.last_nr_accesses) > threshold:
                r.age = 0
            else:
                r.age += 1
        if kept:
            prev = kept[-1]
            if (
                prev.end == r.start
                and abs(prev.nr_accesses - r.nr_accesses) <= threshold
                and (prev.end - prev.start) + (r.end - r.start) <= sz_limit
            ):
                merge_into(prev, r)
                continue
        kept.append(r)
    return kept


def merge_regions(regions, threshold, sz_limit, max_nr_regions, max_thres):
    """dx_merge_regions for one target: repeat with a doubled threshold while
    more than max_nr_regions remain."""
    count_age = True
    while True:
        regions = merge_regions_of(regions, threshold, sz_limit, count_age)
        count_age = False
        if len(regions) <= max_nr_regions or max_thres <= threshold:
            return regions
        if threshold < max_thres // 2:
            threshold = threshold * 2 if threshold else 1
        else:
            threshold = max_thres


def split_regions_of(regions, nr_subs, min_sz, rng):
    """Split every region into nr_subs pieces at random points between 10%
    and 90% of what is left of it (dx_split_regions_of)."""
    out = []
    randrange = rng.randrange
    for r in regions:
        sz_left = r.end - r.start
        cuts = []
        k = 0
        while k < nr_subs - 1 and sz_left > 2 * min_sz:
            sz_sub = align_down(randrange(1, 10) * sz_left // 10, min_sz)
            k += 1
            if not sz_sub or sz_sub >= sz_left:
                continue
            cuts.append(r.start + sz_sub)
            sz_left = sz_sub
        if not cuts:
            out.append(r)
            continue
        end = r.end
        r.end = cuts[-1]
        out.append(r)
        for i in range(len(cuts) - 1, -1, -1):
            piece = r.copy()
            piece.start = cuts[i]
            piece.end = cuts[i - 1] if i else end
            out.append(piece)
    return out


class Adjuster:
    """The end-of-aggregation adjustment state of one target: split needs to
    know the region count at the last split (dx_split_regions)."""

    def __init__(self, attrs):
        self.attrs = attrs
        self.max_thres = attrs.aggr_us // attrs.sample_us
        self.last_nr_regions = 0

    def merge(self, regions, threshold, sz_limit):
        return merge_regions(
            regions, threshold, sz_limit, self.attrs.max_nr_regions, self.max_thres
        )

    def split(self, regions, rng):
        nr = len(regions)
        max_nr = self.attrs.max_nr_regions
        if nr > max_nr // 2:
            return regions
        nr_subs = 3 if self.last_nr_regions == nr and nr < max_nr // 3 else 2
        regions = split_regions_of(regions, nr_subs, self.attrs.min_region_sz, rng)
        self.last_nr_regions = nr
        return regions


class _SimPhase:
    def __init__(self, end_us, ranges):
        self.end_us = end_us
        self.starts = [r.start for r in ranges]
        self.ranges = [(r.start, r.end, int(r.probability * 4294967296.0)) for r in ranges]


class PyMonitor:
    """One target of the sim backend, monitored in pure Python."""

    def __init__(self, workload, attrs, seed=0):
        self.attrs = attrs
        self.wl = workload
        self.rng = random.Random(seed)
        self.adjuster = Adjuster(attrs)
        self.phases = []
        end_us = 0
        for ph in workload.phases:
            end_us += ph.duration_us
            self.phases.append(_SimPhase(end_us, ph.ranges))
        self.regions = self._init_regions(0, workload.size)
        self.passed_samples = 0
        self.aggr_samples = max(attrs.aggr_us // attrs.sample_us, 1)
        self.update_samples = max(attrs.ops_update_us // attrs.sample_us, 1)
        self.next_aggr_sample = self.aggr_samples
        self.next_update_sample = self.update_samples
        self.max_nr_accesses = 0
        self.sz_limit = self._sz_limit()
        self.snapshot = []  # [(start, end, nr_accesses, age)] of the last aggregation
        self.snap_end_us = 0
        self.nr_samples = 0
        self.nr_region_checks = 0
        self.nr_aggregations = 0

    # -- regions ---------------------------------------------------------
    def _init_regions(self, start, end):
        """dx_init_regions for one range: pieces of total / min_nr_regions."""
        min_sz = self.attrs.min_region_sz
        sz = max((end - start) // self.attrs.min_nr_regions, min_sz)
        start, end = align_down(start, min_sz), align_up(end, min_sz)
        nr_pieces = (end - start) // sz
        if nr_pieces <= 1:
            return [Region(start, end)]
        sz_piece = align_down((end - start) // nr_pieces, min_sz)
        regions = [
            Region(start + i * sz_piece, start + (i + 1) * sz_piece) for i in range(nr_pieces)
        ]
        regions[-1].end = end
        return regions

    def _sz_limit(self):
        sz = sum(r.end - r.start for r in self.regions) // self.attrs.min_nr_regions
        return max(sz, self.attrs.min_region_sz)

    # -- the loop --------------------------------------------------------
    def _phase_at(self, t_us):
        for ph in self.phases[:-1]:
            if t_us < ph.end_us:
                return ph
        return self.phases[-1]

    def _pick_sampling_addrs(self):
        randrange = self.rng.randrange
        for r in self.regions:
            r.sampling_addr = randrange(r.start, r.end)

    def _check_accesses(self, t_us):
        """sim.c's check: a page in a range is accessed when a 32-bit
        draw is below the range's threshold; then dx_region_account()."""
        ph = self._phase_at(t_us)
        starts, ranges = ph.starts, ph.ranges
        page_size = self.wl.page_size
        getrandbits = self.rng.getrandbits
        len_window = self.aggr_samples
        max_nr = 0
        for r in self.regions:
            page = r.sampling_addr - r.sampling_addr % page_size
            accessed = False
            i = bisect.bisect_right(starts, page) - 1
            if i >= 0:
                start, end, threshold = ranges[i]
                accessed = page < end and getrandbits(32) < threshold
            r.nr_accesses_bp = (
                r.nr_accesses_bp
                - r.last_nr_accesses * 10000 // len_window
                + (10000 if accessed else 0)
            ) & U32
            if accessed:
                r.nr_accesses += 1
            if r.nr_accesses > max_nr:
                max_nr = r.nr_accesses
        return max_nr

    def _aggregate(self):
        self.regions = self.adjuster.merge(self.regions, self.max_nr_accesses // 10, self.sz_limit)
        self.snapshot = [(r.start, r.end, r.nr_accesses, r.age) for r in self.regions]
        self.snap_end_us = self.passed_samples * self.attrs.sample_us
        for r in self.regions:
            r.last_nr_accesses = r.nr_accesses
            r.nr_accesses = 0
        self.regions = self.adjuster.split(self.regions, self.rng)
        self.next_aggr_sample += self.aggr_samples
        self.nr_aggregations += 1

    def run(self, nr_aggregations):
        """Run nr_aggregations aggregation intervals of simulated time."""
        sample_us = self.attrs.sample_us
        for _ in range(nr_aggregations):
            while True:
                self._pick_sampling_addrs()
                # the accesses happened during the sampling interval that ends now
                t_us = self.passed_samples * sample_us
                self.passed_samples += 1
                self.nr_samples += 1
                self.nr_region_checks += len(self.regions)
                self.max_nr_accesses = self._check_accesses(t_us)
                aggregated = self.passed_samples >= self.next_aggr_sample
                if aggregated:
                    self._aggregate()
                if self.passed_samples >= self.next_update_sample:
                    self.next_update_sample += self.update_samples
                    self.sz_limit = self._sz_limit()
                if aggregated:
                    break
        return nr_aggregations

    def stats(self):
        return dict(
            nr_samples=self.nr_samples,
            nr_region_checks=self.nr_region_checks,
            nr_aggregations=self.nr_aggregations,
        )

    def snapshot_array(self):
        """The last aggregation's regions as a numpy array of REGION_DTYPE."""
        return np.array(self.snapshot, dtype=REGION_DTYPE)
