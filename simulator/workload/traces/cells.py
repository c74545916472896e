"""Cells to columns: each batch of a file's rows, converted and checked by the kind of its cells.

A format names, per role, a column and the kind of cell it holds
(:mod:`simulator.workload.traces.formats`); :func:`_convert_batch` turns one
Arrow batch of those columns into numpy arrays by kind: ``datetime`` (ns
since the epoch), ``seconds``, ``count`` (whole, >= 1), ``int``, ``label``
(tenants and sessions, kept as they are), ``name`` (non-empty text), ``ids``
(prefix id lists) and ``const`` (one value on every row).

Conversion is vectorised; only when a batch fails is the first failing cell
searched for (by bisection, :func:`_first_failing`), so the error can name its
row, line and column (:class:`_Where`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from simulator.errors import ConfigError
from simulator.workload.traces.model import _fail


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
