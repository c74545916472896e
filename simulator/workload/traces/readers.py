"""Reading a trace file into a :class:`Trace`, every cell checked.

:func:`read` parses one file into a :class:`Trace` (columns as numpy arrays,
on the trace's own clock, in file order). Every bad cell is a
:class:`ConfigError` naming the file, the row (and, for CSV and JSONL, the
file line) and the column; nothing is returned half-loaded.

Readers stream: CSV through ``pyarrow.csv.open_csv`` restricted to the
columns used, Parquet through ``iter_batches`` of those columns, JSONL line by
line, so memory follows the columns kept, not the file.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulator.errors import ConfigError
from simulator.workload.traces.cells import _WHAT, _Cols, _convert_batch
from simulator.workload.traces.files import _check_text, _csv_header, _existing, _find_line, _kind_of, _lines, _reading
from simulator.workload.traces.formats import REGISTRY, _check_name, _listing, _of_kind, _roles, detect
from simulator.workload.traces.model import DEFAULT_BLOCK_TOKENS, Trace, _fail

_BLOCK_KEY = b"prefix_block_tokens"
_CSV_BLOCK = 1 << 20  # bytes per streamed CSV block


def read(path: str | os.PathLike, fmt: str = "auto") -> Trace:
    """Parse and check ``path`` (``fmt``: ``auto`` or one of :data:`FORMATS`)."""
    _check_name(fmt)
    p = _existing(path)
    if fmt == "auto":
        fmt = detect(p)
    spec = REGISTRY[fmt]
    kind, gz = _kind_of(p)
    if "jsonl" in spec.kinds:
        trace = _read_jsonl(p, gz, fmt)
    elif "parquet" in spec.kinds and kind == "parquet":
        trace = _read_parquet(p, fmt)
    else:
        if kind == "parquet":
            parquet = _listing([f.name for f in _of_kind("parquet")])
            raise _fail(p, f"is a Parquet file, but format {fmt} is CSV; Parquet traces use format {parquet}.")
        trace = _read_csv(p, gz, fmt)
    if len(trace) == 0:
        raise _fail(p, "the file has no rows.")
    return trace


def _read_csv(p: Path, gz: bool, fmt: str) -> Trace:
    if "csv" not in REGISTRY[fmt].kinds:
        csv_formats = _listing([f.name for f in _of_kind("csv")])
        raise _fail(p, f"format {fmt} is not a CSV format; CSV traces are {csv_formats}.")
    header = _csv_header(p, gz)
    if header is None:
        raise _fail(p, "the file is empty (no rows).")
    roles = _roles(p, fmt, header)
    used = [c for c, _ in roles.values()]
    invalid: list = []

    def on_invalid(row) -> str:
        if not invalid:
            invalid.append(row)
        return "skip"

    with _reading(p, gz), _quiet_undecodable_rows():
        source = pa.input_stream(str(p), compression="gzip" if gz else None)
        try:
            reader = pacsv.open_csv(
                source,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    include_columns=used,
                    column_types={c: pa.string() for c in used},
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                ),
            )
            cols, base = _Cols(), 0
            state: dict[str, int] = {}
            for batch in reader:
                if invalid:
                    break
                _convert_batch(batch, roles, cols, p, base, 1, state)
                base += batch.num_rows
        except pa.ArrowInvalid as exc:
            _check_text(p, gz)  # undecodable bytes: say so, with the line
            raise _fail(p, f"cannot be read as CSV ({str(exc).splitlines()[0]}).") from None
        finally:
            source.close()
    if invalid:
        row = invalid[0]
        line = _find_line(p, gz, row.text)  # also stops at the first line that is not UTF-8
        at = f"line {line}" if line else None
        if line is None or not row.text.isprintable():
            _check_text(p, gz)
        raise _fail(
            p,
            f"a row has {row.actual_columns} fields where the header has {row.expected_columns} ({row.text[:60]!r}).",
            at,
        )
    return _finish(p, fmt, cols, roles, state.get("block", DEFAULT_BLOCK_TOKENS), line_offset=1)


@contextmanager
def _quiet_undecodable_rows():
    """pyarrow cannot hand a row of non-UTF-8 bytes to ``invalid_row_handler``: it prints
    "Exception ignored" and fails the read, which ``_read_csv`` then explains. Keep that print quiet."""
    import sys

    previous = sys.unraisablehook

    def hook(unraisable) -> None:
        if not isinstance(unraisable.exc_value, UnicodeDecodeError):
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _finish(p, fmt, cols: _Cols, roles, block: int, *, line_offset=None, lines=None, origin=None) -> Trace:
    arrival = cols.get("arrival")
    origin_text = origin
    if arrival is None:
        arrival = np.empty(0)
    elif roles["arrival"][1] == "datetime":
        ns = arrival.astype(np.int64)
        if len(ns):
            origin_text = np.datetime_as_string(np.datetime64(int(ns[0]), "ns"), unit="us").replace("T", " ")
            arrival = (ns - ns[0]).astype(np.float64) / 1e9
        else:
            arrival = arrival.astype(np.float64)
    flat = offsets = None
    if "prefix" in roles:
        flat = cols.get("prefix_flat").astype(np.int64)
        offsets = np.concatenate([[0], np.cumsum(cols.get("prefix_counts"))]).astype(np.int64)
        if flat.size == 0:
            flat = offsets = None
    return Trace(
        path=str(p),
        format=fmt,
        arrival_s=np.asarray(arrival, dtype=np.float64),
        prompt_tokens=np.asarray(_or_empty(cols.get("prompt")), dtype=np.int64),
        output_tokens=np.asarray(_or_empty(cols.get("output")), dtype=np.int64),
        prefix_flat=flat,
        prefix_offsets=offsets,
        prefix_block_tokens=int(block),
        tenant=cols.get("tenant"),
        session=cols.get("session"),
        priority=cols.get("priority"),
        tier=cols.get("tier"),
        lines=lines,
        line_offset=line_offset,
        origin=origin_text,
        columns={r: c for r, (c, _) in roles.items()},
    )


def _or_empty(a):
    return np.empty(0) if a is None else a


def _read_parquet(p: Path, fmt: str) -> Trace:
    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(p, f"cannot be read as Parquet ({str(exc).splitlines()[0]}).") from None
    try:
        return _parquet_rows(p, pf, fmt)
    except (pa.ArrowInvalid, OSError) as exc:  # a corrupt page or column chunk
        raise _fail(p, f"cannot be read as Parquet ({str(exc).splitlines()[0]}).") from None


def _parquet_rows(p: Path, pf, fmt: str) -> Trace:
    schema = pf.schema_arrow
    names = list(schema.names)
    roles = _roles(p, fmt, names)
    meta = schema.metadata or {}
    block = DEFAULT_BLOCK_TOKENS
    if _BLOCK_KEY in meta:
        try:
            block = int(meta[_BLOCK_KEY])
            assert block >= 1
        except (ValueError, AssertionError):
            raise _fail(
                p,
                f"the metadata key prefix_block_tokens must be a positive integer (got {meta[_BLOCK_KEY].decode(errors='replace')!r}).",
            ) from None
    cols, base = _Cols(), 0
    state: dict[str, int] = {}
    for batch in pf.iter_batches(columns=[c for c, _ in roles.values()], batch_size=65536):
        _convert_batch(batch, roles, cols, p, base, None, state)
        base += batch.num_rows
    block = state.get("block", block)
    origin = meta.get(b"origin", b"").decode() or None
    return _finish(p, fmt, cols, roles, block, origin=origin)


def _read_jsonl(p: Path, gz: bool, fmt: str) -> Trace:
    try:
        return _jsonl_rows(p, gz, fmt)
    except ConfigError:
        if gz:  # a corrupt gzip stream inflates to garbage before its checksum fails: blame the stream
            _check_text(p, gz)
        raise


class _JsonColumns:
    """The columns of a JSONL trace, appended one record at a time (``array`` keeps them compact)."""

    def __init__(self, keys: dict[str, str]) -> None:
        self.keys = keys  # role -> key
        self.arrival = array("d")
        self.prompt, self.output, self.flat, self.counts, self.lines = (array("q") for _ in range(5))
        self.has_prefix = False

    def add(self, obj: dict, p, at: str, line_no: int) -> None:
        k = self.keys
        self.arrival.append(_json_number(obj, k["arrival"], p, at) / 1000.0)  # ms -> s
        self.prompt.append(_json_count(obj, k["prompt"], p, at, _WHAT["prompt"]))
        self.output.append(_json_count(obj, k["output"], p, at, _WHAT["output"]))
        ids = obj.get(k["prefix"])
        if ids is None:
            self.counts.append(0)
        else:
            if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
                raise _fail(p, f"{k['prefix']} must be a list of integers.", at, k["prefix"])
            self.has_prefix = True
            self.flat.extend(ids)
            self.counts.append(len(ids))
        self.lines.append(line_no)


def _json_object(p, line: str, line_no: int) -> dict:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _fail(p, f"malformed JSON ({exc.msg} at column {exc.colno}).", f"line {line_no}") from None
    if not isinstance(obj, dict):
        raise _fail(p, f"each line must be a JSON object, got {type(obj).__name__}.", f"line {line_no}")
    return obj


def _jsonl_rows(p: Path, gz: bool, fmt: str) -> Trace:
    spec = REGISTRY[fmt]
    cols = _JsonColumns({r: c for r, (c, _) in {**spec.required, **spec.optional}.items()})
    row = 0
    for line_no, line in _lines(p, gz):
        if not line.strip():
            continue
        row += 1
        at = f"row {row} (line {line_no})"
        obj = _json_object(p, line, line_no)
        if row == 1:
            missing = [k for k, _ in spec.required.values() if k not in obj]
            if missing:
                raise _fail(
                    p,
                    f"missing required key(s) {', '.join(missing)} for format {fmt}; found: {', '.join(obj) or 'none'}.",
                    at,
                )
        cols.add(obj, p, at, line_no)
    return _jsonl_trace(p, fmt, cols)


def _jsonl_trace(p: Path, fmt: str, cols: _JsonColumns) -> Trace:
    n = len(cols.arrival)
    line_arr = np.frombuffer(cols.lines, dtype=np.int64).copy() if n else None
    contiguous = n and line_arr is not None and line_arr[-1] - line_arr[0] == n - 1 and line_arr[0] == 1
    trace = Trace(
        path=str(p),
        format=fmt,
        arrival_s=np.frombuffer(cols.arrival, dtype=np.float64).copy() if n else np.empty(0),
        prompt_tokens=np.frombuffer(cols.prompt, dtype=np.int64).copy() if n else np.empty(0, np.int64),
        output_tokens=np.frombuffer(cols.output, dtype=np.int64).copy() if n else np.empty(0, np.int64),
        prefix_block_tokens=DEFAULT_BLOCK_TOKENS,
        lines=None if contiguous else line_arr,
        line_offset=0,
        columns=dict(cols.keys),
    )
    if cols.has_prefix:
        flat, counts = cols.flat, cols.counts
        trace.prefix_flat = np.frombuffer(flat, dtype=np.int64).copy() if len(flat) else np.empty(0, np.int64)
        trace.prefix_offsets = np.concatenate([[0], np.cumsum(np.frombuffer(counts, dtype=np.int64))]).astype(np.int64)
    return trace


def _json_number(obj: dict, key: str, p, at: str) -> float:
    if key not in obj:
        raise _fail(p, f"the key {key!r} is missing.", at)
    v = obj[key]
    if v is None:
        raise _fail(p, "the value is null.", at, key)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _fail(p, f"{v!r} is not a number.", at, key)
    if not math.isfinite(v):
        raise _fail(p, f"{v} is not a finite number.", at, key)
    return float(v)


def _json_count(obj: dict, key: str, p, at: str, what: str) -> int:
    v = _json_number(obj, key, p, at)
    if v != math.floor(v):
        raise _fail(p, f"{v:g} is not a whole number of tokens.", at, key)
    if v < 1:
        raise _fail(p, f"{int(v)} is not a positive token count; every request needs at least 1 {what}.", at, key)
    return int(v)
