"""Recorded traces: read them, check them, replay them as a :class:`Workload`.

Two layers, each usable on its own:

* :func:`read` parses one file into a :class:`Trace` (columns as numpy
  arrays, on the trace's own clock, in file order). Every bad cell is a
  :class:`ConfigError` naming the file, the row (and, for CSV and JSONL, the
  file line) and the column; nothing is returned half-loaded.
* :func:`replay` applies the ``workload.trace.*`` controls to a :class:`Trace`
  and returns the :class:`Workload` the simulator feeds, with what each step
  kept in ``Workload.notes``.

:func:`load` is both in one call for a whole scenario (``workload.arrival=trace``).

Supported formats (``workload.trace.format``; ``auto`` detects them from the
extension and the header or first record):

``azure``     Azure LLM inference trace CSV, 2023 and 2024: ``TIMESTAMP``
              (date-time), ``ContextTokens``, ``GeneratedTokens``.
``burstgpt``  BurstGPT CSV: ``Timestamp`` (s), ``Request tokens``,
              ``Response tokens`` (``Model`` is kept as the tenant, ``Session
              ID`` as the session when present).
``mooncake``  Mooncake JSONL: ``timestamp`` (ms), ``input_length``,
              ``output_length``, ``hash_ids`` (one id per 512-token block).
``servesim``  servesim's own schema, Parquet or CSV: ``arrival_s``,
              ``prompt_tokens``, ``output_tokens``; optional ``tenant``,
              ``tier``, ``priority``, ``session_id``, ``prefix_ids``. Every
              other format converts into it (:func:`write`, ``servesim-trace
              convert``).

Labels: a trace's tenants are kept; its tiers (``tier``) must be tiers of the
scenario (``tiers``). Labels a trace lacks are drawn as for synthetic traffic
when the scenario asks for them (:mod:`simulator.workload.labels`).

Readers stream: CSV through ``pyarrow.csv.open_csv`` restricted to the
columns used, Parquet through ``iter_batches`` of those columns, JSONL line by
line, so memory follows the columns kept, not the file.
"""

from __future__ import annotations

import collections
import csv
import gzip
import io
import json
import math
import os
import warnings
import zlib
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulator.errors import ConfigError
from simulator.workload import Workload, labels
from simulator.workload.rng import stream

FORMATS = ("azure", "burstgpt", "mooncake", "servesim")
DEFAULT_BLOCK_TOKENS = 512  # Mooncake's hash block; servesim CSV's default
_BLOCK_KEY = b"prefix_block_tokens"
_CSV_BLOCK = 1 << 20  # bytes per streamed CSV block


# --------------------------------------------------------------------------- the parsed trace


@dataclass
class Trace:
    """One trace file, parsed and checked cell by cell, in file order.

    ``arrival_s`` is on the trace's own clock (seconds; Azure date-times are
    counted from the first row, ``origin``). Prefix ids are stored flat:
    request ``i`` owns ``prefix_flat[prefix_offsets[i]:prefix_offsets[i+1]]``.
    """

    path: str
    format: str
    arrival_s: np.ndarray  # float64
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    prefix_flat: np.ndarray | None = None  # int64
    prefix_offsets: np.ndarray | None = None  # int64, len n + 1
    prefix_block_tokens: int = DEFAULT_BLOCK_TOKENS
    tenant: np.ndarray | None = None
    session: np.ndarray | None = None
    priority: np.ndarray | None = None
    tier: np.ndarray | None = None  # str (object array)
    #: The file line of each row when it is not ``row + line_offset`` (JSONL with blank lines).
    lines: np.ndarray | None = None
    #: File line of data row 1, minus 1 (CSV: 1, the header); None where lines mean nothing (Parquet).
    line_offset: int | None = None
    origin: str | None = None  # the first row's original timestamp, when it was a date-time
    columns: dict = field(default_factory=dict)  # role -> the file's own column / key name

    def __len__(self) -> int:
        return len(self.arrival_s)

    def where(self, i: int) -> str:
        """``row 5 (line 6)`` for the 0-based index ``i``."""
        if self.lines is not None:
            return f"row {i + 1} (line {int(self.lines[i])})"
        if self.line_offset is not None:
            return f"row {i + 1} (line {i + 1 + self.line_offset})"
        return f"row {i + 1}"

    def prefix_list(self) -> list | None:
        if self.prefix_flat is None:
            return None
        return _split(self.prefix_flat, self.prefix_offsets)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list:
    return [flat[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


# --------------------------------------------------------------------------- errors


def _fail(path, msg: str, where: str | None = None, column: str | None = None) -> ConfigError:
    loc = f"trace {path}"
    if where:
        loc += f", {where}"
    if column:
        loc += f", column {column!r}"
    return ConfigError(f"{loc}: {msg}")


def _supported() -> str:
    return (
        "supported formats: azure (CSV: TIMESTAMP, ContextTokens, GeneratedTokens), "
        "burstgpt (CSV: Timestamp, Request tokens, Response tokens), "
        "mooncake (JSONL: timestamp, input_length, output_length, hash_ids), "
        "servesim (Parquet or CSV: arrival_s, prompt_tokens, output_tokens)"
    )


# --------------------------------------------------------------------------- detection

# role -> (file column, kind); required roles first.
_CSV_SPECS: dict[str, tuple[dict[str, tuple[str, str]], dict[str, tuple[str, str]]]] = {
    "azure": (
        {
            "arrival": ("TIMESTAMP", "datetime"),
            "prompt": ("ContextTokens", "count"),
            "output": ("GeneratedTokens", "count"),
        },
        {},
    ),
    "burstgpt": (
        {
            "arrival": ("Timestamp", "seconds"),
            "prompt": ("Request tokens", "count"),
            "output": ("Response tokens", "count"),
        },
        {"tenant": ("Model", "label"), "session": ("Session ID", "label")},
    ),
    "servesim": (
        {
            "arrival": ("arrival_s", "seconds"),
            "prompt": ("prompt_tokens", "count"),
            "output": ("output_tokens", "count"),
        },
        {
            "tenant": ("tenant", "label"),
            "tier": ("tier", "name"),
            "priority": ("priority", "int"),
            "session": ("session_id", "label"),
            "prefix": ("prefix_ids", "ids"),
            "block": ("prefix_block_tokens", "const"),
        },
    ),
}
_MOONCAKE_REQUIRED = {"arrival": "timestamp", "prompt": "input_length", "output": "output_length"}
_MOONCAKE_OPTIONAL = {"prefix": "hash_ids"}


def _kind_of(path: Path) -> tuple[str, bool]:
    """(``csv`` | ``jsonl`` | ``parquet`` | ``?``, gzipped) from the file name, then its first bytes."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if ext == "csv":
        return "csv", gz
    if ext in ("jsonl", "json", "ndjson"):
        return "jsonl", gz
    if ext in ("parquet", "pq") and not gz:
        return "parquet", gz
    with _reading(path, gz), open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet", False
    if head[:2] == b"\x1f\x8b":
        gz = True
        with _reading(path, gz), gzip.open(path, "rb") as fh:
            head = fh.read(64)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return "jsonl", gz
    return ("csv" if b"," in head or text[:1].isalpha() else "?"), gz


def _open_bytes(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _lines(path: Path, gz: bool) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, decoded as UTF-8 one line at a time.

    A line that is not UTF-8 (a binary file, another encoding) and a corrupt or
    truncated gzip stream are a :class:`ConfigError` naming the file (and the line).
    """
    with _reading(path, gz), _open_bytes(path, gz) as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_text(path, exc, f"line {n}") from None


def _not_text(path, exc: UnicodeDecodeError, where: str | None = None) -> ConfigError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return _fail(
        path,
        f"is not UTF-8 text (byte 0x{byte} cannot be decoded; is it a binary file, or saved in another encoding?); "
        "traces are UTF-8 CSV or JSONL, optionally gzipped, or Parquet.",
        where,
    )


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


@contextmanager
def _reading(path, gz: bool = False):
    """Turn what reading ``path`` can raise (undecodable bytes, a corrupt gzip stream, I/O errors) into one ConfigError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None
    except _GZIP_ERRORS as exc:
        raise _corrupt_gzip(path, exc) from None
    except OSError as exc:
        if gz and _looks_like_gzip_error(exc):
            raise _corrupt_gzip(path, exc) from None
        raise _fail(path, f"cannot be read ({(exc.strerror or str(exc)).rstrip('.')}).") from None


def _looks_like_gzip_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("gzip", "compress", "inflate", "zlib", "truncated"))


def _corrupt_gzip(path, exc: Exception) -> ConfigError:
    if "not a gzip" in str(exc).lower():  # (BadGzipFile also reports a failed CRC: that is corruption)
        what = "is named .gz (or starts like gzip) but is not valid gzip data"
    else:
        what = "is a corrupt or truncated gzip file"
    detail = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
    return _fail(path, f"{what} ({detail}); check the download or decompress it to see how far it reads.")


def _roles(p, fmt: str, names: list[str]) -> dict:
    """Column roles of ``fmt`` present in ``names``; missing required columns are an error."""
    required, optional = _CSV_SPECS[fmt]
    missing = [c for c, _ in required.values() if c not in names]
    if missing:
        raise _fail(
            p,
            f"missing required column(s) {', '.join(missing)} for format {fmt}; found: {', '.join(names) or 'none'}.",
        )
    roles = dict(required)
    roles.update({r: spec for r, spec in optional.items() if spec[0] in names})
    return roles


def _csv_header(path: Path, gz: bool) -> list[str] | None:
    for _, line in _lines(path, gz):
        for part in line.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if part.strip():  # (a file with bare \r line ends is one binary "line")
                return next(csv.reader([part]))
    return None


def _first_record(path: Path, gz: bool) -> tuple[int, str] | None:
    for n, line in _lines(path, gz):
        if line.strip():
            return n, line
    return None


def _best_csv_format(header: list[str], path) -> str:
    cols = set(header)
    scores = {f: sum(c in cols for c, _ in req.values()) for f, (req, _) in _CSV_SPECS.items()}
    full = [f for f, s in scores.items() if s == 3]
    if len(full) > 1:
        raise _fail(
            path,
            f"the header matches more than one format ({', '.join(full)}); set workload.trace.format (or --format) to one of them; {_supported()}.",
        )
    if full:
        return full[0]
    best = max(scores.values())
    partial = [f for f, s in scores.items() if s == best]
    if best > 0 and len(partial) == 1:
        return partial[0]  # read() then names the missing columns
    raise _fail(
        path,
        f"cannot tell the trace format from its CSV header (columns: {', '.join(header) or 'none'}); set workload.trace.format (or --format); {_supported()}.",
    )


def detect(path: str | os.PathLike) -> str:
    """The format of ``path``, from its extension and its header or first record."""
    p = _existing(path)
    kind, gz = _kind_of(p)
    if kind == "parquet":
        return "servesim"
    if kind == "jsonl":
        first = _first_record(p, gz)
        if first is None:
            raise _fail(p, "the file is empty (no rows).")
        line_no, line = first
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(p, f"malformed JSON ({exc.msg} at column {exc.colno}).", f"line {line_no}") from None
        if isinstance(obj, dict) and ({"timestamp", "input_length", "output_length"} & set(obj)):
            return "mooncake"
        keys = ", ".join(obj) if isinstance(obj, dict) else type(obj).__name__
        raise _fail(p, f"cannot tell the trace format from its first record (keys: {keys}); {_supported()}.")
    if kind == "csv":
        header = _csv_header(p, gz)
        if header is None:
            raise _fail(p, "the file is empty (no rows).")
        return _best_csv_format(header, p)
    raise _fail(
        p,
        f"cannot tell the trace format from the file name or its first bytes; set workload.trace.format (or --format); {_supported()}.",
    )


def _existing(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"trace file {str(path)!r} does not exist (relative paths start at {os.getcwd()}).")
    if p.is_dir():
        raise ConfigError(f"trace path {str(path)!r} is a directory, not a trace file.")
    return p


# --------------------------------------------------------------------------- reading


def read(path: str | os.PathLike, fmt: str = "auto") -> Trace:
    """Parse and check ``path`` (``fmt``: ``auto`` or one of :data:`FORMATS`)."""
    if fmt not in ("auto", *FORMATS):
        raise ConfigError(
            f"workload.trace.format={fmt!r} is not a known trace format; choose one of: auto, {', '.join(FORMATS)}."
        )
    p = _existing(path)
    if fmt == "auto":
        fmt = detect(p)
    kind, gz = _kind_of(p)
    if fmt == "mooncake":
        trace = _read_jsonl(p, gz)
    elif fmt == "servesim" and kind == "parquet":
        trace = _read_parquet(p)
    else:
        if kind == "parquet":
            raise _fail(p, f"is a Parquet file, but format {fmt} is CSV; Parquet traces use format servesim.")
        trace = _read_csv(p, gz, fmt)
    if len(trace) == 0:
        raise _fail(p, "the file has no rows.")
    return trace


class _Cols:
    """Accumulates converted column chunks."""

    def __init__(self) -> None:
        self.parts: dict[str, list] = {}

    def add(self, role: str, values) -> None:
        self.parts.setdefault(role, []).append(values)

    def get(self, role: str):
        parts = self.parts.get(role)
        if parts is None:
            return None
        return np.concatenate(parts) if parts else np.empty(0)


def _first_failing(n: int, ok: Callable[[int, int], bool]) -> int:
    """The smallest i with ``ok(0, i + 1)`` false, given ``ok(0, n)`` is false (bisection)."""
    lo, hi = 0, n  # ok(0, lo) true, ok(0, hi) false
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(0, mid):
            lo = mid
        else:
            hi = mid
    return hi - 1


def _castable(arr: pa.Array, typ) -> Callable[[int, int], bool]:
    def ok(a: int, b: int) -> bool:
        try:
            pc.cast(arr.slice(a, b - a), typ)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False

    return ok


class _Where:
    """Names a cell in a batch: (trace, first row of the batch) -> 'row r (line l)'."""

    def __init__(self, path, base: int, line_offset: int | None, column: str) -> None:
        self.path, self.base, self.line_offset, self.column = path, base, line_offset, column

    def row(self, i: int) -> str:
        r = self.base + i + 1
        return f"row {r}" if self.line_offset is None else f"row {r} (line {r + self.line_offset})"

    def fail(self, i: int, msg: str) -> ConfigError:
        return _fail(self.path, msg, self.row(i), self.column)


def _strings(arr: pa.Array, w: _Where) -> pa.Array:
    """Trimmed strings; empty or null cells are errors."""
    s = pc.utf8_trim_whitespace(arr)
    bad = pc.or_kleene(pc.is_null(s), pc.equal(s, ""))
    if pc.any(bad).as_py():
        raise w.fail(int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0]), "the cell is empty.")
    return s


def _numbers(arr: pa.Array, w: _Where, what: str) -> np.ndarray:
    """float64 values of a string or numeric column; empty, non-numeric, NaN and infinite cells fail."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        s = _strings(arr, w)
        try:
            v = pc.cast(s, pa.float64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            i = _first_failing(len(s), _castable(s, pa.float64()))
            raise w.fail(i, f"{s[i].as_py()!r} is not a number ({what}).") from None
    elif pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_decimal(arr.type):
        if arr.null_count:
            raise w.fail(
                int(np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False))[0]), "the cell is empty (null)."
            )
        v = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    else:
        raise _fail(w.path, f"has type {arr.type}; it must hold numbers ({what}).", column=w.column)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise w.fail(i, f"{v[i]} is not a finite number ({what}).")
    return v


def _whole(v: np.ndarray, w: _Where, positive: bool, what: str) -> np.ndarray:
    frac = v != np.floor(v)
    if frac.any():
        i = int(np.flatnonzero(frac)[0])
        raise w.fail(i, f"{v[i]:g} is not a whole number ({what}).")
    if positive:
        low = v < 1
        if low.any():
            i = int(np.flatnonzero(low)[0])
            raise w.fail(i, f"{int(v[i])} is not a positive token count; every request needs at least 1 {what}.")
    return v.astype(np.int64)


def _datetimes_ns(arr: pa.Array, w: _Where) -> np.ndarray:
    s = _strings(arr, w)
    for typ in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            return pc.cast(s, typ).cast(pa.int64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            continue
    # Locate the first cell that does not parse the way the batch's first cell does.
    ok_naive, ok_tz = _castable(s, pa.timestamp("ns")), _castable(s, pa.timestamp("ns", tz="UTC"))
    ok = ok_naive if ok_naive(0, 1) else ok_tz
    i = _first_failing(len(s), ok)
    mixed = (
        " (all rows must either carry a zone offset or not)"
        if i > 0 and (ok_naive(i, i + 1) or ok_tz(i, i + 1))
        else ""
    )
    raise w.fail(i, f"{s[i].as_py()!r} is not a date-time like 2023-11-16 18:15:46.6805900{mixed}.")


def _id_lists(arr: pa.Array, w: _Where) -> tuple[np.ndarray, np.ndarray]:
    """(flat int64 ids, per-row counts) from space-separated CSV cells or a Parquet list column."""
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        s = pc.fill_null(pc.utf8_trim_whitespace(arr), "")
        lists = pc.split_pattern_regex(s, r"[\s,;]+")
        counts = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
        counts[pc.equal(s, "").to_numpy(zero_copy_only=False)] = 0
        flat = pc.filter(lists.flatten(), pc.not_equal(lists.flatten(), ""))
        try:
            ids = pc.cast(flat, pa.int64()).to_numpy(zero_copy_only=False)
        except pa.ArrowInvalid:
            j = _first_failing(len(flat), _castable(flat, pa.int64()))
            row = int(np.searchsorted(np.cumsum(counts), j, side="right"))
            raise w.fail(
                row, f"prefix id {flat[j].as_py()!r} is not an integer (prefix_ids holds space-separated integers)."
            ) from None
        return ids, counts
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        if not pa.types.is_integer(arr.type.value_type):
            raise _fail(w.path, f"has type {arr.type}; it must be a list of integers.", column=w.column)
        counts = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = arr.flatten()
        if flat.null_count:
            j = int(np.flatnonzero(pc.is_null(flat).to_numpy(zero_copy_only=False))[0])
            raise w.fail(int(np.searchsorted(np.cumsum(counts), j, side="right")), "a prefix id is null.")
        return flat.cast(pa.int64()).to_numpy(zero_copy_only=False), counts
    raise _fail(
        w.path,
        f"has type {arr.type}; it must be a list of integers (Parquet) or space-separated integers (CSV).",
        column=w.column,
    )


def _labels(arr: pa.Array) -> np.ndarray:
    if pa.types.is_integer(arr.type):
        return arr.fill_null(-1).to_numpy(zero_copy_only=False)
    return pc.cast(arr, pa.string()).fill_null("").to_numpy(zero_copy_only=False).astype(object)


_WHAT = {"prompt": "prompt token", "output": "output token"}


def _convert_batch(
    batch: pa.RecordBatch, roles: dict[str, tuple[str, str]], cols: _Cols, path, base: int, line_offset, state: dict
) -> None:
    for role, (name, kind) in roles.items():
        arr = batch.column(name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        w = _Where(path, base, line_offset, name)
        if kind == "datetime":
            cols.add(role, _datetimes_ns(arr, w))
        elif kind == "seconds":
            cols.add(role, _numbers(arr, w, "seconds"))
        elif kind == "count":
            cols.add(role, _whole(_numbers(arr, w, "tokens"), w, True, _WHAT[role]))
        elif kind == "int":
            cols.add(role, _whole(_numbers(arr, w, "an integer"), w, False, "integer"))
        elif kind == "label":
            cols.add(role, _labels(arr))
        elif kind == "name":  # a non-empty string; numbers are read as their text
            text = _strings(pc.cast(arr, pa.string()), w)
            cols.add(role, text.to_numpy(zero_copy_only=False).astype(object))
        elif kind == "ids":
            ids, counts = _id_lists(arr, w)
            cols.add("prefix_flat", ids)
            cols.add("prefix_counts", counts)
        elif kind == "const":
            v = _whole(_numbers(arr, w, "tokens per prefix block"), w, True, "token per prefix block")
            if len(v):
                state.setdefault("block", int(v[0]))
                diff = np.flatnonzero(v != state["block"])
                if diff.size:
                    raise w.fail(
                        int(diff[0]),
                        f"prefix_block_tokens must be the same on every row (got {int(v[diff[0]])} after {state['block']}).",
                    )


def _read_csv(p: Path, gz: bool, fmt: str) -> Trace:
    if fmt not in _CSV_SPECS:
        raise _fail(p, f"format {fmt} is not a CSV format; CSV traces are azure, burstgpt or servesim.")
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
            cols, state, base = _Cols(), {}, 0
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


def _check_text(p: Path, gz: bool) -> None:
    """Raise the 'not UTF-8 text' error at the first line that does not decode (error path only)."""
    collections.deque(_lines(p, gz), maxlen=0)  # read every line for its decoding error; keep none


def _find_line(p: Path, gz: bool, text: str) -> int | None:
    """The line holding ``text`` (error path only)."""
    for n, line in _lines(p, gz):
        if line.rstrip("\r\n") == text:
            return n
    return None


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


def _read_parquet(p: Path) -> Trace:
    try:
        pf = pq.ParquetFile(p)
    except (pa.ArrowInvalid, OSError) as exc:
        raise _fail(p, f"cannot be read as Parquet ({str(exc).splitlines()[0]}).") from None
    try:
        return _parquet_rows(p, pf)
    except (pa.ArrowInvalid, OSError) as exc:  # a corrupt page or column chunk
        raise _fail(p, f"cannot be read as Parquet ({str(exc).splitlines()[0]}).") from None


def _parquet_rows(p: Path, pf) -> Trace:
    schema = pf.schema_arrow
    names = list(schema.names)
    roles = _roles(p, "servesim", names)
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
    cols, state, base = _Cols(), {}, 0
    for batch in pf.iter_batches(columns=[c for c, _ in roles.values()], batch_size=65536):
        _convert_batch(batch, roles, cols, p, base, None, state)
        base += batch.num_rows
    block = state.get("block", block)
    origin = meta.get(b"origin", b"").decode() or None
    return _finish(p, "servesim", cols, roles, block, origin=origin)


def _read_jsonl(p: Path, gz: bool) -> Trace:
    try:
        return _jsonl_rows(p, gz)
    except ConfigError:
        if gz:  # a corrupt gzip stream inflates to garbage before its checksum fails: blame the stream
            _check_text(p, gz)
        raise


def _jsonl_rows(p: Path, gz: bool) -> Trace:
    arrival = array("d")
    prompt, output, flat, counts, lines = array("q"), array("q"), array("q"), array("q"), array("q")
    has_prefix = False
    row = 0
    for line_no, line in _lines(p, gz):
        if not line.strip():
            continue
        row += 1
        at = f"row {row} (line {line_no})"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _fail(p, f"malformed JSON ({exc.msg} at column {exc.colno}).", f"line {line_no}") from None
        if not isinstance(obj, dict):
            raise _fail(p, f"each line must be a JSON object, got {type(obj).__name__}.", f"line {line_no}")
        if row == 1:
            missing = [k for k in _MOONCAKE_REQUIRED.values() if k not in obj]
            if missing:
                raise _fail(
                    p,
                    f"missing required key(s) {', '.join(missing)} for format mooncake; found: {', '.join(obj) or 'none'}.",
                    at,
                )
        ts = _json_number(obj, "timestamp", p, at)
        arrival.append(ts / 1000.0)
        prompt.append(_json_count(obj, "input_length", p, at, "prompt token"))
        output.append(_json_count(obj, "output_length", p, at, "output token"))
        ids = obj.get("hash_ids")
        if ids is None:
            counts.append(0)
        else:
            if not isinstance(ids, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in ids):
                raise _fail(p, "hash_ids must be a list of integers.", at, "hash_ids")
            has_prefix = True
            flat.extend(ids)
            counts.append(len(ids))
        lines.append(line_no)
    n = len(arrival)
    line_arr = np.frombuffer(lines, dtype=np.int64).copy() if n else None
    contiguous = n and line_arr[-1] - line_arr[0] == n - 1 and line_arr[0] == 1
    trace = Trace(
        path=str(p),
        format="mooncake",
        arrival_s=np.frombuffer(arrival, dtype=np.float64).copy() if n else np.empty(0),
        prompt_tokens=np.frombuffer(prompt, dtype=np.int64).copy() if n else np.empty(0, np.int64),
        output_tokens=np.frombuffer(output, dtype=np.int64).copy() if n else np.empty(0, np.int64),
        prefix_block_tokens=DEFAULT_BLOCK_TOKENS,
        lines=None if contiguous else line_arr,
        line_offset=0,
        columns={"arrival": "timestamp", "prompt": "input_length", "output": "output_length", "prefix": "hash_ids"},
    )
    if has_prefix:
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


# --------------------------------------------------------------------------- replay


@dataclass
class _Rows:
    """The replay's working set: columns plus the original row of each request."""

    t: np.ndarray
    prompt: np.ndarray
    output: np.ndarray
    rows: np.ndarray  # 0-based index into the Trace
    flat: np.ndarray | None
    offsets: np.ndarray | None
    tenant: np.ndarray | None
    session: np.ndarray | None
    tier: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> _Rows:
        flat, offsets = _take_lists(self.flat, self.offsets, idx)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return _Rows(
            self.t[idx],
            self.prompt[idx],
            self.output[idx],
            self.rows[idx],
            flat,
            offsets,
            pick(self.tenant),
            pick(self.session),
            pick(self.tier),
        )

    def __len__(self) -> int:
        return len(self.t)


def _take_lists(flat, offsets, idx):
    if flat is None:
        return None, None
    starts = offsets[:-1][idx]
    lengths = offsets[1:][idx] - starts
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(new_offsets[-1])
    within = np.arange(total, dtype=np.int64) - np.repeat(new_offsets[:-1], lengths)
    return flat[np.repeat(starts, lengths) + within], new_offsets


def check_config(tc, num_requests: int | None = None, duration_s: float | None = None) -> None:
    """Raise :class:`ConfigError` for a bad ``workload.trace`` value (no file access)."""
    if tc.format not in ("auto", *FORMATS):
        raise ConfigError(
            f"workload.trace.format={tc.format!r} is not a known trace format; choose one of: auto, {', '.join(FORMATS)}."
        )
    if not (tc.speedup > 0 and math.isfinite(tc.speedup)):
        raise ConfigError(f"workload.trace.speedup must be a number > 0 (got {tc.speedup}).")
    if tc.target_rate is not None and not (tc.target_rate > 0 and math.isfinite(tc.target_rate)):
        raise ConfigError(f"workload.trace.target_rate must be > 0 requests/s, or null (got {tc.target_rate}).")
    if tc.target_rate is not None and tc.speedup != 1.0:
        raise ConfigError(
            f"set workload.trace.speedup (got {tc.speedup}) or workload.trace.target_rate (got {tc.target_rate}), not both: each sets the time scale."
        )
    if not (0 < tc.sample <= 1):
        raise ConfigError(f"workload.trace.sample must lie in (0, 1] (got {tc.sample}).")
    if tc.start_s is not None and not (tc.start_s >= 0):
        raise ConfigError(f"workload.trace.start_s must be >= 0 seconds, or null (got {tc.start_s}).")
    if tc.end_s is not None and not (tc.end_s > 0):
        raise ConfigError(f"workload.trace.end_s must be > 0 seconds, or null (got {tc.end_s}).")
    if tc.start_s is not None and tc.end_s is not None and not tc.start_s < tc.end_s:
        raise ConfigError(
            f"workload.trace.start_s must be < workload.trace.end_s (got start_s={tc.start_s}, end_s={tc.end_s})."
        )
    if tc.loop and num_requests is None and duration_s is None:
        raise ConfigError(
            "workload.trace.loop=true repeats the trace forever; set workload.num_requests or workload.duration_s to end it."
        )


def order(trace: Trace, sort: bool, sort_option: str = "workload.trace.sort=true") -> np.ndarray | None:
    """The stable time order of ``trace`` when its timestamps go backwards (None when in order).

    Without ``sort`` that is a ConfigError naming the first offending row; with
    it, a warning.
    """
    t = trace.arrival_s
    back = np.flatnonzero(np.diff(t) < 0)
    if back.size == 0:
        return None
    i = int(back[0]) + 1
    col = trace.columns.get("arrival", "timestamp")
    if not sort:
        raise _fail(
            trace.path,
            f"timestamps go backwards ({t[i] - t[0]:.6g} s after the first row, before the previous row's {t[i - 1] - t[0]:.6g} s); "
            f"use {sort_option} to sort the rows by time (with a warning).",
            trace.where(i),
            col,
        )
    warnings.warn(
        f"trace {trace.path}: {back.size:,} row(s) have timestamps earlier than the row before (first at {trace.where(i)}); "
        f"sorted the rows by time ({sort_option}).",
        stacklevel=3,
    )
    return np.argsort(t, kind="stable")


def replay(
    trace: Trace,
    tc,
    *,
    seed: int = 0,
    num_requests: int | None = None,
    duration_s: float | None = None,
    max_len: int | None = None,
) -> Workload:
    """Apply the ``workload.trace`` controls ``tc`` to ``trace``.

    In order: sort check, re-base to t=0, window ``[start_s, end_s)`` (re-based
    again), ``sample``, ``speedup`` or ``target_rate``, ``clip`` to ``max_len``,
    then ``loop`` or the ``num_requests`` / ``duration_s`` caps.
    """
    check_config(tc, num_requests, duration_s)
    n0 = len(trace)
    notes: dict = {"trace": trace.path, "trace_format": trace.format, "rows_read": n0}
    idx = order(trace, tc.sort)
    notes["rows_sorted"] = 0 if idx is None else int(np.count_nonzero(idx != np.arange(n0)))
    if idx is None:
        idx = np.arange(n0)
    flat, offsets = (
        _take_lists(trace.prefix_flat, trace.prefix_offsets, idx)
        if notes["rows_sorted"]
        else (trace.prefix_flat, trace.prefix_offsets)
    )
    r = _Rows(
        trace.arrival_s[idx],
        trace.prompt_tokens[idx],
        trace.output_tokens[idx],
        idx,
        flat,
        offsets,
        None if trace.tenant is None else trace.tenant[idx],
        None if trace.session is None else trace.session[idx],
        None if trace.tier is None else trace.tier[idx],
    )
    r.t = r.t - r.t[0]
    span0 = float(r.t[-1])

    # window [start_s, end_s) on the re-based clock, then re-base again
    if tc.start_s is not None or tc.end_s is not None:
        lo = -np.inf if tc.start_s is None else tc.start_s
        hi = np.inf if tc.end_s is None else tc.end_s
        keep = np.flatnonzero((r.t >= lo) & (r.t < hi))
        if keep.size == 0:
            raise ConfigError(
                f"workload.trace.start_s={tc.start_s} / end_s={tc.end_s} keep no request of trace {trace.path}, "
                f"which spans 0 to {span0:,.6g} s after re-basing its first request to 0."
            )
        r = r.take(keep)
        r.t = r.t - r.t[0]
    notes["kept_after_window"] = len(r)
    notes["window_s"] = None if tc.start_s is None and tc.end_s is None else [tc.start_s, tc.end_s]

    # sample: keep each request with probability `sample`, order preserved
    if tc.sample < 1.0:
        u = stream(seed, "trace_sample").random(len(r))
        keep = np.flatnonzero(u < tc.sample)
        if keep.size == 0:
            raise ConfigError(
                f"workload.trace.sample={tc.sample} kept none of the {len(r):,} requests of trace {trace.path}; raise it."
            )
        r = r.take(keep)
    notes["kept_after_sample"] = len(r)
    notes["sample"] = float(tc.sample)

    # time scale
    scale = 1.0
    if tc.target_rate is not None:
        span = float(r.t[-1] - r.t[0])
        if len(r) < 2 or span <= 0:
            raise ConfigError(
                f"workload.trace.target_rate needs at least two requests at different times, but trace {trace.path} has "
                f"{len(r)} request(s) spanning {span:g} s after the window and sampling."
            )
        scale = (len(r) - 1) / span / tc.target_rate
    elif tc.speedup != 1.0:
        scale = 1.0 / tc.speedup
    if scale != 1.0:
        r.t = r.t * scale
    notes["time_scale"] = scale

    # clip to the engine's max length
    clipped = 0
    clipped_rows = np.empty(0, dtype=np.int64)
    if max_len is not None:
        too_long = r.prompt + r.output > max_len
        if too_long.any():
            if not tc.clip:
                i = int(np.flatnonzero(too_long)[0])
                raise _fail(
                    trace.path,
                    f"the request needs {int(r.prompt[i]):,} prompt + {int(r.output[i]):,} output tokens, more than the engine's "
                    f"max length {max_len:,}; set workload.trace.clip=true to clip such requests, or raise memory.max_model_len.",
                    trace.where(int(r.rows[i])),
                )
            if max_len < 2:
                raise ConfigError(
                    f"cannot clip trace requests to a max length of {max_len} token(s); it must allow 1 prompt and 1 output token."
                )
            prompt = np.minimum(r.prompt, max_len - 1)
            output = np.minimum(r.output, max_len - prompt)
            clipped = int(np.count_nonzero(too_long))
            clipped_rows = r.rows[too_long]
            if r.flat is not None and (prompt < r.prompt).any():
                r.flat, r.offsets = _truncate_lists(r.flat, r.offsets, -(-prompt // trace.prefix_block_tokens))
            r.prompt, r.output = prompt, output
    notes["clipped_in_trace"] = clipped
    notes["max_len"] = max_len

    # loop or cap
    loops = 1
    if tc.loop:
        r, loops = _loop(r, num_requests, duration_s, trace)
    notes["loops"] = loops
    capped_by = None
    if duration_s is not None and r.t[-1] >= duration_s:
        r = r.take(np.flatnonzero(r.t < duration_s))
        capped_by = "duration_s"
    if num_requests is not None and len(r) > num_requests:
        r = r.take(np.arange(num_requests))
        capped_by = "num_requests"
    if len(r) == 0:
        raise ConfigError(f"workload.duration_s={duration_s} ends before the first request of trace {trace.path}.")
    notes["capped_by"] = capped_by
    notes["num_requests"] = num_requests
    notes["duration_s"] = duration_s
    notes["requests"] = len(r)
    notes["clipped_requests"] = int(np.isin(r.rows, clipped_rows).sum())  # among the requests replayed

    return Workload(
        arrival_s=np.ascontiguousarray(r.t, dtype=np.float64),
        prompt_tokens=np.ascontiguousarray(r.prompt, dtype=np.int64),
        output_tokens=np.ascontiguousarray(r.output, dtype=np.int64),
        prefix_ids=None if r.flat is None else _split(r.flat, r.offsets),
        prefix_block_tokens=trace.prefix_block_tokens,
        tenant=r.tenant,
        session=r.session,
        tier=r.tier,
        notes=notes,
    )


def _truncate_lists(flat, offsets, max_counts):
    lengths = np.diff(offsets)
    new_lengths = np.minimum(lengths, max_counts)
    within = np.arange(len(flat), dtype=np.int64) - np.repeat(offsets[:-1], lengths)
    keep = within < np.repeat(new_lengths, lengths)
    return flat[keep], np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)


def _loop(r: _Rows, num_requests, duration_s, trace: Trace) -> tuple[_Rows, int]:
    """Repeat ``r`` back to back: each copy starts one mean gap after the previous one ends.

    Prefix ids are shifted per copy so that copies do not share cached blocks
    (reuse within a copy is the trace's own).
    """
    n = len(r)
    span = float(r.t[-1] - r.t[0])
    if n < 2 or span <= 0:
        raise ConfigError(
            f"workload.trace.loop=true needs at least two requests at different times to know the gap between copies; "
            f"trace {trace.path} has {n} request(s) spanning {span:g} s after the window and sampling."
        )
    period = span + span / (n - 1)
    copies = []
    if num_requests is not None:
        copies.append(-(-num_requests // n))
    if duration_s is not None:
        copies.append(max(1, math.ceil((duration_s - r.t[0]) / period)))
    k = max(1, min(copies))
    if k == 1:
        return r, 1
    shift = np.repeat(np.arange(k, dtype=np.float64) * period, n)
    out = _Rows(
        np.tile(r.t, k) + shift,
        np.tile(r.prompt, k),
        np.tile(r.output, k),
        np.tile(r.rows, k),
        None,
        None,
        None if r.tenant is None else np.tile(r.tenant, k),
        None if r.session is None else np.tile(r.session, k),
        None if r.tier is None else np.tile(r.tier, k),
    )
    if r.flat is not None:
        width = int(r.flat.max() - r.flat.min() + 1) if r.flat.size else 1
        out.flat = np.concatenate([r.flat + j * width for j in range(k)])
        lengths = np.tile(np.diff(r.offsets), k)
        out.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return out, k


def max_length(cfg) -> int:
    """The engine's max request length: ``memory.max_model_len`` or the model's context."""
    return int(cfg.memory.max_model_len or cfg.model.max_context)


def load(cfg) -> Workload:
    """The :class:`Workload` of ``cfg.workload.trace`` for the scenario ``cfg``."""
    wl = cfg.workload
    tc = wl.trace
    if not tc.path:
        raise ConfigError("workload.arrival=trace needs workload.trace.path (a trace file).")
    check_config(tc, wl.num_requests, wl.duration_s)
    if not Path(tc.path).expanduser().is_file():
        raise ConfigError(
            f"workload.trace.path={tc.path!r} is not a file (relative paths start at {os.getcwd()}); "
            "sample traces live in the repository's traces/ folder."
        )
    trace = read(tc.path, tc.format)
    check_tiers(trace, cfg.tiers)
    w = replay(
        trace, tc, seed=cfg.seed, num_requests=wl.num_requests, duration_s=wl.duration_s, max_len=max_length(cfg)
    )
    # for the console's hint when the scheduler rejects prompts longer than its token budget
    w.notes["max_batch_tokens"] = int(cfg.scheduler.max_batch_tokens)
    labels.label(cfg, w)
    return w


def check_tiers(trace: Trace, tiers) -> None:
    """Every tier the trace names must be one of ``tiers`` (the scenario's ``tiers`` keys)."""
    if trace.tier is None:
        return
    known = [str(k) for k in tiers]
    bad = np.flatnonzero(~np.isin(trace.tier.astype(str), known))
    if bad.size:
        i = int(bad[0])
        defined = f"the scenario defines {', '.join(known)}" if known else "the scenario defines no tiers"
        raise _fail(
            trace.path,
            f"tier {str(trace.tier[i])!r} is not a tier of the scenario ({defined}); add it to tiers or drop the column.",
            trace.where(i),
            trace.columns.get("tier", "tier"),
        )


# --------------------------------------------------------------------------- convert


def write(trace: Trace, out: str | os.PathLike, *, sort: bool = False, sort_option: str = "sort=True") -> Path:
    """Write ``trace`` in servesim's schema (``.parquet`` or ``.csv``), re-based to t=0.

    Rows keep their file order; timestamps that go backwards are an error
    unless ``sort`` (then sorted, with a warning).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"output {str(out)!r} must end in .parquet or .csv (servesim's trace schema).")
    if out.exists() and Path(trace.path).exists() and out.resolve() == Path(trace.path).resolve():
        raise ConfigError(f"output {str(out)!r} is the input trace itself; write the converted trace to another file.")
    idx = order(trace, sort, sort_option)
    if idx is None:
        idx = np.arange(len(trace))
    t = trace.arrival_s[idx]
    t = t - t[0]
    data: dict[str, pa.Array] = {
        "arrival_s": pa.array(t, pa.float64()),
        "prompt_tokens": pa.array(trace.prompt_tokens[idx], pa.int64()),
        "output_tokens": pa.array(trace.output_tokens[idx], pa.int64()),
    }
    if trace.tenant is not None:
        data["tenant"] = pa.array(trace.tenant[idx].astype(str) if trace.tenant.dtype == object else trace.tenant[idx])
    if trace.tier is not None:
        data["tier"] = pa.array(trace.tier[idx].astype(str), pa.string())
    if trace.priority is not None:
        data["priority"] = pa.array(trace.priority[idx], pa.int64())
    if trace.session is not None:
        data["session_id"] = pa.array(trace.session[idx])
    flat, offsets = _take_lists(trace.prefix_flat, trace.prefix_offsets, idx)
    meta = {"source_format": trace.format, "source_file": Path(trace.path).name}
    if trace.origin:
        meta["origin"] = trace.origin
    if flat is not None:
        meta["prefix_block_tokens"] = str(trace.prefix_block_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        if flat is not None:
            data["prefix_ids"] = pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32() if offsets[-1] < 2**31 else pa.int64()), pa.array(flat, pa.int64())
            )
            if not isinstance(data["prefix_ids"].type, pa.ListType):
                data["prefix_ids"] = data["prefix_ids"].cast(pa.list_(pa.int64()))
        table = pa.table(data).replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
        pq.write_table(table, out, compression="zstd")
    else:
        if flat is not None:
            data["prefix_ids"] = pa.array([" ".join(map(str, x.tolist())) for x in _split(flat, offsets)], pa.string())
            data["prefix_block_tokens"] = pa.array(np.full(len(t), trace.prefix_block_tokens, np.int64))
        buf = io.BytesIO()
        pacsv.write_csv(pa.table(data), buf, write_options=pacsv.WriteOptions(quoting_style="needed"))
        out.write_bytes(buf.getvalue())
    return out


# --------------------------------------------------------------------------- statistics


def _dist(v: np.ndarray) -> dict:
    v = np.asarray(v, dtype=float)
    return {
        "mean": float(v.mean()),
        "p50": float(np.percentile(v, 50)),
        "p90": float(np.percentile(v, 90)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


def prefix_reuse(trace_or_flat, offsets=None, prompt=None, block: int = DEFAULT_BLOCK_TOKENS):
    """Per block occurrence: whether an earlier request already had that block, and the tokens it covers.

    Returns ``(request_of_block, reused, tokens)`` arrays aligned with the flat ids.
    """
    if isinstance(trace_or_flat, Trace):
        tr = trace_or_flat
        flat, offsets, prompt, block = tr.prefix_flat, tr.prefix_offsets, tr.prompt_tokens, tr.prefix_block_tokens
    else:
        flat = trace_or_flat
    lengths = np.diff(offsets)
    req = np.repeat(np.arange(len(lengths)), lengths)
    _, first, inv = np.unique(flat, return_index=True, return_inverse=True)
    reused = req[first[inv]] < req
    pos = np.arange(len(flat)) - np.repeat(offsets[:-1], lengths)
    tokens = np.clip(np.repeat(prompt, lengths) - pos * block, 0, block)
    return req, reused, tokens


def describe(trace: Trace) -> dict:
    """The numbers ``servesim-trace stats`` prints (times in file order, sorted if needed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = order(trace, sort=True)
    t = trace.arrival_s if idx is None else trace.arrival_s[idx]
    t = t - t[0]
    n = len(t)
    gaps = np.diff(t)
    span = float(t[-1]) if n else 0.0
    out = {
        "path": trace.path,
        "format": trace.format,
        "requests": n,
        "duration_s": span,
        "mean_rate_rps": (n - 1) / span if span > 0 else float("nan"),
        "interarrival_cv": float(gaps.std() / gaps.mean()) if gaps.size and gaps.mean() > 0 else float("nan"),
        "zero_gaps": int(np.count_nonzero(gaps == 0)),
        "rows_out_of_order": int(np.count_nonzero(np.diff(trace.arrival_s) < 0)),
        "prompt_tokens": _dist(trace.prompt_tokens),
        "output_tokens": _dist(trace.output_tokens),
        "origin": trace.origin,
        "prefix": None,
    }
    if trace.prefix_flat is not None and trace.prefix_flat.size:
        p = _reordered_prefix(trace, idx)
        _, reused, tokens = prefix_reuse(p.prefix_flat, p.prefix_offsets, p.prompt_tokens, p.prefix_block_tokens)
        out["prefix"] = {
            "block_tokens": trace.prefix_block_tokens,
            "blocks": int(len(reused)),
            "distinct_blocks": int(np.unique(trace.prefix_flat).size),
            "block_reuse": float(reused.mean()),
            "token_reuse": float(tokens[reused].sum() / trace.prompt_tokens.sum()),
        }
    return out


def _reordered_prefix(trace: Trace, idx) -> Trace:
    if idx is None:
        return trace
    flat, offsets = _take_lists(trace.prefix_flat, trace.prefix_offsets, idx)
    return Trace(
        trace.path,
        trace.format,
        trace.arrival_s[idx],
        trace.prompt_tokens[idx],
        trace.output_tokens[idx],
        flat,
        offsets,
        trace.prefix_block_tokens,
    )


_NICE_BINS = (
    0.1,
    0.2,
    0.5,
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
)


def _time_unit(span: float) -> tuple[float, str]:
    if span > 3 * 3600:
        return 3600.0, "hours"
    if span > 600:
        return 60.0, "minutes"
    return 1.0, "seconds"


def _fmt_s(s: float) -> str:
    if s >= 3600 and s % 3600 == 0:
        return f"{s / 3600:g} h"
    if s >= 60 and s % 60 == 0:
        return f"{s / 60:g} min"
    return f"{s:g} s"


def _fmt_gap(x: float) -> str:
    """A gap-axis tick: 10 µs, 0.1 ms, 1 s."""
    if x < 1e-3:
        return f"{x * 1e6:.3g} µs"
    if x < 1:
        return f"{x * 1e3:.3g} ms"
    return f"{x:.3g} s"


def _token_bins(v: np.ndarray, n: int = 50) -> np.ndarray:
    """About ``n`` log-spaced bins with integer edges (no empty bins between small integers)."""
    lo, hi = max(float(v.min()), 1.0), float(v.max())
    edges = np.unique(np.round(np.logspace(np.log10(lo), np.log10(hi + 1), n + 1)))
    if len(edges) < 2:
        edges = np.array([lo, lo + 1])
    return edges - 0.5


def stats_chart(trace: Trace, path: str | os.PathLike, summary: dict | None = None) -> Path:
    """Rate over time, inter-arrival and length distributions (and prefix reuse over time) as a PNG."""
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    from simulator.report.charts import PNG_METADATA, STYLE

    s = summary or describe(trace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = order(trace, sort=True)
    tr = _reordered_prefix(trace, idx)
    t = tr.arrival_s - tr.arrival_s[0]
    span = float(t[-1])
    has_prefix = s["prefix"] is not None
    tscale, tunit = _time_unit(span)
    width = next((b for b in _NICE_BINS if span / b <= 120), _NICE_BINS[-1]) if span > 0 else 1.0
    edges = np.arange(0.0, span, width) if span > 0 else np.zeros(1)  # every request at one instant: one bin
    if len(edges) > 1 and span - edges[-1] < width / 2:
        edges = edges[:-1]  # fold a short last piece into the bin before
    edges = np.append(edges, span if span > edges[-1] else edges[-1] + width)  # the last bin may be partial
    counts, _ = np.histogram(t, bins=edges)
    widths = np.diff(edges)
    centers = (edges[:-1] + edges[1:]) / 2 / tscale
    thousands = FuncFormatter(lambda x, _: "" if x < 1 else f"{x / 1000:g}k" if x >= 1000 else f"{x:,.0f}")

    with matplotlib.style.context(STYLE):
        fig = Figure(figsize=(13, 7.2))
        FigureCanvasAgg(fig)
        grid = fig.add_gridspec(2, 6)
        if has_prefix:
            ax_rate, ax_reuse = fig.add_subplot(grid[0, :3]), fig.add_subplot(grid[0, 3:])
        else:
            ax_rate, ax_reuse = fig.add_subplot(grid[0, :]), None
        gaps = np.diff(t)
        zeros = s["zero_gaps"]
        if zeros:  # zero gaps (same-instant arrivals) get their own bar: a log axis cannot show 0
            sub = grid[1, 0:2].subgridspec(1, 2, width_ratios=(1, 5), wspace=0.5)
            ax_zero, ax_gap = fig.add_subplot(sub[0, 0]), fig.add_subplot(sub[0, 1])
        else:
            ax_zero, ax_gap = None, fig.add_subplot(grid[1, 0:2])
        ax_in, ax_out = (fig.add_subplot(grid[1, 2 * i : 2 * i + 2]) for i in (1, 2))

        ax_rate.stairs(counts / widths, edges / tscale, color="C0", fill=True, alpha=0.15)
        ax_rate.stairs(counts / widths, edges / tscale, color="C0", linewidth=1.4)
        ax_rate.axhline(s["mean_rate_rps"], color="0.35", linestyle="--", linewidth=1)
        ax_rate.text(
            0.99,
            0.97,
            f"mean {s['mean_rate_rps']:.3g} req/s",
            transform=ax_rate.transAxes,
            ha="right",
            va="top",
            fontsize=8.5,
            color="0.25",
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"},
        )
        ax_rate.set_title(f"Request rate ({_fmt_s(width)} bins)")
        ax_rate.set_xlabel(f"time since first request ({tunit})")
        ax_rate.set_ylabel("requests / s")
        ax_rate.set_xlim(0, span / tscale if span > 0 else 1)
        ax_rate.set_ylim(bottom=0)

        pos = gaps[gaps > 0]
        if pos.size:
            lo, hi = float(pos.min()), float(pos.max())
            if hi >= 20 * lo:  # spans decades: log-spaced bins, plain decade labels
                bins = np.logspace(np.log10(lo), np.log10(hi * 1.0001), 50)
                heights, _, _ = ax_gap.hist(pos, bins=bins, color="C0", alpha=0.8)
                ax_gap.set_ylim(0, 1.25 * max(heights.max(), 1))  # room for the numbers box
                ax_gap.set_xscale("log")
                ax_gap.xaxis.set_major_locator(LogLocator(base=10, numticks=6))
                ax_gap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _fmt_gap(x)))
                ax_gap.xaxis.set_minor_formatter(NullFormatter())
                ax_gap.set_xlabel("gap (log scale)")
            else:  # a narrow range (e.g. a fixed period): linear bins, so the ticks stay readable
                pad = max(hi - lo, 1e-3 * hi) * 0.05
                bins = np.linspace(lo - pad, hi + pad, 51)
                heights, _, _ = ax_gap.hist(pos, bins=bins, color="C0", alpha=0.8)
                ax_gap.set_ylim(0, 1.25 * max(heights.max(), 1))
                ax_gap.xaxis.set_major_locator(MaxNLocator(nbins=4))
                ax_gap.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.6g}"))
                ax_gap.set_xlabel("seconds")
        else:
            ax_gap.set_xticks([])
            ax_gap.text(0.5, 0.5, "no gap > 0 s", transform=ax_gap.transAxes, ha="center", va="center", color="0.4")
            ax_gap.set_xlabel("seconds")
        note = f"mean {gaps.mean():.3g} s, CV {s['interarrival_cv']:.2f}" if gaps.size else "one request"
        ax_gap.text(
            0.97,
            0.95,
            note,
            transform=ax_gap.transAxes,
            ha="right",
            va="top",
            fontsize=8.5,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"},
        )
        ax_gap.yaxis.set_major_locator(MaxNLocator(integer=True))
        if ax_zero is None:
            ax_gap.set_title("Inter-arrival time")
        else:
            share = zeros / gaps.size
            pct = f"{share:.0%}" if share >= 0.1 else f"{100 * share:.2g}%"
            ax_gap.set_title(f"Inter-arrival time ({zeros:,} of {gaps.size:,} gaps are 0 s, {pct})")
            ax_zero.bar([0], [zeros], width=0.6, color="0.45", alpha=0.8)
            ax_zero.set_xlim(-0.6, 0.6)
            ax_zero.set_ylim(0, 1.15 * zeros)
            ax_zero.set_xticks([0], ["0 s"])
            ax_zero.set_yticks([])
            ax_zero.spines["left"].set_visible(False)
            ax_zero.grid(False)
            ax_zero.text(0, zeros, f"{zeros:,}", ha="center", va="bottom", fontsize=8.5)
            ax_zero.set_xlabel("(own scale)", fontsize=8.5)
        ax_gap.set_ylabel("requests")

        for ax, values, key, title, color in (
            (ax_in, tr.prompt_tokens, "prompt_tokens", "Prompt length", "C2"),
            (ax_out, tr.output_tokens, "output_tokens", "Output length", "C3"),
        ):
            v = values.astype(float)
            heights, _, _ = ax.hist(v, bins=_token_bins(v), color=color, alpha=0.8)
            ax.set_ylim(0, 1.3 * max(heights.max(), 1))  # room for the numbers box
            ax.set_xscale("log")
            d = s[key]
            for q, style in (("p50", "--"), ("p99", ":")):
                ax.axvline(d[q], color="0.3", linestyle=style, linewidth=1)
            ax.text(
                0.97,
                0.95,
                f"mean {d['mean']:,.0f}\np50 {d['p50']:,.0f}\np99 {d['p99']:,.0f}\nmax {d['max']:,.0f}",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8.5,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": "white", "edgecolor": "0.85"},
            )
            ax.set_title(title + " (dashed p50, dotted p99)")
            ax.set_xlabel("tokens (log scale)")
            decades = np.log10(max(v.max(), 2.0) / max(v.min(), 1.0))
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if decades > 2.5 else (1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(thousands)
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax_in.set_ylabel("requests")

        if ax_reuse is not None:
            req, reused, tokens = prefix_reuse(tr)
            b = np.clip(np.digitize(t[req], edges) - 1, 0, len(edges) - 2)
            nb = len(edges) - 1
            blocks = np.bincount(b, minlength=nb)
            share = np.bincount(b, weights=reused, minlength=nb) / np.maximum(blocks, 1)
            prompt_tok = np.bincount(
                np.clip(np.digitize(t, edges) - 1, 0, nb - 1), weights=tr.prompt_tokens, minlength=nb
            )
            tok_share = np.bincount(b, weights=tokens * reused, minlength=nb) / np.maximum(prompt_tok, 1)
            has = blocks > 0
            ax_reuse.step(
                centers[has],
                100 * share[has],
                where="mid",
                color="C4",
                label=f"blocks reused (all: {100 * s['prefix']['block_reuse']:.1f}%)",
            )
            ax_reuse.step(
                centers[has],
                100 * tok_share[has],
                where="mid",
                color="C5",
                linestyle="--",
                label=f"prompt tokens in reused blocks (all: {100 * s['prefix']['token_reuse']:.1f}%)",
            )
            ax_reuse.set_ylim(0, 100)
            ax_reuse.set_xlim(0, span / tscale if span > 0 else 1)
            ax_reuse.set_title(f"Prefix reuse ({s['prefix']['block_tokens']}-token blocks seen in an earlier request)")
            ax_reuse.set_xlabel(f"time since first request ({tunit})")
            ax_reuse.set_ylabel("% per bin")
            ax_reuse.legend(loc="lower right")

        name = Path(trace.path).name
        first = f", first request {s['origin']}" if s.get("origin") else ""
        fig.suptitle(
            f"{name} ({trace.format}): {s['requests']:,} requests over {s['duration_s'] / tscale:,.3g} {tunit}{first}",
            fontsize=11,
        )
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, metadata=PNG_METADATA)
    return path


__all__ = [
    "FORMATS",
    "Trace",
    "check_config",
    "check_tiers",
    "describe",
    "detect",
    "load",
    "max_length",
    "order",
    "prefix_reuse",
    "read",
    "replay",
    "stats_chart",
    "write",
]
