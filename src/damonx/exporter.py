"""Live access metrics for Prometheus (needs prometheus-client: the
``serve`` extra, ``pip install 'damonx[serve]'``), as ``damonx serve`` exports
them.

:class:`Metrics` holds the metrics in a registry of their own and updates
them from each snapshot of a monitor (never at scrape time, so that a scrape
only formats numbers).  Per target, labelled ``target`` (its id), ``pid``
and ``comm`` (empty where the target is no process):

``damonx_wss_bytes``
    the working set: bytes of the regions accessed in the last aggregation
    (``nr_accesses >= 1``, as ``damonx report wss``);
``damonx_monitored_bytes``
    bytes of all regions (the monitored footprint);
``damonx_regions``
    the number of regions;
``damonx_estimated_memory_bandwidth_bytes``
    DAMON_STAT's estimate of the memory bandwidth in bytes per second: the
    sum of size x nr_accesses over the regions, per aggregation interval;
``damonx_memory_idle_seconds{quantile=...}``
    DAMON_STAT's idle time percentiles: each region is idle for (age + 1)
    aggregation intervals if it was not accessed in the last one, or
    -(age + 1) if it was (negative: accessed for that long); the q-quantile
    is the idle time of the region where the regions sorted by idle time
    reach q of the bytes;
``damonx_scheme_<stat>_total{scheme=N}``
    the statistics of each scheme (``nr_tried``, ``sz_tried``, ...) when
    schemes run.

And for the whole monitor: ``damonx_monitor_cpu_seconds_total``, the CPU
time of the monitoring process (user and system; a started command's is
not counted), and ``damonx_snapshots_total``.
"""

import resource

import numpy as np

from damonx.errors import DamonxError

#: the idle time quantiles exported (DAMON_STAT computes 0 to 100 percent)
QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)

_LABELS = ("target", "pid", "comm")

#: the gauges of each target but the idle time: name and help
_PER_TARGET = (
    ("damonx_wss_bytes", "bytes of the regions accessed in the last aggregation"),
    ("damonx_monitored_bytes", "bytes of all monitored regions"),
    ("damonx_regions", "number of regions"),
    (
        "damonx_estimated_memory_bandwidth_bytes",
        "estimated memory bandwidth, bytes per second (as DAMON_STAT computes it)",
    ),
)


def require_prometheus_client():
    """The prometheus_client module; DamonxError saying how to get it if missing."""
    try:
        import prometheus_client
        import prometheus_client.exposition
    except ImportError as err:
        raise DamonxError(
            f"serving metrics needs prometheus-client ({err}): pip install 'damonx[serve]'"
        ) from None
    return prometheus_client


def estimated_bandwidth(regions, aggr_us):
    """DAMON_STAT's estimated memory bandwidth, bytes per second."""
    size = (regions["end"] - regions["start"]).astype(np.float64)
    return float((size * regions["nr_accesses"]).sum() * 1e6 / aggr_us)


def idle_quantiles(regions, aggr_us, quantiles=QUANTILES):
    """DAMON_STAT's idle time percentiles (seconds), one per quantile; None
    when the regions hold no bytes."""
    size = (regions["end"] - regions["start"]).astype(np.int64)
    total = int(size.sum())
    if not len(regions) or total <= 0:
        return None
    age = regions["age"].astype(np.int64) + 1
    idle = np.where(regions["nr_accesses"] > 0, -age, age)
    order = np.argsort(idle, kind="stable")
    # the percentile each region reaches, as the kernel's integer division
    reached = np.cumsum(size[order]) * 100 // total
    at = np.searchsorted(reached, [round(q * 100) for q in quantiles], side="left")
    at = np.minimum(at, len(order) - 1)
    return [float(v) * aggr_us / 1e6 for v in idle[order][at]]


class Metrics:
    """The metrics of one monitor, in ``self.registry``.  ``describe(tid)``
    gives the (pid, comm) labels of a target id (it may be set until the
    first update)."""

    def __init__(self, describe=lambda tid: ("", "")):
        pc = require_prometheus_client()
        self.registry = pc.CollectorRegistry(auto_describe=True)
        self._pc = pc
        self.describe = describe
        self._labels = {}  # target id -> label values
        r = self.registry
        self.wss, self.monitored, self.regions, self.bandwidth = (
            pc.Gauge(name, text, _LABELS, registry=r) for name, text in _PER_TARGET
        )
        self.idle = pc.Gauge(
            "damonx_memory_idle_seconds",
            "idle time percentiles of the memory, seconds; negative: accessed for that long "
            "(as DAMON_STAT computes them)",
            (*_LABELS, "quantile"),
            registry=r,
        )
        self.cpu = pc.Counter(
            "damonx_monitor_cpu_seconds", "CPU time of the monitoring process", registry=r
        )
        self.snapshots = pc.Counter(
            "damonx_snapshots", "aggregations the monitor completed", registry=r
        )
        self._schemes = {}  # stat name -> Counter
        self._scheme_seen = {}  # (scheme index, stat) -> last value
        self._per_target = (self.wss, self.monitored, self.regions, self.bandwidth)
        self._cpu_seen = _cpu_seconds()

    def _target_labels(self, tid):
        if tid not in self._labels:
            pid, comm = self.describe(tid)
            self._labels[tid] = (str(tid), str(pid), str(comm))
        return self._labels[tid]

    def update(self, snap):
        """Take the values of a :class:`damonx.monitor.Snapshot`."""
        aggr_us = snap.aggr_us or 1
        for tid, regions in snap.targets.items():
            labels = self._target_labels(tid)
            size = regions["end"] - regions["start"]
            self.wss.labels(*labels).set(int(size[regions["nr_accesses"] >= 1].sum()))
            self.monitored.labels(*labels).set(int(size.sum()))
            self.regions.labels(*labels).set(len(regions))
            self.bandwidth.labels(*labels).set(estimated_bandwidth(regions, aggr_us))
            values = idle_quantiles(regions, aggr_us)
            for q, v in zip(QUANTILES, values or [float("nan")] * len(QUANTILES)):
                self.idle.labels(*labels, _quantile(q)).set(v)
        for tid in set(self._labels) - set(snap.targets):
            self._forget(tid)
        for i, stats in enumerate(snap.scheme_stats or ()):
            self._update_scheme(i, stats)
        now = _cpu_seconds()
        self.cpu.inc(max(0.0, now - self._cpu_seen))
        self._cpu_seen = now
        self.snapshots.inc()

    def _update_scheme(self, index, stats):
        for key, value in stats.items():
            if key not in self._schemes:
                self._schemes[key] = self._pc.Counter(
                    f"damonx_scheme_{key}",
                    f"{key} of each scheme (damo's statistics of DAMOS)",
                    ("scheme",),
                    registry=self.registry,
                )
            last = self._scheme_seen.get((index, key), 0)
            if value > last:
                self._schemes[key].labels(str(index)).inc(value - last)
            else:
                self._schemes[key].labels(str(index))  # shown from the start, at 0
            self._scheme_seen[index, key] = max(last, value)

    def _forget(self, tid):
        """A target that is gone leaves no stale series behind."""
        labels = self._labels.pop(tid)
        for metric in self._per_target:
            metric.remove(*labels)
        for q in QUANTILES:
            self.idle.remove(*labels, _quantile(q))

    def exposition(self):
        """The text exposition format of the metrics (bytes)."""
        return self._pc.exposition.generate_latest(self.registry)


def _quantile(q):
    return f"{q:g}"


def _cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
