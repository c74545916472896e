"""The parsed trace: :class:`Trace`, its columns, and how errors name a cell.

A :class:`Trace` is one file parsed and checked cell by cell, columns as
numpy arrays, on the trace's own clock, in file order. Every bad cell is a
:class:`ConfigError` naming the file, the row (and, for CSV and JSONL, the
file line) and the column (:func:`_fail`); nothing is returned half-loaded.
Rows stay in file order; :func:`order` is their time order when timestamps
go backwards (an error, or with ``sort`` a warning and a stable sort).

Prefix ids are stored flat, one list per request cut out of one array by
offsets (:func:`_split`, :func:`_take_lists`), so a million-request trace is
two int64 arrays, not a million small lists.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from simulator.errors import ConfigError

DEFAULT_BLOCK_TOKENS = 512  # Mooncake's hash block; servesim CSV's default


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
        assert self.prefix_offsets is not None  # set together with prefix_flat
        return _split(self.prefix_flat, self.prefix_offsets)


def _split(flat: np.ndarray, offsets: np.ndarray) -> list:
    return [flat[a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def _take_lists(flat, offsets, idx):
    if flat is None:
        return None, None
    starts = offsets[:-1][idx]
    lengths = offsets[1:][idx] - starts
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    total = int(new_offsets[-1])
    within = np.arange(total, dtype=np.int64) - np.repeat(new_offsets[:-1], lengths)
    return flat[np.repeat(starts, lengths) + within], new_offsets


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


# --------------------------------------------------------------------------- errors


def _fail(path, msg: str, where: str | None = None, column: str | None = None) -> ConfigError:
    loc = f"trace {path}"
    if where:
        loc += f", {where}"
    if column:
        loc += f", column {column!r}"
    return ConfigError(f"{loc}: {msg}")
