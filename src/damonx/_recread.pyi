"""Type stub of the compiled record reader (src/damonx/_recread.pyx)."""

from typing import Any

END: int
NEXT: int
MORE: int
SLOW: int
EXTRAS: int
EXTRA_KEYS: tuple[str, ...]

class Filter:
    def __init__(
        self,
        time_range: tuple[int, int] | None = ...,
        address_range: tuple[int, int] | None = ...,
        base_ns: int | None = ...,
    ) -> None: ...
    @property
    def base_ns(self) -> int | None: ...
    @property
    def base_moved(self) -> bool: ...

class TargetColumns:
    filter: Filter
    damos_stats: dict[int, list[dict[str, int]]]
    def __init__(self, filter: Filter, keep: bool = ...) -> None: ...
    @property
    def keep(self) -> bool: ...
    @property
    def nr_seen(self) -> int: ...
    @property
    def nr_snapshots(self) -> int: ...
    def add(
        self,
        start_ns: int,
        end_ns: int,
        regions: Any,
        sample_us: int | None = ...,
        nr_checks: int | None = ...,
        damos_stats: list[dict[str, int]] | None = ...,
    ) -> bool: ...
    def parse(
        self, text: str, pos: int
    ) -> tuple[int, int, int, int, tuple[int, dict[str, tuple[int, int]]] | None]: ...
    def commit_pending(
        self,
        sample_us: int | None = ...,
        nr_checks: int | None = ...,
        damos_stats: list[dict[str, int]] | None = ...,
    ) -> bool: ...
    def finish(self) -> dict[str, Any]: ...

def heatmap_add(
    regions: Any,
    offsets: Any,
    edges: Any,
    scale: float,
    pair_snap: Any,
    pair_bin: Any,
    pair_weight: Any,
    num: Any,
    den: Any,
) -> None: ...
