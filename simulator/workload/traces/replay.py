"""Replaying a :class:`Trace` as the :class:`Workload` the simulator feeds.

:func:`replay` applies the ``workload.trace.*`` controls to a :class:`Trace`
and returns the :class:`Workload` the simulator feeds, with what each step
kept in ``Workload.notes``. It is a pipeline of small stages over the working
set of rows (:class:`_Rows`), in this order: sort check and re-base to t=0
(:func:`order`, :func:`_rows_in_order`), window ``[start_s, end_s)``
(:func:`_window`), ``sample`` (:func:`_sample`), ``speedup`` or
``target_rate`` (:func:`_time_scale`), ``clip`` to the engine's max length
(:func:`_clip`), ``loop`` (:func:`_repeat`), then the ``num_requests`` /
``duration_s`` caps (:func:`_cap`).

:func:`load` is reading and replaying in one call for a whole scenario
(``workload.arrival=trace``).

Labels: a trace's tenants are kept; its tiers (``tier``) must be tiers of the
scenario (``tiers``, :func:`check_tiers`). Labels a trace lacks are drawn as
for synthetic traffic when the scenario asks for them
(:mod:`simulator.workload.labels`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simulator.errors import ConfigError
from simulator.workload import labels
from simulator.workload.base import Workload
from simulator.workload.rng import stream
from simulator.workload.traces.formats import _check_name
from simulator.workload.traces.model import Trace, _fail, _split, _take_lists, order
from simulator.workload.traces.readers import read

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig, TraceConfig


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


def check_config(tc: TraceConfig, num_requests: int | None = None, duration_s: float | None = None) -> None:
    """Raise :class:`ConfigError` for a bad ``workload.trace`` value (no file access)."""
    _check_name(tc.format)
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


@dataclass
class _Replay:
    """What the stages share: the trace, the controls, the caps, and the notes they fill in."""

    trace: Trace
    tc: TraceConfig
    seed: int
    num_requests: int | None
    duration_s: float | None
    max_len: int | None
    notes: dict
    clipped_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


def replay(
    trace: Trace,
    tc: TraceConfig,
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
    notes: dict = {"trace": trace.path, "trace_format": trace.format, "rows_read": len(trace)}
    idx = order(trace, tc.sort)  # called here, not in a stage: its warning names replay's caller
    run = _Replay(trace, tc, seed, num_requests, duration_s, max_len, notes)
    r = _rows_in_order(trace, idx, notes)
    for stage in _STAGES:
        r = stage(r, run)
    return _workload(r, run)


def _rows_in_order(trace: Trace, idx: np.ndarray | None, notes: dict) -> _Rows:
    """The rows in time order (``idx`` from :func:`order`), re-based so the first request is at t=0."""
    n0 = len(trace)
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
    return r


def _window(r: _Rows, run: _Replay) -> _Rows:
    """Keep ``[start_s, end_s)`` on the re-based clock, then re-base again."""
    tc = run.tc
    if tc.start_s is not None or tc.end_s is not None:
        span0 = float(r.t[-1])
        lo = -np.inf if tc.start_s is None else tc.start_s
        hi = np.inf if tc.end_s is None else tc.end_s
        keep = np.flatnonzero((r.t >= lo) & (r.t < hi))
        if keep.size == 0:
            raise ConfigError(
                f"workload.trace.start_s={tc.start_s} / end_s={tc.end_s} keep no request of trace {run.trace.path}, "
                f"which spans 0 to {span0:,.6g} s after re-basing its first request to 0."
            )
        r = r.take(keep)
        r.t = r.t - r.t[0]
    run.notes["kept_after_window"] = len(r)
    run.notes["window_s"] = None if tc.start_s is None and tc.end_s is None else [tc.start_s, tc.end_s]
    return r


def _sample(r: _Rows, run: _Replay) -> _Rows:
    """Keep each request with probability ``sample``, order preserved."""
    tc = run.tc
    if tc.sample < 1.0:
        u = stream(run.seed, "trace_sample").random(len(r))
        keep = np.flatnonzero(u < tc.sample)
        if keep.size == 0:
            raise ConfigError(
                f"workload.trace.sample={tc.sample} kept none of the {len(r):,} requests of trace {run.trace.path}; raise it."
            )
        r = r.take(keep)
    run.notes["kept_after_sample"] = len(r)
    run.notes["sample"] = float(tc.sample)
    return r


def _time_scale(r: _Rows, run: _Replay) -> _Rows:
    """Stretch or squeeze the clock: ``speedup``, or the scale that makes the mean rate ``target_rate``."""
    tc = run.tc
    scale = 1.0
    if tc.target_rate is not None:
        span = float(r.t[-1] - r.t[0])
        if len(r) < 2 or span <= 0:
            raise ConfigError(
                f"workload.trace.target_rate needs at least two requests at different times, but trace {run.trace.path} has "
                f"{len(r)} request(s) spanning {span:g} s after the window and sampling."
            )
        scale = (len(r) - 1) / span / tc.target_rate
    elif tc.speedup != 1.0:
        scale = 1.0 / tc.speedup
    if scale != 1.0:
        r.t = r.t * scale
    run.notes["time_scale"] = scale
    return r


def _clip(r: _Rows, run: _Replay) -> _Rows:
    """Requests longer than the engine's max length: an error, or clipped with ``clip``."""
    trace, max_len = run.trace, run.max_len
    clipped = 0
    if max_len is not None:
        too_long = r.prompt + r.output > max_len
        if too_long.any():
            if not run.tc.clip:
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
            run.clipped_rows = r.rows[too_long]
            if r.flat is not None and (prompt < r.prompt).any():
                r.flat, r.offsets = _truncate_lists(r.flat, r.offsets, -(-prompt // trace.prefix_block_tokens))
            r.prompt, r.output = prompt, output
    run.notes["clipped_in_trace"] = clipped
    run.notes["max_len"] = max_len
    return r


def _repeat(r: _Rows, run: _Replay) -> _Rows:
    """``loop``: the trace back to back until the caps end it."""
    loops = 1
    if run.tc.loop:
        r, loops = _loop(r, run.num_requests, run.duration_s, run.trace)
    run.notes["loops"] = loops
    return r


def _cap(r: _Rows, run: _Replay) -> _Rows:
    """Stop at ``duration_s`` and at ``num_requests``."""
    num_requests, duration_s = run.num_requests, run.duration_s
    capped_by = None
    if duration_s is not None and r.t[-1] >= duration_s:
        r = r.take(np.flatnonzero(r.t < duration_s))
        capped_by = "duration_s"
    if num_requests is not None and len(r) > num_requests:
        r = r.take(np.arange(num_requests))
        capped_by = "num_requests"
    if len(r) == 0:
        raise ConfigError(f"workload.duration_s={duration_s} ends before the first request of trace {run.trace.path}.")
    notes = run.notes
    notes["capped_by"] = capped_by
    notes["num_requests"] = num_requests
    notes["duration_s"] = duration_s
    notes["requests"] = len(r)
    notes["clipped_requests"] = int(np.isin(r.rows, run.clipped_rows).sum())  # among the requests replayed
    return r


#: The replay pipeline after :func:`_rows_in_order`, in order.
_STAGES: tuple[Callable[[_Rows, _Replay], _Rows], ...] = (_window, _sample, _time_scale, _clip, _repeat, _cap)


def _workload(r: _Rows, run: _Replay) -> Workload:
    return Workload(
        arrival_s=np.ascontiguousarray(r.t, dtype=np.float64),
        prompt_tokens=np.ascontiguousarray(r.prompt, dtype=np.int64),
        output_tokens=np.ascontiguousarray(r.output, dtype=np.int64),
        prefix_ids=None if r.flat is None else _split(r.flat, _offsets(r)),
        prefix_block_tokens=run.trace.prefix_block_tokens,
        tenant=r.tenant,
        session=r.session,
        tier=r.tier,
        notes=run.notes,
    )


def _offsets(r: _Rows) -> np.ndarray:
    """``r.offsets`` where ``r.flat`` is set (the two are set together)."""
    assert r.offsets is not None
    return r.offsets


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
        lengths = np.tile(np.diff(_offsets(r)), k)
        out.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return out, k


def max_length(cfg: ScenarioConfig) -> int:
    """The engine's max request length: ``memory.max_model_len`` or the model's context."""
    return int(cfg.memory.max_model_len or cfg.model.max_context)


def load(cfg: ScenarioConfig) -> Workload:
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
