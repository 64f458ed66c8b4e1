"""Reading a record: its format told by its first bytes, never by its name;
a directory is a Parquet recording (``records.parquet``)."""

import codecs
import contextlib
import os

from damonx import errors
from damonx.errors import InvalidRecord

from . import binary, jsonstream, parquet
from .build import RecordBuilder, check_selection, select
from .model import Record


def _is_zlib(head):
    # RFC 1950 header: deflate with a window of at most 32 KiB, check bits
    return (
        len(head) >= 2
        and (head[0] & 0x0F) == 8
        and (head[0] >> 4) <= 7
        and ((head[0] << 8) | head[1]) % 31 == 0
    )


def _is_json(head):
    stripped = head.lstrip(b" \t\r\n")
    if stripped.startswith(codecs.BOM_UTF8):
        stripped = stripped[len(codecs.BOM_UTF8) :].lstrip(b" \t\r\n")
    return stripped[:1] in (b"[", b"{")


def _json_reader(compressed):
    def parse(data, selection):
        target_ids, time_range, address_range = selection
        builder = RecordBuilder(target_ids, time_range, address_range)
        try:
            rec = jsonstream.parse(data, compressed, builder)
        except InvalidRecord:
            if not builder.redo:
                raise
        else:
            if not builder.redo:
                return rec
        # the time range was applied from a start that a later target moved
        # earlier: again, from the start now known
        again = RecordBuilder(target_ids, time_range, address_range, builder.filter.base_ns)
        return jsonstream.parse(data, compressed, again)

    return parse


def _binary_reader(data, selection):
    # the format has no start for first snapshots: the record is read whole
    # (it holds no more than its regions), then selected
    try:
        rec = binary.parse(data[: len(data)])
    except InvalidRecord as err:
        if selection != (None, None, None) and err.partial is not None:
            err.partial = select(err.partial, *selection)
        raise
    return select(rec, *selection) if selection != (None, None, None) else rec


def _parquet_reader(data, selection):
    return parquet.read_file(data[: len(data)], selection)


# format -> (does the head carry its magic, parse(data, selection)); sniffed in this order
_READERS = {
    "binary": (lambda head: head.startswith(binary.MAGIC), _binary_reader),
    "parquet": (lambda head: head.startswith(b"PAR1"), _parquet_reader),
    "json_compressed": (_is_zlib, _json_reader(compressed=True)),
    "json": (_is_json, _json_reader(compressed=False)),
}


def detect_format(head):
    """Name of the format whose magic ``head`` (the first bytes) carries, or None."""
    head = bytes(head[:64])
    for name, (sniff, _) in _READERS.items():
        if sniff(head):
            return name
    return None


class _FileData:
    """The bytes of an open file, read when sliced (``data[a:b]``, ``len``),
    so that a reader that streams them never holds the whole file."""

    def __init__(self, f):
        self.fd = f.fileno()
        self.size = os.fstat(self.fd).st_size

    def __len__(self):
        return self.size

    def __getitem__(self, part):
        start, stop, _ = part.indices(self.size)
        return os.pread(self.fd, max(0, stop - start), start)


@contextlib.contextmanager
def _source(source):
    """(data, name) of a path (read when sliced) or of bytes; a file that
    cannot be read raises FileNotFound, AccessDenied or another DamonxError."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source), "<bytes>"
        return
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = _FileData(f)
            data[:1]  # a directory opens, but does not read
            yield data, path
    except IsADirectoryError as err:
        raise errors.DamonxError(f"{path} is a directory, not a record file") from err
    except errors.DamonxError:
        raise
    except OSError as err:
        raise errors.from_oserror(
            err, "cannot read the record", missing=errors.FileNotFound, privilege_hint=None
        ) from err


def load(source, partial_ok=False, *, target_ids=None, time_range=None, address_range=None):
    """Read a record from a path or from bytes, whatever its format.

    A truncated or corrupted file raises InvalidRecord saying where it broke;
    its ``partial`` attribute holds what was readable before that point.  With
    ``partial_ok=True`` that prefix is returned instead, with the reason in
    ``Record.warning`` (e.g. for a file left by a killed recorder).  A file
    that cannot be read raises FileNotFound, AccessDenied or another
    DamonxError.

    ``target_ids``, ``time_range`` (ns since the start of the record) and
    ``address_range`` (bytes) keep only a part, as :func:`select` does, but
    while reading: what is left out takes no memory (a Parquet record is
    read whole, then selected).

    A directory is a Parquet recording (``damonx record --format parquet``):
    its part files are read, and one that is not readable is an InvalidRecord
    as a broken file is (with ``partial_ok``, skipped with a warning).
    """
    selection = check_selection(target_ids, time_range, address_range)
    if not isinstance(source, (bytes, bytearray, memoryview)) and os.path.isdir(source):
        path = os.fspath(source)
        return _checked(lambda: parquet.read_dir(path, selection), path, partial_ok)
    with _source(source) as (data, name):
        return _load(data, name, partial_ok, selection)


def _load(data, name, partial_ok, selection):
    if not len(data):
        raise InvalidRecord(f"{name}: empty file, not a record", offset=0, partial=Record())
    fmt = detect_format(data[:64])
    if fmt is None:
        raise InvalidRecord(
            f"{name}: unknown record format (first bytes {data[:16]!r}); expected "
            "damo json_compressed, json, the damon_recfmt_ver binary format, or Parquet",
            offset=0,
            partial=Record(),
        )
    return _checked(lambda: _READERS[fmt][1](data, selection), name, partial_ok)


def _checked(read, name, partial_ok):
    """``read()``; an InvalidRecord it raises names ``name``, and with
    ``partial_ok`` gives what was readable, with the reason in ``warning``."""
    try:
        return read()
    except InvalidRecord as err:
        msg = f"{name}: {err}"
        if partial_ok:
            rec = err.partial if err.partial is not None else Record()
            rec.warning = msg
            return rec
        raise InvalidRecord(msg, offset=err.offset, partial=err.partial) from None
