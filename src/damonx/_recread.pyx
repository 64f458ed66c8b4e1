# cython: language_level=3, boundscheck=False, wraparound=False
"""Columns of a target's snapshots, and the compiled reader of damo's JSON
record schema that fills them (csrc/recread.c).

``TargetColumns`` collects one target's snapshots in C arrays: start and
end times, the offset of each snapshot's first region, the regions
(``REGION_DTYPE``), and the optional per-snapshot values.  Snapshots come
in two ways, under the same ``Filter``:

- ``parse(text, pos)`` reads the snapshots of a ``"snapshots"`` list from
  decoded text, as far as they are in the usual form, with the GIL
  released; it returns where it stopped and why (``END``, ``NEXT``,
  ``MORE``, ``SLOW`` or ``EXTRAS``, see csrc/recread.h), and the caller
  reads a ``SLOW`` snapshot its own way;
- ``add(start_ns, end_ns, regions, ...)`` adds one snapshot read otherwise.

``finish()`` hands the arrays over to numpy without copying them.
``heatmap_add`` bins such columns into a heatmap's cells (csrc/recbins.c).
"""

from cpython.unicode cimport (
    PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_KIND)
from libc.errno cimport ENOMEM
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcpy, memset

import numpy as np

cimport numpy as cnp

from damonx._crecread cimport (
    DX_RR_END, DX_RR_EXTRAS, DX_RR_HAS_CHECKS, DX_RR_HAS_SAMPLE, DX_RR_MORE, DX_RR_NEXT,
    DX_RR_NR_EXTRAS, DX_RR_SLOW, dx_rr_commit, dx_rr_filter, dx_rr_parse, dx_rr_pending,
    dx_rr_heatmap_add, dx_rr_region, dx_rr_result, dx_rr_snap, dx_rr_target, dx_rr_target_free,
    dx_rr_target_init)

cnp.import_array()

from damonx.dtypes import REGION_DTYPE

if REGION_DTYPE.itemsize != sizeof(dx_rr_region):
    raise ImportError(f"damonx.REGION_DTYPE is {REGION_DTYPE.itemsize} bytes but "
                      f"struct dx_rr_region {sizeof(dx_rr_region)}: rebuild damonx")

END = DX_RR_END
NEXT = DX_RR_NEXT
MORE = DX_RR_MORE
SLOW = DX_RR_SLOW
EXTRAS = DX_RR_EXTRAS

#: the optional keys of a snapshot, in the order of DX_RR_EXTRA_*
EXTRA_KEYS = ("sample_interval_us", "damonx_nr_checks", "damos_stats", "damonx_damos_stats")


cdef class Filter:
    """What a read keeps (``struct dx_rr_filter``), shared by its targets.

    ``time_range``: (t0, t1) in ns since the start of the record, the
    snapshots meeting [t0, t1); ``address_range``: (start, end), the part of
    each region inside it.  ``base_ns``: the start of the record, when
    known; otherwise the earliest first snapshot start seen so far.
    """

    cdef dx_rr_filter f

    def __init__(self, time_range=None, address_range=None, base_ns=None):
        memset(&self.f, 0, sizeof(self.f))
        if time_range is not None:
            self.f.by_time = True
            self.f.t0_ns, self.f.t1_ns = time_range
        if address_range is not None:
            self.f.by_addr = True
            self.f.addr_start, self.f.addr_end = address_range
        if base_ns is not None:
            self.f.has_base = self.f.base_fixed = True
            self.f.base_ns = base_ns

    @property
    def base_ns(self):
        """The start of the record (ns): the earliest start of a target's
        first snapshot; None before any snapshot."""
        return self.f.base_ns if self.f.has_base else None

    @property
    def base_moved(self):
        """True if the base moved earlier after the time range was applied
        with it: the read must be done again with ``base_ns`` given."""
        return bool(self.f.base_moved)


cdef class _Memory:
    """Owns a malloc'ed block and lends it to numpy as a writable buffer."""

    cdef void *data
    cdef Py_ssize_t size
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]

    def __dealloc__(self):
        free(self.data)

    def __getbuffer__(self, Py_buffer *view, int flags):
        self.shape[0] = self.size
        self.strides[0] = 1
        view.buf = self.data
        view.obj = self
        view.len = self.size
        view.readonly = 0
        view.itemsize = 1
        view.format = "B"
        view.ndim = 1
        view.shape = self.shape
        view.strides = self.strides
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef object _take(void *block, size_t n, size_t itemsize, dtype):
    """An array of the first n items of block, which it then owns (the
    caller forgets block)."""
    cdef void *data
    cdef _Memory mem
    if n == 0:
        free(block)
        return np.zeros(0, dtype=dtype)
    data = realloc(block, n * itemsize)  # give back the unused capacity
    if data == NULL:
        data = block
    mem = _Memory.__new__(_Memory)
    mem.data = data
    mem.size = n * itemsize
    return np.frombuffer(mem, dtype=dtype)


cdef object _optional(values, flags, int bit):
    """Python values where ``flags`` has ``bit``, else None; None if none has."""
    has = (flags & bit) != 0
    if not has.any():
        return None
    return [v if h else None for v, h in zip(values.tolist(), has.tolist())]


cdef class TargetColumns:
    """The snapshots of one target, as columns (``struct dx_rr_target``).

    ``keep=False``: the target is not selected; its snapshots are counted
    (``nr_seen``) and the record's start is followed, nothing is kept.
    ``damos_stats`` maps the index of a kept snapshot to its scheme
    statistics.
    """

    cdef dx_rr_target t
    cdef readonly Filter filter
    cdef readonly dict damos_stats
    cdef bint finished

    def __cinit__(self, Filter filter not None, bint keep=True):
        self.filter = filter
        dx_rr_target_init(&self.t, &filter.f, keep)
        self.damos_stats = {}

    def __dealloc__(self):
        dx_rr_target_free(&self.t)

    @property
    def keep(self):
        return bool(self.t.keep)

    @property
    def nr_seen(self):
        """Snapshots read so far, kept or not."""
        return self.t.nr_seen

    @property
    def nr_snapshots(self):
        """Snapshots kept so far."""
        return self.t.nr_snaps

    cdef int _check(self) except -1:
        if self.finished:
            raise ValueError("the columns were handed over by finish()")
        return 0

    cdef int _commit(self, sample_us, nr_checks, damos_stats) except -1:
        cdef dx_rr_snap *s = &self.t.pending
        cdef int ret
        s.flags = 0
        if sample_us is not None:
            s.sample_us = sample_us
            s.flags |= DX_RR_HAS_SAMPLE
        if nr_checks is not None:
            s.nr_checks = nr_checks
            s.flags |= DX_RR_HAS_CHECKS
        ret = dx_rr_commit(&self.t, s)
        if ret < 0:
            raise MemoryError()
        if ret and damos_stats:
            self.damos_stats[self.t.nr_snaps - 1] = damos_stats
        return ret

    def add(self, uint64_t start_ns, uint64_t end_ns, regions, sample_us=None, nr_checks=None,
            damos_stats=None):
        """Add a snapshot; ``regions`` is a REGION_DTYPE array.  True if kept."""
        cdef cnp.ndarray arr
        cdef dx_rr_region *dst
        cdef size_t n = 0
        self._check()
        if self.t.keep:
            arr = np.ascontiguousarray(regions, dtype=REGION_DTYPE)
            n = arr.shape[0]
        if n:
            dst = dx_rr_pending(&self.t, n)
            if dst == NULL:
                raise MemoryError()
            memcpy(dst, cnp.PyArray_DATA(arr), n * sizeof(dx_rr_region))
        self.t.pending.start_ns = start_ns
        self.t.pending.end_ns = end_ns
        self.t.pending.nr_regions = n
        return bool(self._commit(sample_us, nr_checks, damos_stats))

    def parse(self, str text, Py_ssize_t pos):
        """Read snapshots from ``text[pos:]``, where a snapshot of a list
        starts (whitespace allowed).

        Returns (status, pos, start, last_end, extras): where it stopped
        and why (for a snapshot, ``pos`` is where the whitespace before it
        starts, ``start`` where it does); the end of the last snapshot it
        read (0: none); for ``EXTRAS``, (end of the snapshot, {key: (start,
        end) of its value}) for the optional keys present: that snapshot is
        pending, for ``commit_pending``.  Text with characters beyond
        Latin-1 is not read here (``SLOW``).
        """
        cdef dx_rr_result r
        cdef const char *data
        cdef size_t n
        cdef int st
        self._check()
        if pos < 0 or pos > len(text):
            raise ValueError(f"position {pos} outside the text")
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            return SLOW, pos, pos, 0, None
        data = <const char *>PyUnicode_DATA(text)
        n = PyUnicode_GET_LENGTH(text)
        with nogil:
            st = dx_rr_parse(&self.t, data, n, pos, &r)
        if st < 0:
            raise MemoryError()
        extras = None
        if st == DX_RR_EXTRAS:
            extras = (r.snap_end, {
                EXTRA_KEYS[k]: (r.extra[k][0], r.extra[k][1])
                for k in range(DX_RR_NR_EXTRAS) if r.has_extra & (1 << k)
            })
        return st, r.pos, r.start, r.last_end, extras

    def commit_pending(self, sample_us=None, nr_checks=None, damos_stats=None):
        """Add the snapshot ``parse`` left pending (``EXTRAS``), with its
        optional values as the caller read them.  True if kept."""
        self._check()
        return bool(self._commit(sample_us, nr_checks, damos_stats))

    def finish(self):
        """Hand the columns over, as a dict: numpy arrays ``start_ns``,
        ``end_ns`` (uint64), ``seen_index`` (int64: the number of each among
        all the snapshots read, kept or not), ``offsets`` (int64, one more
        than snapshots) and ``regions`` (REGION_DTYPE); ``sample_us`` and ``nr_checks``
        (lists, or None when no snapshot has them); ``damos_stats`` (index:
        list); ``unions``, the address ranges every region read covered
        (before the address filter); ``nr_seen``."""
        cdef size_t n = self.t.nr_snaps
        cdef size_t nr_offsets = n + 1 if self.t.offsets != NULL else 0
        cdef dx_rr_target *t = &self.t
        # the blocks are numpy's from here on: the target forgets them first
        cdef void *flags_p = t.flags
        cdef void *sample_p = t.sample_us
        cdef void *checks_p = t.nr_checks
        cdef void *offsets_p = t.offsets
        cdef void *start_p = t.start_ns
        cdef void *end_p = t.end_ns
        cdef void *seen_p = t.seen_index
        cdef void *regions_p = t.regions
        self._check()
        self.finished = True
        t.flags = NULL
        t.sample_us = t.nr_checks = t.start_ns = t.end_ns = t.seen_index = NULL
        t.offsets = NULL
        t.regions = NULL
        flags = _take(flags_p, n, 1, np.uint8)
        offsets = _take(offsets_p, nr_offsets, 8, np.int64)
        out = {
            "start_ns": _take(start_p, n, 8, np.uint64),
            "end_ns": _take(end_p, n, 8, np.uint64),
            "seen_index": _take(seen_p, n, 8, np.int64),
            "offsets": offsets if len(offsets) else np.zeros(1, dtype=np.int64),
            "regions": _take(regions_p, t.nr_regions, sizeof(dx_rr_region), REGION_DTYPE),
            "sample_us": _optional(_take(sample_p, n, 8, np.uint64), flags, DX_RR_HAS_SAMPLE),
            "nr_checks": _optional(_take(checks_p, n, 8, np.uint64), flags, DX_RR_HAS_CHECKS),
            "damos_stats": self.damos_stats,
            "unions": [[t.unions[i].start, t.unions[i].end] for i in range(t.nr_unions)],
            "nr_seen": t.nr_seen,
        }
        return out


def heatmap_add(regions, offsets, double[::1] edges, double scale, const int64_t[::1] pair_snap,
                const int64_t[::1] pair_bin, const double[::1] pair_weight,
                double[:, ::1] num, double[:, ::1] den):
    """Add to the cells ``num`` and ``den`` (time bins x address bins) the
    snapshots of the columns ``regions`` (REGION_DTYPE) and ``offsets``
    (int64, one more than snapshots) that weigh in a time bin: for each
    pair (``pair_snap``, ``pair_bin``, ``pair_weight``), the weight times
    the integral over each address bin of ``edges`` of the access rate
    (nr_accesses x ``scale``) into ``num`` and of the coverage into ``den``
    (see csrc/recread.h).  The regions of a snapshot are summed in address
    order."""
    arr = np.ascontiguousarray(regions)  # held until the C is done with it
    if arr.dtype != REGION_DTYPE:
        raise ValueError(f"regions must be of REGION_DTYPE, not {arr.dtype}")
    cdef const dx_rr_region *regs = <const dx_rr_region *>cnp.PyArray_DATA(arr)
    cdef size_t nr_regions = len(arr)
    cdef const int64_t[::1] offs = offsets
    cdef size_t nr_abins
    cdef size_t nr_pairs = pair_snap.shape[0]
    cdef int err
    if edges.shape[0] < 2:
        raise ValueError("edges needs at least two entries")
    nr_abins = edges.shape[0] - 1
    if offs.shape[0] < 1:
        raise ValueError("offsets needs one entry more than snapshots")
    if pair_bin.shape[0] != nr_pairs or pair_weight.shape[0] != nr_pairs:
        raise ValueError("pair_snap, pair_bin and pair_weight differ in length")
    if (num.shape[0] != den.shape[0] or num.shape[1] != den.shape[1]
            or <size_t>num.shape[1] != nr_abins):
        raise ValueError(f"num and den must both be (time bins, {nr_abins})")
    with nogil:
        err = dx_rr_heatmap_add(
            regs, nr_regions, &offs[0], offs.shape[0] - 1,
            &edges[0], nr_abins, scale,
            &pair_snap[0] if nr_pairs else NULL, &pair_bin[0] if nr_pairs else NULL,
            &pair_weight[0] if nr_pairs else NULL, nr_pairs,
            num.shape[0], &num[0, 0] if num.shape[0] else NULL,
            &den[0, 0] if den.shape[0] else NULL)
    if err == -ENOMEM:
        raise MemoryError()
    if err:
        raise ValueError("a pair names a snapshot or time bin out of range, "
                         "or the offsets are out of the regions")

