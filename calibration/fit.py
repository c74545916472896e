"""Fit a step-time predictor to a profile.

The predictor prices an engine iteration the way the decoder stack runs it:

    step = num_layers x [ token_ops(T) + attn_prefill(pairs) + attn_decode(b, c) + comm(T) ]
           + lm_head(rows) + step_overhead

* ``token_ops(T)``: the per-layer operators whose cost depends on the number
  of rows T = prefill tokens + decode sequences (QKV, output projection, MLP
  gate/up and down, two RMSNorms, activation, rotary, two residual adds),
  summed on the measured token grid and interpolated piecewise-linearly
  (linear extrapolation past the largest measured T, the first value below
  the smallest).
* ``attn_prefill``: interpolated over causal query-key *pairs*
  (sum c (p + (c+1)/2) over prefill chunks), which is what prefill attention
  work scales with; the grid of (batch, prompt length) points is folded onto
  that axis.
* ``attn_decode``: bilinear over (decode sequences, mean context length).
* ``comm``: two all-reduces per layer when TP > 1: measured rows when the
  profile has them, else the ring cost over the link given to the predictor.
* ``step_overhead``: the per-step cost outside the operators, ``a + b * T``
  (launches, sampling and Python per step; embedding lookup, splits and
  concatenations per token), fitted on whole decoder-stack steps.

Everything is pure Python arithmetic over small sorted lists (``bisect``),
so a prediction costs a few microseconds; the simulator calls it every step.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .profile import ATTENTION_OPS, Profile

#: Timing statistics a predictor can be fitted to, and their profile column.
STATISTICS = {"median": "time_s", "p10": "p10_s"}

#: How many times each token op runs per layer.
PER_LAYER = {"qkv": 1, "attn_out": 1, "mlp_gate_up": 1, "mlp_down": 1, "norm": 2, "act": 1, "rope": 1, "add": 2}


class Interp1D:
    """Piecewise-linear y(x) on sorted points; flat below, linear beyond the ends."""

    __slots__ = ("xs", "ys", "_n", "_floor")

    def __init__(self, xs, ys):
        med = pd.Series(np.asarray(ys, dtype=float)).groupby(np.asarray(xs, dtype=float)).median()  # repeated x: median
        self.xs = med.index.tolist()
        self.ys = med.tolist()
        self._n = len(self.xs)
        if self._n == 0:
            raise ValueError("an interpolator needs at least one point")
        self._floor = min(self.ys)

    def __call__(self, x: float) -> float:
        xs, ys, n = self.xs, self.ys, self._n
        if n == 1 or x <= xs[0]:
            return ys[0]
        i = bisect_right(xs, x)
        if i >= n:
            i = n - 1  # extrapolate along the last segment
        x0, x1 = xs[i - 1], xs[i]
        y0, y1 = ys[i - 1], ys[i]
        y = y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        return y if y > self._floor else self._floor  # noisy tails never predict less than the fastest point


class Grid2D:
    """Bilinear z(a, b) on a (possibly incomplete) rectangular grid.

    Missing grid cells are filled by interpolating along b within each a row,
    so grids that skip large corners (e.g. huge batch x long context) work.
    """

    def __init__(self, a, b, z):
        a = np.asarray(a, dtype=float)
        b = np.asarray(b, dtype=float)
        z = np.asarray(z, dtype=float)
        self.a_vals = np.unique(a).tolist()
        self.rows = [Interp1D(b[a == av], z[a == av]) for av in self.a_vals]

    def __call__(self, a: float, b: float) -> float:
        av, rows = self.a_vals, self.rows
        if len(av) == 1 or a <= av[0]:
            lo = hi = 0
            w = 0.0
        else:
            i = bisect_right(av, a)
            if i >= len(av):
                i = len(av) - 1
            lo, hi = i - 1, i
            w = (a - av[lo]) / (av[hi] - av[lo])
        z0 = rows[lo](b)
        if w == 0.0:
            return z0
        z = z0 + (rows[hi](b) - z0) * w
        return z if z > 0 else z0


@dataclass
class Prediction:
    token_ops: float
    attn_prefill: float
    attn_decode: float
    comm: float
    lm_head: float
    overhead: float  # fixed and per-token parts together
    num_layers: int

    @property
    def total(self) -> float:
        per_layer = self.token_ops + self.attn_prefill + self.attn_decode + self.comm
        return self.num_layers * per_layer + self.lm_head + self.overhead


class Predictor:
    """Step time from a profile. ``missing`` lists ops the profile lacks."""

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
    ):
        # Which timing column to fit: the median (default), or the 10th
        # percentile, steadier on shared CPUs where load inflates medians.
        statistic = statistic or profile.metadata.get("statistic", "median")
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {', '.join(STATISTICS)} (got {statistic!r})")
        self.statistic = statistic
        t = profile.table.assign(time_s=profile.table[STATISTICS[statistic]])
        self.profile = profile
        self.num_layers = int(num_layers)
        meta_overhead = profile.metadata.get("step_overhead_s")
        self.overhead = float(step_overhead_s if step_overhead_s is not None else (meta_overhead or 0.0))
        meta_tok = profile.metadata.get("step_overhead_per_token_s")
        self.overhead_per_token = float(
            step_overhead_per_token_s if step_overhead_per_token_s is not None else (meta_tok or 0.0)
        )
        present = set(t["op"])
        self.missing = sorted(({*PER_LAYER, "lm_head", *ATTENTION_OPS}) - present)

        # token ops summed on the union of their grids
        token_rows = t[t["op"].isin(list(PER_LAYER))]
        self.token_ops = None
        if len(token_rows):
            grid = np.unique(token_rows["tokens"].to_numpy())
            total = np.zeros(len(grid))
            for op, mult in PER_LAYER.items():
                r = token_rows[token_rows["op"] == op]
                if len(r):
                    f = Interp1D(r["tokens"], r["time_s"])
                    total += mult * np.array([f(float(x)) for x in grid])
            self.token_ops = Interp1D(grid, total)

        # communication: measured all-reduce rows, or the ring model given
        ar = t[t["op"] == "allreduce"]
        self.allreduce = Interp1D(ar["tokens"], ar["time_s"]) if len(ar) else None
        self.comm_per_token = comm_per_token_s
        self.comm_fixed = comm_fixed_s

        lm = t[t["op"] == "lm_head"]
        self.lm_head = Interp1D(lm["tokens"], lm["time_s"]) if len(lm) else None

        pf = t[t["op"] == "attn_prefill"]
        if len(pf):
            b, L = pf["batch"].to_numpy(float), pf["ctx"].to_numpy(float)
            self.attn_prefill = Interp1D(b * L * (L + 1) / 2, pf["time_s"])
        else:
            self.attn_prefill = None

        dc = t[t["op"] == "attn_decode"]
        self.attn_decode = Grid2D(dc["batch"], dc["ctx"], dc["time_s"]) if len(dc) else None

    def parts(self, prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens) -> Prediction:
        tokens = prefill_tokens + decode_seqs
        tok = self.token_ops(tokens) if (self.token_ops is not None and tokens) else 0.0
        pre = self.attn_prefill(prefill_attn_pairs) if (self.attn_prefill is not None and prefill_tokens) else 0.0
        dec = (
            self.attn_decode(decode_seqs, decode_ctx_tokens / decode_seqs)
            if (self.attn_decode is not None and decode_seqs)
            else 0.0
        )
        if self.allreduce is not None:
            comm = 2 * self.allreduce(tokens) if tokens else 0.0
        else:
            comm = (self.comm_fixed + self.comm_per_token * tokens) if tokens else 0.0
        rows = prefill_seqs + decode_seqs
        lm = self.lm_head(rows) if (self.lm_head is not None and rows) else 0.0
        return Prediction(tok, pre, dec, comm, lm, self.overhead + self.overhead_per_token * tokens, self.num_layers)

    def predict(self, prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens) -> float:
        return self.parts(prefill_seqs, prefill_tokens, prefill_attn_pairs, decode_seqs, decode_ctx_tokens).total


def causal_pairs(batch: int, prompt_len: int, cached: int = 0) -> float:
    """Query-key pairs of ``batch`` causal chunks of ``prompt_len`` tokens after ``cached`` ones."""
    return batch * prompt_len * (cached + (prompt_len + 1) / 2)
