"""Simulated workloads: address spaces whose pages are accessed with known
probabilities, so that what the monitor finds can be checked exactly.

A workload is described in JSON (or the same structure in Python)::

    {"size": 1073741824, "page_size": 4096,
     "phases": [{"duration_us": 10000000,
                 "ranges": [{"start": 134217728, "end": 268435456,
                             "probability": 0.9}]}]}

Each phase lasts ``duration_us`` of simulated time and the last one repeats.
In each sampling interval each page of a listed range is accessed with that
probability; every other page is not accessed.  A range may give
``"rate_hz"`` instead: each of its pages is then accessed that many times a
second at random moments (a Poisson process), so that a sampling interval of
s seconds finds it accessed with probability 1 - exp(-rate_hz * s): longer
intervals find more, as with real programs.
"""

import json
import math
from dataclasses import dataclass, field

import numpy as np

from damonx.errors import FileNotFound, InvalidAttrs, translated


@dataclass(frozen=True)
class Range:
    start: int
    end: int
    #: per sampling interval, when rate_hz is 0
    probability: float
    #: accesses per second of each page; 0 to use the probability
    rate_hz: float = 0.0

    def access_probability(self, sample_us):
        """The probability that a sampling interval of sample_us finds a page
        of the range accessed."""
        if self.rate_hz > 0:
            return -math.expm1(-self.rate_hz * sample_us / 1e6)
        return self.probability


@dataclass(frozen=True)
class Phase:
    duration_us: int
    ranges: tuple = ()


@dataclass(frozen=True)
class Workload:
    """A validated simulated workload."""

    size: int
    page_size: int = 4096
    phases: tuple = field(default_factory=tuple)

    @classmethod
    def from_dict(cls, spec):
        if not isinstance(spec, dict):
            raise InvalidAttrs("a workload is a JSON object with size, page_size and phases")
        unknown = set(spec) - {"size", "page_size", "phases", "name", "description"}
        if unknown:
            raise InvalidAttrs(f"unknown workload keys: {', '.join(sorted(unknown))}")
        try:
            size = _int(spec["size"], "size")
            page_size = _int(spec.get("page_size", 4096), "page_size")
            phases_in = spec["phases"]
        except KeyError as err:
            raise InvalidAttrs(f"workload lacks {err.args[0]!r}") from None
        if not isinstance(phases_in, list) or not phases_in:
            raise InvalidAttrs("workload phases must be a non-empty list")
        phases = []
        for i, ph in enumerate(phases_in):
            where = f"phases[{i}]"
            if not isinstance(ph, dict) or "duration_us" not in ph:
                raise InvalidAttrs(f"{where} needs duration_us")
            ranges = []
            for j, r in enumerate(ph.get("ranges", [])):
                try:
                    if ("probability" in r) == ("rate_hz" in r):
                        raise KeyError("probability or rate_hz, not both")
                    rng = Range(
                        _int(r["start"], f"{where}.ranges[{j}].start"),
                        _int(r["end"], f"{where}.ranges[{j}].end"),
                        float(r.get("probability", 0.0)),
                        float(r.get("rate_hz", 0.0)),
                    )
                except (KeyError, TypeError, ValueError) as err:
                    raise InvalidAttrs(
                        f"{where}.ranges[{j}] needs integer start, end and a probability "
                        f"or a rate_hz: {err}"
                    ) from None
                ranges.append(rng)
            ranges.sort(key=lambda r: r.start)
            phases.append(Phase(_int(ph["duration_us"], f"{where}.duration_us"), tuple(ranges)))
        wl = cls(size, page_size, tuple(phases))
        wl.validate()
        return wl

    @classmethod
    def load(cls, path):
        """The workload in the JSON file at path (FileNotFound if there is none)."""
        try:
            with translated(f"cannot read workload {path}", missing=FileNotFound), open(path) as f:
                spec = json.load(f)
        except json.JSONDecodeError as err:
            raise InvalidAttrs(f"{path}: not valid JSON: {err}") from None
        except UnicodeDecodeError as err:
            raise InvalidAttrs(f"{path}: not a text file: {err}") from None
        return cls.from_dict(spec)

    @classmethod
    def hot_cold(
        cls, size, hot_start, hot_end, probability=0.9, page_size=4096, duration_us=10_000_000
    ):
        """One phase: [hot_start, hot_end) accessed with probability, rest idle."""
        return cls.from_dict(
            {
                "size": size,
                "page_size": page_size,
                "phases": [
                    {
                        "duration_us": duration_us,
                        "ranges": [
                            {"start": hot_start, "end": hot_end, "probability": probability}
                        ],
                    }
                ],
            }
        )

    def validate(self):
        ps = self.page_size
        if ps <= 0 or ps & (ps - 1):
            raise InvalidAttrs(f"page_size {ps} is not a power of two")
        if self.size <= 0 or self.size % ps:
            raise InvalidAttrs(f"size {self.size} is not a positive multiple of page_size")
        for i, ph in enumerate(self.phases):
            if ph.duration_us <= 0:
                raise InvalidAttrs(f"phases[{i}].duration_us must be positive")
            prev_end = 0
            for j, r in enumerate(ph.ranges):
                where = f"phases[{i}].ranges[{j}]"
                if not 0 <= r.start < r.end <= self.size:
                    raise InvalidAttrs(
                        f"{where} [{r.start}, {r.end}) is not inside [0, {self.size})"
                    )
                if r.start < prev_end:
                    raise InvalidAttrs(f"{where} overlaps the range before it")
                if not 0.0 <= r.probability <= 1.0:
                    raise InvalidAttrs(f"{where} probability {r.probability} is not in [0, 1]")
                if not (r.rate_hz >= 0.0 and math.isfinite(r.rate_hz)):
                    raise InvalidAttrs(f"{where} rate_hz {r.rate_hz} is not a finite rate >= 0")
                prev_end = r.end

    def to_dict(self):
        return {
            "size": self.size,
            "page_size": self.page_size,
            "phases": [
                {
                    "duration_us": ph.duration_us,
                    "ranges": [
                        {"start": r.start, "end": r.end}
                        | (
                            {"rate_hz": r.rate_hz}
                            if r.rate_hz > 0
                            else {"probability": r.probability}
                        )
                        for r in ph.ranges
                    ],
                }
                for ph in self.phases
            ],
        }

    def phase_at(self, t_us):
        """The phase in force at simulated time t_us (the last one repeats)."""
        end = 0
        for ph in self.phases:
            end += ph.duration_us
            if t_us < end:
                return ph
        return self.phases[-1]

    def hot_ranges(self, t_us, min_probability=0.0, sample_us=5000):
        """Ranges accessed with more than min_probability per sampling
        interval of sample_us at time t_us."""
        return [
            (r.start, r.end)
            for r in self.phase_at(t_us).ranges
            if r.access_probability(sample_us) > min_probability
        ]


def _int(value, what):
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidAttrs(f"{what} must be an integer, not {value!r}")
    return value


def overlap_bytes(regions, ranges):
    """Bytes of regions (REGION_DTYPE array) that fall inside ranges."""
    total = 0
    starts = regions["start"].astype(np.int64)
    ends = regions["end"].astype(np.int64)
    for lo, hi in ranges:
        total += int(np.clip(np.minimum(ends, hi) - np.maximum(starts, lo), 0, None).sum())
    return total


def precision_recall(regions, hot_ranges, min_nr_accesses=1):
    """Precision and recall by bytes of the regions found hot
    (nr_accesses >= min_nr_accesses) against the true hot ranges."""
    found = regions[regions["nr_accesses"] >= min_nr_accesses]
    sz_found = int((found["end"] - found["start"]).sum())
    sz_true = sum(hi - lo for lo, hi in hot_ranges)
    sz_both = overlap_bytes(found, hot_ranges)
    precision = sz_both / sz_found if sz_found else 0.0
    recall = sz_both / sz_true if sz_true else 1.0
    return precision, recall
