"""The numbers ``servesim-trace stats`` prints: rate, burstiness, lengths, prefix reuse.

:func:`describe` summarises a :class:`Trace` (times in file order, sorted if
needed): request count, duration, mean rate, inter-arrival CV, zero gaps,
rows out of order, prompt and output length percentiles and, when the trace
has prefix ids, how many blocks and prompt tokens repeat an earlier request's
(:func:`prefix_reuse`). The chart of the same numbers is
:mod:`simulator.report.trace_charts`.
"""

from __future__ import annotations

import warnings

import numpy as np

from simulator.workload.traces.model import DEFAULT_BLOCK_TOKENS, Trace, _take_lists, order


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
        assert flat is not None and offsets is not None, "prefix_reuse needs a trace with prefix ids"
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
