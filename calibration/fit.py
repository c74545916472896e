"""Fit a step-time predictor to a profile.

The predictor prices an engine iteration the way the decoder stack runs it::

    step = num_layers x [ token_ops(T) + attn_prefill + attn_decode(b, c) + comm(T) ]
           + lm_head(rows) + step_overhead

* ``token_ops(T)``: the per-layer operators whose cost depends on the number
  of rows T = prefill tokens + decode sequences (QKV, output projection, MLP
  gate/up and down, two RMSNorms, activation, rotary, two residual adds),
  summed on the measured token grid and interpolated piecewise-linearly.
* ``attn_prefill``: when the profile has prefill rows over an existing
  context (the ``kv`` column, e.g. Vidur's ``kv_cache_size``), interpolated
  over (chunk length, cached context) per sequence - the step's means,
  ``prefill_tokens / prefill_seqs`` and ``prefill_ctx_tokens /
  prefill_seqs`` - at the step's batch size (between measured batch sizes
  linearly; past the largest, along the roofline's shape). Without context
  rows, over causal query-key *pairs* (sum c (p + (c+1)/2) over prefill
  chunks), which is what prefill attention work scales with; the grid of
  (batch, prompt length) points is folded onto that axis.
* ``attn_decode``: bilinear over (decode sequences, mean context length).
* ``comm``: two all-reduces per layer when TP > 1: measured rows when the
  profile has them, else the roofline's all-reduce (or a ring cost given to
  the predictor).
* ``lm_head``: measured rows, else the roofline's LM head.
* ``step_overhead``: the per-step cost outside the operators, ``a + b * T``
  (launches, sampling and Python per step; embedding lookup, splits and
  concatenations per token), fitted on whole decoder-stack steps; else the
  roofline's (engine) per-step overhead.

**Below the grid** a lookup returns the first measured value (a kernel never
gets cheaper than its smallest measured launch). **Past the grid** it never
extrapolates linearly (a noisy last segment can slope down, and a line
through two memory-bound points stays far below the compute floor of a huge
prefill): it follows the roofline's shape from the last measured point,
``t(x) = t(x_last) * roof(x) / roof(x_last)``, with ``roof`` the analytical
roofline's time for the same operator family. Without a roofline (the
predictor built on a profile alone), ``roof`` is the work axis itself -
tokens for the token ops, query-key pairs for prefill attention, KV entries
for decode attention - which is the compute- or memory-bound shape. The
optional ``on_past_grid`` callback hears about each such lookup (operator
family and axis, value, last measured value).

Everything is pure Python arithmetic over small sorted lists (``bisect``),
so a prediction costs a few microseconds; the simulator calls it every step.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .profile import ATTENTION_OPS, Profile

#: Timing statistics a predictor can be fitted to, and their profile column.
STATISTICS = {"median": "time_s", "p10": "p10_s"}

#: How many times each token op runs per layer.
PER_LAYER = {"qkv": 1, "attn_out": 1, "mlp_gate_up": 1, "mlp_down": 1, "norm": 2, "act": 1, "rope": 1, "add": 2}

Shape1 = Callable[[float], float]
Shape2 = Callable[[float, float], float]
#: Told (axis name, value, last measured value) when a lookup falls past the grid.
OnPast = Callable[[str, float, float], None]


def _proportional(x: float) -> float:
    return x


class Interp1D:
    """Piecewise-linear y(x) on sorted points; flat below the first point, and
    past the last along ``shape``: ``y(x_last) * shape(x) / shape(x_last)``
    (``shape`` defaults to x itself: proportional to the work axis)."""

    __slots__ = ("xs", "ys", "_n", "_floor", "_hi", "_y_hi", "_shape", "_shape_hi", "on_past", "axis")

    def __init__(self, xs, ys, shape: Shape1 | None = None, on_past: OnPast | None = None, axis: str = "x"):
        med = pd.Series(np.asarray(ys, dtype=float)).groupby(np.asarray(xs, dtype=float)).median()  # repeated x: median
        self.xs = med.index.tolist()
        self.ys = med.tolist()
        self._n = len(self.xs)
        if self._n == 0:
            raise ValueError("an interpolator needs at least one point")
        self._floor = min(self.ys)
        self._hi = self.xs[-1]
        self._y_hi = self.ys[-1]
        self.set_shape(shape)
        self.on_past = on_past
        self.axis = axis

    def set_shape(self, shape: Shape1 | None) -> None:
        s_hi = shape(self._hi) if shape is not None else 0.0
        if shape is None or not s_hi > 0:  # no shape, or one that is 0 there (e.g. no all-reduce at TP 1)
            shape, s_hi = _proportional, self._hi
        if not s_hi > 0:  # a grid ending at x = 0: nothing to scale from
            shape, s_hi = (lambda x: 1.0), 1.0
        self._shape, self._shape_hi = shape, s_hi

    def past(self, x: float) -> bool:
        return x > self._hi

    def __call__(self, x: float) -> float:
        xs, n = self.xs, self._n
        if x > self._hi:
            if self.on_past is not None:
                self.on_past(self.axis, x, self._hi)
            return self._y_hi * self._shape(x) / self._shape_hi
        if n == 1 or x <= xs[0]:
            return self.ys[0]
        ys = self.ys
        i = bisect_right(xs, x)
        if i >= n:
            return ys[-1]  # x == the last point
        x0, x1 = xs[i - 1], xs[i]
        y0, y1 = ys[i - 1], ys[i]
        y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return y if y > self._floor else self._floor  # noisy tails never predict less than the fastest point


class Grid2D:
    """Bilinear z(a, b) on a (possibly incomplete) rectangular grid.

    Each measured ``a`` is a row interpolated along ``b``, so grids that skip
    large corners (e.g. huge batch x long context) work: a row past its own
    last ``b`` follows ``shape(a_row, b)``. Between rows, linear in ``a``;
    past the last row, ``z(a_last, b) * shape(a, b) / shape(a_last, b)``;
    below the first, the first row.
    """

    def __init__(self, a, b, z, shape: Shape2 | None = None, on_past: OnPast | None = None, axes: tuple[str, str] = ("a", "b")):
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        z = np.asarray(z, dtype=float)
        self.a_vals = np.unique(a).tolist()
        self._a_hi = self.a_vals[-1]
        self.shape = shape or (lambda a, b: a * b)
        self.on_past = on_past
        self.axis = axes[0]
        self.rows = [
            Interp1D(b[a == av], z[a == av], shape=self._row_shape(av), on_past=on_past, axis=axes[1])
            for av in self.a_vals
        ]

    def _row_shape(self, av: float) -> Shape1:
        """``shape`` along ``b`` at ``a = av`` (``self.shape`` read at each call)."""
        return lambda x: self.shape(av, x)

    def __call__(self, a: float, b: float) -> float:
        av, rows = self.a_vals, self.rows
        if a > self._a_hi:
            if self.on_past is not None:
                self.on_past(self.axis, a, self._a_hi)
            z = rows[-1](b)
            s_hi = self.shape(self._a_hi, b)
            return z * self.shape(a, b) / s_hi if s_hi > 0 else z * a / self._a_hi
        if len(av) == 1 or a <= av[0]:
            return rows[0](b)
        i = bisect_right(av, a)
        if i >= len(av):
            return rows[-1](b)  # a == the last row
        lo, hi = i - 1, i
        w = (a - av[lo]) / (av[hi] - av[lo])
        z0 = rows[lo](b)
        if w == 0.0:
            return z0
        z = z0 + (rows[hi](b) - z0) * w
        return z if z > 0 else z0


class PrefillGrid:
    """Prefill attention t(batch, chunk, context): a :class:`Grid2D` over
    (chunk length, cached context) per measured batch size, linear between
    batch sizes, along ``shape(batch, chunk, context)`` past the largest."""

    def __init__(self, batch, chunk, ctx, z, shape: Callable[[float, float, float], float] | None = None,
                 on_past: OnPast | None = None):
        batch = np.asarray(batch, dtype=float)
        chunk = np.asarray(chunk, dtype=float)
        ctx = np.asarray(ctx, dtype=float)
        z = np.asarray(z, dtype=float)
        self.shape = shape or (lambda b, c, p: b * c * (p + (c + 1) / 2))
        self.on_past = on_past
        self.b_vals = np.unique(batch).tolist()
        self._b_hi = self.b_vals[-1]
        self.grids = [
            Grid2D(chunk[batch == bv], ctx[batch == bv], z[batch == bv], shape=self._grid_shape(bv),
                   on_past=on_past, axes=("chunk", "context"))
            for bv in self.b_vals
        ]

    def _grid_shape(self, bv: float) -> Shape2:
        """``shape`` over (chunk, context) at ``batch = bv`` (``self.shape`` read at each call)."""
        return lambda c, p: self.shape(bv, c, p)

    def __call__(self, batch: float, chunk: float, ctx: float) -> float:
        bv, grids = self.b_vals, self.grids
        if batch > self._b_hi:
            if self.on_past is not None:
                self.on_past("batch", batch, self._b_hi)
            z = grids[-1](chunk, ctx)
            s_hi = self.shape(self._b_hi, chunk, ctx)
            return z * self.shape(batch, chunk, ctx) / s_hi if s_hi > 0 else z * batch / self._b_hi
        if len(bv) == 1 or batch <= bv[0]:
            return grids[0](chunk, ctx)
        i = bisect_right(bv, batch)
        if i >= len(bv):
            return grids[-1](chunk, ctx)
        lo, hi = i - 1, i
        w = (batch - bv[lo]) / (bv[hi] - bv[lo])
        z0 = grids[lo](chunk, ctx)
        return z0 + (grids[hi](chunk, ctx) - z0) * w


@dataclass
class Prediction:
    """One step, seconds per operator family (all layers together)."""

    token_ops: float
    attn_prefill: float
    attn_decode: float
    comm: float
    lm_head: float
    overhead: float  # fixed and per-token parts together
    num_layers: int

    @property
    def total(self) -> float:
        # The order of ProfileLatency.breakdown(), so that its values sum to exactly this.
        return self.token_ops + self.lm_head + self.attn_prefill + self.attn_decode + self.comm + self.overhead


class Predictor:
    """Step time from a profile. ``missing`` lists ops the profile lacks.

    ``roof`` (optional): an object with the roofline's public kernel-family
    methods (``linear_s``, ``elementwise_s``, ``lm_head_s``,
    ``attention_prefill_s``, ``attention_decode_s``, ``allreduce_s``,
    ``overhead_s``), all per step. It prices the ops the profile lacks and
    gives each measured family its shape past the grid. Without it, missing
    ops cost nothing (or the ring cost ``comm_*`` per layer) and the shape
    past the grid is the work axis.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        num_layers: int,
        step_overhead_s: float | None = None,
        step_overhead_per_token_s: float | None = None,
        comm_per_token_s: float = 0.0,
        comm_fixed_s: float = 0.0,
        statistic: str | None = None,
        roof=None,
        on_past_grid: Callable[[str, float, float], None] | None = None,
    ):
        self.statistic, t = _timing_table(profile, statistic)
        self.profile = profile
        self.num_layers = int(num_layers)
        self.roof = roof
        self.on_past_grid = on_past_grid
        self._set_overheads(profile, step_overhead_s, step_overhead_per_token_s)
        present = set(t["op"])
        self.missing = sorted(({*PER_LAYER, "lm_head", *ATTENTION_OPS}) - present)
        self.token_ops = self._fit_token_ops(t)
        # communication: measured all-reduce rows, or the roofline's, or the ring model given
        self.allreduce = self._fit_rows(t, "allreduce", "all-reduce", "tokens", "allreduce_s")
        self.comm_per_token = comm_per_token_s
        self.comm_fixed = comm_fixed_s
        self.lm_head = self._fit_rows(t, "lm_head", "LM head", "rows", "lm_head_s")
        self.attn_prefill, self.attn_prefill_ctx = self._fit_prefill(t)
        self.attn_decode = self._fit_decode(t)

    def _set_overheads(self, profile: Profile, step_overhead_s: float | None, per_token_s: float | None) -> None:
        """The per-step overhead ``a + b * T``: given, else the profile's, else (``a``) the roofline's."""
        meta_overhead = profile.metadata.get("step_overhead_s")
        self._roof_overhead = step_overhead_s is None and meta_overhead is None and self.roof is not None
        self.overhead = float(step_overhead_s if step_overhead_s is not None else (meta_overhead or 0.0))
        meta_tok = profile.metadata.get("step_overhead_per_token_s")
        self.overhead_per_token = float(per_token_s if per_token_s is not None else (meta_tok or 0.0))

    def _hook(self, family: str) -> OnPast | None:
        """The ``on_past_grid`` callback for one operator family (its name prefixes the axis)."""
        on_past_grid = self.on_past_grid
        if on_past_grid is None:
            return None
        return lambda axis, x, hi: on_past_grid(f"{family} {axis}", x, hi)

    def _fit_token_ops(self, t: pd.DataFrame) -> Interp1D | None:
        """Token ops summed on the union of their grids (each op interpolated on
        it; an op measured on fewer points follows the token shape past its own)."""
        roof = self.roof
        tok_shape = (lambda x: roof.linear_s(int(round(x))) + roof.elementwise_s(x)) if roof is not None else None
        token_rows = t[t["op"].isin(list(PER_LAYER))]
        if not len(token_rows):
            return None
        grid = np.unique(token_rows["tokens"].to_numpy())
        total = np.zeros(len(grid))
        for op, mult in PER_LAYER.items():
            r = token_rows[token_rows["op"] == op]
            if len(r):
                f = Interp1D(r["tokens"], r["time_s"], shape=tok_shape)
                total += mult * np.array([f(float(x)) for x in grid])
        return Interp1D(grid, total, shape=tok_shape, on_past=self._hook("token ops"), axis="tokens")

    def _fit_rows(self, t: pd.DataFrame, op: str, family: str, axis: str, roof_method: str) -> Interp1D | None:
        """One op measured over its ``tokens`` column (all-reduce, LM head); past the grid along the roofline's ``roof_method``."""
        roof = self.roof
        rows = t[t["op"] == op]
        if not len(rows):
            return None
        shape = (lambda x: getattr(roof, roof_method)(int(round(x)))) if roof is not None else None
        return Interp1D(rows["tokens"], rows["time_s"], shape=shape, on_past=self._hook(family), axis=axis)

    def _fit_prefill(self, t: pd.DataFrame) -> tuple[Interp1D | None, PrefillGrid | None]:
        """(pairs-axis interpolator, (batch, chunk, context) grid): the one the profile's prefill rows allow."""
        roof = self.roof
        pf = t[t["op"] == "attn_prefill"]
        if not len(pf):
            return None, None
        b, c, p = pf["batch"].to_numpy(float), pf["ctx"].to_numpy(float), pf["kv"].to_numpy(float)
        if (p > 0).any():  # chunks over an existing context: (batch, chunk, context)
            shape3 = (
                (lambda bb, cc, pp: roof.attention_prefill_s(bb * cc * (pp + (cc + 1) / 2), bb * (pp + cc)))
                if roof is not None
                else None
            )
            return None, PrefillGrid(b, c, p, pf["time_s"], shape=shape3, on_past=self._hook("prefill attention"))
        # fresh prompts only: the pairs axis
        pairs_shape = (lambda x: roof.attention_prefill_s(x, 0)) if roof is not None else None
        pairs = Interp1D(b * c * (c + 1) / 2, pf["time_s"], shape=pairs_shape, on_past=self._hook("prefill attention"), axis="pairs")
        return pairs, None

    def _fit_decode(self, t: pd.DataFrame) -> Grid2D | None:
        """Decode attention, bilinear over (decode sequences, mean context length)."""
        roof = self.roof
        dc = t[t["op"] == "attn_decode"]
        if not len(dc):
            return None
        dec_shape = (lambda bb, cc: roof.attention_decode_s(int(round(bb)), int(round(bb * cc)))) if roof is not None else None
        return Grid2D(dc["batch"], dc["ctx"], dc["time_s"], shape=dec_shape, on_past=self._hook("decode attention"), axes=("batch", "context"))

    def parts(
        self, prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens, prefill_ctx_tokens=0
    ) -> Prediction:
        L, roof = self.num_layers, self.roof
        tokens = prefill_tokens + decode_seqs
        if not tokens:
            tok = 0.0
        elif self.token_ops is not None:
            tok = L * self.token_ops(tokens)
        elif roof is not None:
            tok = roof.linear_s(tokens) + roof.elementwise_s(tokens)
        else:
            tok = 0.0
        if not prefill_tokens:
            pre = 0.0
        elif self.attn_prefill_ctx is not None:
            n = prefill_seqs or 1
            pre = L * self.attn_prefill_ctx(n, prefill_tokens / n, prefill_ctx_tokens / n)
        elif self.attn_prefill is not None:
            pre = L * self.attn_prefill(prefill_attn_pairs)
        elif roof is not None:
            pre = roof.attention_prefill_s(prefill_attn_pairs, prefill_ctx_tokens + prefill_tokens)
        else:
            pre = 0.0
        if not decode_seqs:
            dec = 0.0
        elif self.attn_decode is not None:
            dec = L * self.attn_decode(decode_seqs, decode_ctx_tokens / decode_seqs)
        elif roof is not None:
            dec = roof.attention_decode_s(decode_seqs, decode_ctx_tokens)
        else:
            dec = 0.0
        if not tokens:
            comm = 0.0
        elif self.allreduce is not None:
            comm = L * 2 * self.allreduce(tokens)
        elif roof is not None:
            comm = roof.allreduce_s(tokens)
        else:
            comm = L * (self.comm_fixed + self.comm_per_token * tokens)
        rows = prefill_seqs + decode_seqs
        if not rows:
            lm = 0.0
        elif self.lm_head is not None:
            lm = self.lm_head(rows)
        elif roof is not None:
            lm = roof.lm_head_s(rows)
        else:
            lm = 0.0
        return Prediction(tok, pre, dec, comm, lm, self.overhead_s(rows, tokens), L)

    def overhead_s(self, rows: int, tokens: int) -> float:
        """The per-step overhead of a step of ``rows`` sequences and ``tokens`` tokens (``a + b * T``)."""
        if self._roof_overhead:
            assert self.roof is not None
            return self.roof.overhead_s(rows) + self.overhead_per_token * tokens
        return self.overhead + self.overhead_per_token * tokens

    def predict(
        self, prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens, prefill_ctx_tokens=0
    ) -> float:
        return self.parts(
            prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens, prefill_ctx_tokens
        ).total


def _timing_table(profile: Profile, statistic: str | None) -> tuple[str, pd.DataFrame]:
    """(statistic, profile rows with ``time_s`` = that statistic and a ``kv`` column, 0 when absent).

    The median (default), or the 10th percentile, steadier on shared CPUs
    where load inflates medians.
    """
    statistic = statistic or profile.metadata.get("statistic", "median")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} (got {statistic!r})")
    t = profile.table.assign(time_s=profile.table[STATISTICS[statistic]])
    if "kv" not in t.columns:
        t = t.assign(kv=0)
    return statistic, t


def causal_pairs(batch: int, prompt_len: int, cached: int = 0) -> float:
    """Query-key pairs of ``batch`` causal chunks of ``prompt_len`` tokens after ``cached`` ones."""
    return batch * prompt_len * (cached + (prompt_len + 1) / 2)
