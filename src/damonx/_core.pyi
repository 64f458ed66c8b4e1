"""Type stub of the compiled core (src/damonx/_core.pyx)."""

from collections.abc import Sequence
from typing import Any

import numpy as np

OPS: tuple[str, ...]
ACTIONS: dict[str, int]
RULES: dict[str, int]
GOAL_METRICS: dict[str, int]
FILTER_TYPES: dict[str, int]
PAUSED: int

PM_PFN_MASK: int
PM_SOFT_DIRTY: int
PM_MMAP_EXCLUSIVE: int
PM_FILE: int
PM_SWAP: int
PM_PRESENT: int
KPF_LRU: int
KPF_COMPOUND_HEAD: int
KPF_COMPOUND_TAIL: int
KPF_HUGE: int
KPF_NOPAGE: int
KPF_THP: int
KPF_ZERO_PAGE: int

def read_maps(path: str) -> list[tuple[int, int]]: ...

class Context:
    ops: str
    procfs: str
    sysfs: str
    attrs: Any
    page_size: int
    def __init__(
        self,
        attrs: Any,
        ops: str,
        seed: int = ...,
        *,
        virtual_clock: bool = ...,
        procfs: str = ...,
        sysfs: str = ...,
        page_size: int | None = ...,
        rules: Sequence[str] | None = ...,
    ) -> None: ...
    def add_sim_target(
        self,
        target_id: int,
        size: int,
        page_size: int,
        phases: Sequence[tuple[int, Sequence[tuple[int, int, float, float]]]],
    ) -> None: ...
    def add_pid_target(self, pid: int, ranges: Sequence[tuple[int, int]] | None = ...) -> None: ...
    def add_range_target(self, target_id: int, ranges: Sequence[tuple[int, int]]) -> None: ...
    @property
    def actions(self) -> tuple[str, ...]: ...
    @property
    def filters(self) -> tuple[str, ...]: ...
    def add_scheme(self, scheme: Any) -> None: ...
    def scheme_stats(self) -> list[dict[str, Any]]: ...
    def tried_regions(self, index: int) -> np.ndarray: ...
    def set_goal_value(self, scheme: int, goal: int, value: int) -> None: ...
    def goal_values(self, scheme: int) -> list[int]: ...
    def run_aggregation(self) -> int: ...
    def snapshot(self) -> tuple[int, int, list[tuple[int, np.ndarray]]]: ...
    def snapshot_nr_checks(self) -> dict[int, int]: ...
    def snapshot_span(self) -> tuple[int, int]: ...
    def snapshot_intervals(self) -> tuple[int, int]: ...
    def set_attrs(self, attrs: Any) -> None: ...
    def attrs_in_effect(self) -> dict[str, int]: ...
    def set_cpu_model(
        self,
        per_sample_ns: int = ...,
        per_check_ns: int = ...,
        per_aggr_ns: int = ...,
        per_aggr_region_ns: int = ...,
    ) -> None: ...
    def request_stop(self) -> None: ...
    @property
    def nr_regions(self) -> int: ...
    @property
    def live_targets(self) -> list[int]: ...
    @property
    def now_ns(self) -> int: ...
    @property
    def cpu_ns(self) -> int: ...
    def stats(self) -> dict[str, int]: ...
    def access_check_stats(self) -> dict[str, int]: ...
