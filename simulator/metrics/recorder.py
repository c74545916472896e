"""Columnar buffers for what a run produces.

Each step appends one :class:`StepRow` (a typed tuple; packed into float64 blocks every
:data:`PACK_ROWS` rows) and each ended request one value per column;
the tables are made once, at the end, a column at a time, each packed column let
go as its table column is made (``requests_table``; ``packed_steps``, whose
int64 table :mod:`simulator.metrics.steps` makes only when asked).
Inter-token gaps are kept as (gap, count) pairs: in a decode step every
sequence that also decoded in the previous step shares the same gap, so one
pair stands for all of them.
"""

from __future__ import annotations

import itertools
import operator
import struct
import sys
import typing
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pandas as pd

from simulator.metrics.columns import Column
from simulator.metrics.steps import StepRows

REQUEST_COLUMNS = (
    "request_id",
    "arrival_s",
    "prompt_tokens",
    "output_tokens",
    "status",
    "reject_reason",
    "replica",
    "first_scheduled_s",
    "prefill_done_s",
    "first_token_s",
    "last_token_s",
    "finish_s",
    "preemptions",
    "swaps",
    "tenant",
    "session",
    "tier",
    "attempts",
)

#: the numeric request columns (packed into numpy as requests end) and the text ones
_REQ_NUMERIC = {
    "request_id": np.int64, "arrival_s": np.float64, "prompt_tokens": np.int64, "output_tokens": np.int64,
    "replica": np.int64, "first_scheduled_s": np.float64, "prefill_done_s": np.float64, "first_token_s": np.float64,
    "last_token_s": np.float64, "finish_s": np.float64, "preemptions": np.int64, "swaps": np.int64, "attempts": np.int64,
}  # fmt: skip
_REQ_TEXT = tuple(c for c in REQUEST_COLUMNS if c not in _REQ_NUMERIC)

#: replicas.parquet: one row per replica lifecycle event (see docs/cluster.md)
REPLICA_COLUMNS = ("time_s", "replica", "group", "event", "gpus", "serving", "billed_gpus")
REPLICA_EVENTS = ("provisioning", "serving", "draining", "failed", "removed", "interrupted")  # interrupted: a spot notice


class StepRow(NamedTuple):
    """One engine iteration: a row of steps.parquet, its columns named and typed.

    The engine records the same values as a plain :data:`StepTuple` (a
    NamedTuple per step would stay tracked by the garbage collector, which
    costs a few per cent of a run); ``tests/test_types.py`` keeps the two
    declarations in step, and the type checker holds each recorded row to
    ``StepTuple``'s length and types."""

    replica: int
    step: int
    start_s: float
    duration_s: float  # priced by the latency model, plus any swap time
    prefill_tokens: int  # real prompt tokens computed (padding excluded)
    prefill_seqs: int
    decode_seqs: int
    batch_size: int  # prefill + decode sequences, padded slots included
    decode_ctx_tokens: int
    kv_blocks_used: int
    kv_blocks_total: int
    kv_tokens: int  # tokens stored in KV (running, prefilling and held)
    num_waiting: int
    num_running: int
    num_swapped: int
    preempted: int
    recompute_tokens: int
    swap_s: float
    padding_tokens: int
    new_tokens: int  # tokens emitted this step


#: what ``step_row`` takes: one StepRow's values, in order
StepTuple = tuple[int, int, float, float, int, int, int, int, int, int, int, int, int, int, int, int, int, float, int, int]
StepPack = Callable[[int, int, float, float, int, int, int, int, int, int, int, int, int, int, int, int, int, float, int, int], bytes]


class DecodeStepRow(NamedTuple):
    """A plain decode step (most steps): every running sequence decodes one token and nothing
    else happens - no prompt, no preemption, no swap, no padding. Its row of steps.parquet is
    these values; the rest follow from them: ``batch_size`` and ``new_tokens`` are
    ``decode_seqs``, every other count is 0. Recording 11 values instead of 20 halves what the
    engine builds and the recorder converts for such a step (``record_decode``)."""

    replica: int
    step: int
    start_s: float
    duration_s: float
    decode_seqs: int
    decode_ctx_tokens: int
    kv_blocks_used: int
    kv_blocks_total: int
    kv_tokens: int
    num_waiting: int
    num_running: int


#: what ``decode_row`` takes: one DecodeStepRow's values, in order
DecodeTuple = tuple[int, int, float, float, int, int, int, int, int, int, int]
DecodePack = Callable[[int, int, float, float, int, int, int, int, int, int, int], bytes]


class PrefillStepRow(NamedTuple):
    """A step of prompts only (one per arrival in a busy fleet): nothing decodes, is padded, preempted
    or swapped. Its row is these values; ``batch_size`` is ``prefill_seqs`` and every other count is 0
    (``record_prefill``: 13 values instead of 20)."""

    replica: int
    step: int
    start_s: float
    duration_s: float
    prefill_tokens: int
    prefill_seqs: int
    kv_blocks_used: int
    kv_blocks_total: int
    kv_tokens: int
    num_waiting: int
    num_running: int
    recompute_tokens: int
    new_tokens: int


#: what ``prefill_row`` takes: one PrefillStepRow's values, in order
PrefillTuple = tuple[int, int, float, float, int, int, int, int, int, int, int, int, int]
PrefillPack = Callable[[int, int, float, float, int, int, int, int, int, int, int, int, int], bytes]

STEP_COLUMNS = StepRow._fields
_STEP_FLOAT = {c for c, t in typing.get_type_hints(StepRow).items() if t is float}
_STEP_INT = {c for c in STEP_COLUMNS if c not in _STEP_FLOAT}
_STEP_INT_AT = [i for i, c in enumerate(STEP_COLUMNS) if c in _STEP_INT]
_INT32 = np.iinfo(np.int32)


class DecodeRows(NamedTuple):
    """The rows of steps ``first .. first + len(starts) - 1`` of a fast-forwarded decode run,
    described rather than written out: every such step decodes the same ``seqs`` sequences, one
    token each, and nothing else changes but the clock, the contexts and the KV blocks taken.
    The recorder writes the rows of all the runs pending at once when it packs (a few numpy
    calls for thousands of runs, instead of twenty for each)."""

    replica: int
    step: int  # the first row's step number (the rest follow it)
    first: int  # the first row's step index in its run (step i decodes over ctx0 + i * seqs entries)
    starts: list[float]  # each row's start_s
    durations: list[float]  # ... and duration_s
    seqs: int
    ctx0: int  # the decode context of the run's step 0
    used: int  # KV blocks in use before the first row's step took its own
    cycle: list[int]  # KV blocks the rows' steps take, the first row's first: repeated (RunningSet.block_cycle)
    kv_total: int
    kv_base: int  # KV entries at the run's step 0 (the held and prefilling ones included)
    queued: int
    in_flight: int
    swapped: int


_COL = {c: i for i, c in enumerate(STEP_COLUMNS)}


class _Kind(NamedTuple):
    """A kind of step row: recorded as the bytes ``pack`` makes of its values (int64 and float64, as its
    fields are typed: packed as it is recorded, the Python numbers are let go at once, and the bytes
    of thousands of rows are one numpy array when the recorder packs: 2-3x cheaper than tuples), which
    fill the step columns: field ``name`` goes to column ``column`` for each ``(column, name)`` of
    ``at`` and ``copies`` (a copy repeats a field); the other columns stay 0."""

    pack: Callable[..., bytes]
    dtype: np.dtype
    at: list[tuple[int, str]]


def _kind(row: type, copies: dict[str, str]) -> _Kind:
    kinds = typing.get_type_hints(row)
    fmt = struct.Struct("<" + "".join("d" if t is float else "q" for t in kinds.values()))
    dtype = np.dtype([(name, "<f8" if t is float else "<i8") for name, t in kinds.items()])
    at = [(_COL[c], c) for c in kinds] + [(_COL[dst], src) for dst, src in copies.items()]
    return _Kind(fmt.pack, dtype, at)


#: the row kinds - any step, a plain decode step, a prompt-only step - in the order the recorder keeps
#: their pending lists
_KINDS = (
    _kind(StepRow, {}),
    _kind(DecodeStepRow, {"batch_size": "decode_seqs", "new_tokens": "decode_seqs"}),
    _kind(PrefillStepRow, {"batch_size": "prefill_seqs"}),
)


def decode_columns(runs: list[DecodeRows], out: np.ndarray) -> None:
    """Write the rows ``runs`` describe into ``out`` (zeros, one row per step column, one column
    per step: the runs' steps in order). Each value is the one a step-by-step row would hold."""
    lengths = np.fromiter((len(r.starts) for r in runs), dtype=np.int64, count=len(runs))
    n = int(lengths.sum())

    def per_run(field: str) -> np.ndarray:  # a run's value, on each of its rows
        return np.repeat(np.fromiter(map(operator.attrgetter(field), runs), dtype=np.float64, count=len(runs)), lengths)

    rank = np.arange(n) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # each row's place in its run's rows
    place = rank.astype(np.float64)
    seqs = per_run("seqs")
    idx = per_run("first") + place  # each row's step index in its run
    grown = idx * seqs  # the entries the run's members have added by that step
    out[_COL["replica"]] = per_run("replica")
    out[_COL["step"]] = per_run("step") + place
    out[_COL["start_s"]] = np.fromiter(itertools.chain.from_iterable(r.starts for r in runs), dtype=np.float64, count=n)
    out[_COL["duration_s"]] = np.fromiter(itertools.chain.from_iterable(r.durations for r in runs), dtype=np.float64, count=n)
    out[_COL["decode_seqs"]] = seqs
    out[_COL["batch_size"]] = seqs
    out[_COL["new_tokens"]] = seqs
    out[_COL["decode_ctx_tokens"]] = per_run("ctx0") + grown
    out[_COL["kv_blocks_used"]] = per_run("used") + _taken(runs, lengths, rank)
    out[_COL["kv_blocks_total"]] = per_run("kv_total")
    out[_COL["kv_tokens"]] = per_run("kv_base") + grown
    out[_COL["num_waiting"]] = per_run("queued")
    out[_COL["num_running"]] = per_run("in_flight")
    out[_COL["num_swapped"]] = per_run("swapped")


def _taken(runs: list[DecodeRows], lengths: np.ndarray, place: np.ndarray) -> np.ndarray:
    """The KV blocks each row's step has taken by its start, counted from its run's first row:
    row ``k`` of a run has taken its cycle ``k // len(cycle)`` whole times plus its first
    ``k % len(cycle) + 1`` entries (whole numbers throughout)."""
    sizes = np.fromiter((len(r.cycle) for r in runs), dtype=np.int64, count=len(runs))
    sums = np.concatenate(([0], np.cumsum(np.fromiter(itertools.chain.from_iterable(r.cycle for r in runs), dtype=np.int64))))
    at = np.cumsum(sizes) - sizes  # where each run's cycle starts in ``sums``
    size, start = np.repeat(sizes, lengths), np.repeat(at, lengths)
    whole = np.repeat(sums[at + sizes] - sums[at], lengths)  # a cycle's blocks
    k = place + 1
    return (k // size * whole + sums[start + k % size] - sums[start]).astype(np.float64)


def gaps_of(runs: list[tuple[list[float], int]]) -> tuple[np.ndarray, np.ndarray]:
    """(gap, count) arrays for runs of step ends, each run's ends ``(ends, count)``: the gaps between
    consecutive ends of one run (np.diff of each, the same floats), each of the run's count."""
    lengths = np.fromiter((len(e) for e, _ in runs), dtype=np.int64, count=len(runs))
    ends = np.fromiter(itertools.chain.from_iterable(e for e, _ in runs), dtype=np.float64, count=int(lengths.sum()))
    keep = np.ones(max(len(ends) - 1, 0), dtype=bool)
    keep[(np.cumsum(lengths) - lengths)[1:] - 1] = False  # no gap from one run's last end to the next run's first
    counts = np.fromiter((c for _, c in runs), dtype=np.int64, count=len(runs))
    return np.diff(ends)[keep], np.repeat(counts, lengths - 1)


#: step rows (and inter-token gaps) are packed into numpy columns once this many are pending: a
#: packed row takes 96 bytes against about 440 as a tuple of Python numbers (issue 19)
PACK_ROWS = 8_192


def step_order(start: np.ndarray, replica: np.ndarray, step: np.ndarray) -> np.ndarray | None:
    """The step rows (these columns, as recorded) in the table's order - by start time, then
    replica, then step - or None when they are in it already. Replicas record as they go, so
    rows come nearly sorted; a fast-forwarded run records its steps when it is caught up."""
    if len(start) < 2:
        return None
    d_start = np.diff(start)
    if (d_start > 0).all():
        return None
    # By start time first: a stable sort of nearly sorted data (timsort runs), about a quarter of the
    # three-key lexsort's time on a 2-million-step replay. Steps that start at the same instant (rare
    # with float times) are then put in (replica, step) order, those rows only.
    order = np.argsort(start, kind="stable")
    ordered = start[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(same):
        tied = np.zeros(len(order), dtype=bool)
        tied[same] = True
        tied[same + 1] = True
        at = np.flatnonzero(tied)  # runs of equal start times, in start order
        rows = order[at]
        order[at] = rows[np.lexsort((step[rows], replica[rows], start[rows]))]
    if (order[1:] > order[:-1]).all():
        return None
    return order


def _strings(values: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``pd.array(values, dtype="string")`` for a column of few distinct strings (a status, a tier...):
    each distinct one converted once and the column taken from them (a third of the time on a
    million rows). Missing values stay missing."""
    codes, distinct = pd.factorize(values)
    return pd.array(distinct, dtype="string").take(codes, allow_fill=True)


class Recorder:
    def __init__(self, pools: list[str] | None = None, block_size: int = 16) -> None:
        self.pools = pools or []  # pool name of each replica index
        self.block_size = block_size
        self.req: list[tuple] = []  # pending ended requests, one REQUEST_COLUMNS tuple each: packed every PACK_ROWS
        self._req_cols = {c: Column(dtype) for c, dtype in _REQ_NUMERIC.items()}
        self._req_text: dict[str, list] = {c: [] for c in _REQ_TEXT}
        #: pending step rows (as bytes: _Kind), packed into _step_cols every PACK_ROWS rows: any step's, plain
        #: decode steps', prompt-only steps'
        self.step_rows: list[bytes] = []
        self.decode_rows: list[bytes] = []
        self.prefill_rows: list[bytes] = []
        #: packed step rows, column by column
        # (counts in int32, widened if one ever needs more: 96 bytes a step instead of 160)
        self._step_cols = [Column(np.int32 if c in _STEP_INT else np.float64) for c in STEP_COLUMNS]
        self._step_rows: StepRows | None = None  # the step rows in order, once made
        self._requests_df: pd.DataFrame | None = None  # the requests table, once made
        self._fresh_runs: list[DecodeRows] = []  # fast-forwarded runs' rows, packed with the pending ones
        self._fresh_count = 0
        self._fresh_gaps: list[tuple[list[float], int]] = []  # ... and their step ends (gaps of one count each)
        self.blocked_area = 0.0  # request-seconds spent on idle replicas with work queued
        self.itl_gap: list[float] = []
        self.itl_count: list[int] = []
        self._itl_gaps, self._itl_counts = Column(), Column(np.int64)  # packed gaps, with how many tokens had each
        self.replica_rows: list[tuple] = []
        #: optional requests.parquet columns (name -> (value by request id, default, dtype)), see ``request_column``
        self.extra: dict[str, tuple[dict[int, typing.Any], typing.Any, str]] = {}
        #: hot path, one row per engine iteration: ``record_step(step_row(*values))`` (a StepTuple's values),
        #: or for a plain decode step ``record_decode(decode_row(*values))`` (a DecodeTuple's) and for a
        #: prompt-only step ``record_prefill(prefill_row(*values))`` (a PrefillTuple's); a decode step's
        #: shared gap is ``record_itl``'s two appends, ``itl_gap_append(gap)`` and ``itl_count_append(count)``
        #: (a count of at least one)
        self.step_row: StepPack = _KINDS[0].pack
        self.record_step = self.step_rows.append
        self.decode_row: DecodePack = _KINDS[1].pack
        self.record_decode = self.decode_rows.append
        self.prefill_row: PrefillPack = _KINDS[2].pack
        self.record_prefill = self.prefill_rows.append
        self.itl_gap_append = self.itl_gap.append
        self.itl_count_append = self.itl_count.append

    def cut_last_step(self, replica: int, now: float) -> None:
        """``replica`` failed at ``now``: its step in progress (its last row, the one with
        its highest step number) ends there, its work lost."""
        self._pack()
        replicas, steps, starts, durations = (c.values() for c in self._step_cols[:4])
        mine = np.flatnonzero(replicas == replica)
        if len(mine):
            k = mine[np.argmax(steps[mine])]  # (a fast-forwarded run records its steps late)
            durations[k] = now - starts[k]  # duration_s = now - start_s

    def _pack(self) -> None:
        """Move the pending step rows and gaps into numpy blocks, one per column, and the
        runs recorded at once with them (the same values). The lists are cleared in place:
        the replicas hold their ``append``. (Rows go in as they come: the table sorts them.)"""
        kinds = (self.step_rows, self.decode_rows, self.prefill_rows)  # (in _KINDS' order)
        n_rows = sum(len(pending) for pending in kinds)
        if n_rows or self._fresh_runs:
            width = len(STEP_COLUMNS)
            columns = np.zeros((width, n_rows + self._fresh_count), dtype=np.float64)
            at = 0
            for pending, kind in zip(kinds, _KINDS):
                if not pending:
                    continue
                part = columns[:, at : at + len(pending)]
                values = np.frombuffer(b"".join(pending), dtype=kind.dtype)
                for column, name in kind.at:
                    part[column] = values[name]
                at += len(pending)
                pending.clear()
            if self._fresh_runs:  # the runs' rows after the others', all written at once
                decode_columns(self._fresh_runs, columns[:, n_rows:])
                self._fresh_runs = []
                self._fresh_count = 0
            fits = bool(columns.shape[1] == 0) or all(
                columns[i].max() <= _INT32.max and columns[i].min() >= _INT32.min for i in _STEP_INT_AT
            )
            for col, values in zip(self._step_cols, columns):
                col.extend(values, fits=fits)  # (a count column checks for itself when some value is out of int32)
        self._itl_gaps.extend(self.itl_gap)
        self._itl_counts.extend(self.itl_count)
        self.itl_gap.clear()
        self.itl_count.clear()
        if self._fresh_gaps:  # the runs' gaps, in the order recorded, in one piece
            gaps, counts = gaps_of(self._fresh_gaps)
            self._itl_gaps.extend(gaps)
            self._itl_counts.extend(counts)
            self._fresh_gaps = []

    def record_blocked(self, duration: float, requests: int) -> None:
        self.blocked_area += duration * requests

    def record_itl(self, gap: float, count: int) -> None:
        if count:
            self.itl_gap.append(gap)
            self.itl_count.append(count)

    def record_itl_many(self, ends: list[float], count: int) -> None:
        """One gap of ``count`` tokens between each two consecutive ``ends`` (of a fast-forwarded
        decode run's steps). (The order of gaps does not matter: their statistics sort them.)"""
        if count and len(ends) > 1:
            self._fresh_gaps.append((ends, count))

    def record_run(self, rows: DecodeRows) -> None:
        """Step rows of a fast-forwarded decode run, written out with the next pending rows."""
        self._fresh_runs.append(rows)
        self._fresh_count += len(rows.starts)
        if self._fresh_count >= PACK_ROWS:
            self._pack()

    def end_request(self, r) -> None:
        q = self.req
        q.append((  # REQUEST_COLUMNS, in order
            r.id, r.arrival_s, r.prompt, r.output, r.status, r.reject_reason, r.replica, r.first_scheduled_s,
            r.prefill_done_s, r.first_token_s, r.last_token_s, r.finish_s, r.preemptions, r.swaps, r.tenant,
            r.session, r.tier, r.attempts,
        ))  # fmt: skip
        if len(self.step_rows) + len(self.decode_rows) + len(self.prefill_rows) >= PACK_ROWS:
            self._pack()
        if len(q) >= PACK_ROWS:
            self._pack_requests()

    def _pack_requests(self) -> None:
        """Numeric columns of the pending requests into numpy blocks (8 bytes a value
        instead of a Python object); text columns stay lists of shared strings."""
        if not self.req:
            return
        for c, values in zip(REQUEST_COLUMNS, zip(*self.req)):
            if c in _REQ_NUMERIC:
                self._req_cols[c].extend(values)
            else:  # one str object per distinct value (tenant, tier... repeat)
                self._req_text[c].extend([sys.intern(v) if type(v) is str else v for v in values])
        self.req.clear()

    def request_column(self, name: str, default: typing.Any, dtype: str) -> dict[int, typing.Any]:
        """Add column ``name`` (pandas ``dtype``) to the requests table: the returned dict, filled by
        request id while the run goes, gives each request's value; a request never set gets ``default``.
        Levers that are off add none, so the default table keeps its columns."""
        values: dict[int, typing.Any] = {}
        self.extra[name] = (values, default, dtype)
        return values

    def replica_event(self, time_s: float, replica: int, group: str, event: str, gpus: int, serving: int, billed_gpus: int) -> None:
        """A replica changed state; ``serving`` and ``billed_gpus`` are the cluster's totals after it."""
        self.replica_rows.append((time_s, replica, group, event, gpus, serving, billed_gpus))

    # -- tables ----------------------------------------------------------
    def requests_table(self) -> pd.DataFrame:
        """One row per request, by id (made once, a column at a time: the recorder lets each
        packed column go as its table column is made, so the requests are held once)."""
        if self._requests_df is not None:
            return self._requests_df
        self._pack_requests()
        ids = self._req_cols["request_id"].values()
        order = None if len(ids) < 2 or (np.diff(ids) > 0).all() else np.argsort(ids, kind="stable")
        columns: dict[str, typing.Any] = {}
        for c in REQUEST_COLUMNS:
            if c in _REQ_NUMERIC:
                values = self._req_cols.pop(c).values()
            else:
                values = np.asarray(self._req_text.pop(c), dtype=object)
            if order is not None:
                values = values[order]
            columns[c] = values if c in _REQ_NUMERIC else _strings(values)
        del values
        df = pd.DataFrame(columns, copy=False)
        del columns
        done = df["status"] == "completed"
        df["queue_s"] = (df["first_scheduled_s"] - df["arrival_s"]).where(done)
        df["ttft_s"] = (df["first_token_s"] - df["arrival_s"]).where(done)
        # TPOT is undefined for one token, and for an answer whose tokens all came at once (a response-cache hit)
        decode_tokens = (df["output_tokens"] - 1).where((df["output_tokens"] > 1) & (df["finish_s"] > df["first_token_s"]))
        df["tpot_s"] = ((df["finish_s"] - df["first_token_s"]) / decode_tokens).where(done)
        df["e2e_s"] = (df["finish_s"] - df["arrival_s"]).where(done)
        if self.extra:
            ids = df["request_id"].tolist()
            for name, (by_id, default, dtype) in self.extra.items():
                df[name] = pd.Series([by_id.get(i, default) for i in ids], index=df.index, dtype=dtype)
        self._requests_df = df
        return df

    def packed_steps(self) -> StepRows:
        """The step rows in the table's order (made once: the recorder lets its buffers go).
        Counts stay as packed (int32, exact); :meth:`StepRows.table` widens them."""
        if self._step_rows is not None:
            return self._step_rows
        self._pack()
        buffers = self._step_cols
        order = step_order(buffers[2].values(), buffers[0].values(), buffers[1].values())
        self._step_cols = []
        columns = {}
        buffers.reverse()
        for c in STEP_COLUMNS:
            col = buffers.pop()  # (sorted: each column's buffer goes as soon as its sorted copy exists)
            columns[c] = col.values() if order is None else col.values()[order]
        del col
        df = pd.DataFrame(columns, copy=False)
        del columns
        allocated = df["kv_blocks_used"].to_numpy().astype(np.int64) * self.block_size
        with np.errstate(invalid="ignore", divide="ignore"):
            df["kv_token_share"] = np.where(allocated > 0, df["kv_tokens"].to_numpy() / allocated, np.nan)
        self._step_rows = StepRows(df, self.pools, _STEP_INT)
        return self._step_rows

    def steps_table(self) -> pd.DataFrame:
        """The public steps table (int64 counts, ``pool`` when the run has pools)."""
        return self.packed_steps().table()

    def replicas_table(self) -> pd.DataFrame:
        df = pd.DataFrame(self.replica_rows, columns=list(REPLICA_COLUMNS))
        df = df.astype({"time_s": "float64", "replica": "int64", "gpus": "int64", "serving": "int64", "billed_gpus": "int64"})
        df["group"] = df["group"].astype("string")
        df["event"] = df["event"].astype("string")
        return df

    def itl(self) -> tuple[np.ndarray, np.ndarray]:
        """(gap, count) of every inter-token gap recorded."""
        self._pack()
        return self._itl_gaps.values(), self._itl_counts.values()
