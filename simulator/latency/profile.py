"""``latency.model=profile``: step times fitted to measured operator timings.

``latency.profile.path`` names a profile directory (or a profile shipped in
``calibration/profiles/``) written by ``servesim-calibrate measure`` or
imported from Vidur's published CSVs. The profile must have been measured
for the scenario's model shape, tensor-parallel degree and weight precision;
anything else is an error, not a silent extrapolation.

Operators a profile lacks (Vidur's published linear-layer tables have no
attention or LM head) are priced by the roofline model and named in
``describe()``, so a run always says which parts are measured. The per-step
overhead comes from the profile when the harness fitted one, else from the
roofline's (``latency.step_overhead_s`` + ``latency.step_overhead_per_seq_s``
per sequence); under multi-step scheduling (``scheduler.multi_step=N``) a
decode-only step pays an N-th of it, as with the roofline.

Past its measured grid a profile follows the roofline's shape from the last
measured point (``t(x) = t(x_last) * roof(x) / roof(x_last)``, per operator
family; see :mod:`simulator.calibration.fit`), never a straight line through
its last two points: ``describe()`` says so, and the first step of a run
that falls past the grid warns once, in one line.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape
from simulator.latency.roofline import RooflineLatency

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.specs import ModelSpec

#: breakdown() keys, in the order their values are summed into step_time().
BREAKDOWN_KEYS = ("linear", "lm_head", "attention_prefill", "attention_decode", "allreduce", "step_overhead")


@LATENCY_MODELS.register("profile")
class ProfileLatency(LatencyModel):
    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec):
        super().__init__(cfg, spec)
        from simulator.calibration import profile as fmt
        from simulator.calibration.fit import Predictor

        if not cfg.latency.profile.path:
            raise ConfigError("latency.model=profile needs latency.profile.path (a profile directory or a shipped profile name).")
        prof = fmt.load(cfg.latency.profile.path)
        meta = dict(prof.metadata)
        self.profile_name = prof.path.name
        meta["_missing"] = {"lm_head", "attn_prefill", "attn_decode"} - prof.ops()
        _check(meta, cfg, spec)
        overhead = meta.get("step_overhead_s")
        self.overhead_source = "profile" if overhead is not None else "roofline (latency.step_overhead_s)"
        self._roof = RooflineLatency(cfg, spec)
        self.warned_past_grid = False
        self._ahead = False  # pricing a decode run ahead: its past-the-grid steps may never run (ran_to says)
        self.predictor = Predictor(prof, num_layers=spec.num_layers, roof=self._roof, on_past_grid=self._past_grid)
        self.missing = self.predictor.missing
        # multi-step scheduling (scheduler.multi_step): a decode-only step pays this share of the overhead less
        self._amortised = 1.0 - 1.0 / int(cfg.scheduler.multi_step)

    def _past_grid(self, what: str, x: float, last: float) -> None:
        if self.warned_past_grid or self._ahead:
            return
        self.warned_past_grid = True
        warnings.warn(
            f"latency.model=profile: a step falls past the measured grid of profile {self.profile_name} ({what} {x:g} > "
            f"{last:g} measured); priced along the roofline's shape from the last measured point",
            stacklevel=2,
        )

    def _parts(self, shape: StepShape):
        return self.predictor.parts(
            shape.prefill_seqs, shape.prefill_tokens, shape.prefill_attn_pairs, shape.decode_seqs,
            shape.decode_ctx_tokens, shape.prefill_ctx_tokens,
        )

    def step_time(self, shape: StepShape) -> float:
        p = self._parts(shape)
        if self._amortised and not shape.prefill_tokens:
            return p.total - p.overhead * self._amortised
        return p.total

    def decode_times(self, seqs: int, ctx_tokens: int, count: int) -> list[float]:
        self._ahead = True
        try:
            return super().decode_times(seqs, ctx_tokens, count)
        finally:
            self._ahead = False

    def ran_to(self, seqs: int, ctx_tokens: int) -> None:
        if not self.warned_past_grid:  # (priced again, so the grid's check sees a step that runs)
            self.step_time(StepShape(decode_seqs=seqs, decode_ctx_tokens=ctx_tokens))

    def _paid(self, overhead: float, shape: StepShape) -> float:
        """The share of a step's overhead it pays: all of it with a prompt, less under multi-step scheduling."""
        return overhead * (1.0 - self._amortised) if not shape.prefill_tokens else overhead

    def cpu_s(self, shape: StepShape) -> float:
        rows = shape.prefill_seqs + shape.decode_seqs
        return self._paid(self.predictor.overhead_s(rows, shape.prefill_tokens + shape.decode_seqs), shape)

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """Seconds per operator family for one step; the values sum to :meth:`step_time`.

        ``linear``: the token ops of every layer (QKV, output projection, MLP,
        norms, activation, rotary, residual adds); ``lm_head``;
        ``attention_prefill`` and ``attention_decode``; ``allreduce``
        (tensor parallelism); ``step_overhead``.
        """
        p = self._parts(shape)
        return dict(zip(BREAKDOWN_KEYS, (p.token_ops, p.lm_head, p.attn_prefill, p.attn_decode, p.comm, self._paid(p.overhead, shape))))

    def describe(self) -> str:
        filled = f"; roofline for {', '.join(self.missing)}" if self.missing else ""
        return f"profile {self.profile_name}{filled}; past the grid: roofline shape"


def _missing(meta: dict) -> set[str]:
    return set(meta.get("_missing", ()))


def _check(meta: dict, cfg: ScenarioConfig, spec: ModelSpec) -> None:
    from simulator.calibration.profile import SHAPE_KEYS

    path = cfg.latency.profile.path
    model = meta.get("model", {})
    keys = [k for k in SHAPE_KEYS if not (k == "vocab_size" and "lm_head" in _missing(meta))]
    diffs = [
        f"{k} {model.get(k)} vs {getattr(cfg.model, k)}"
        for k in keys
        if model.get(k) is not None and int(model[k]) != int(getattr(cfg.model, k))
    ]
    if diffs:
        raise ConfigError(
            f"latency.profile.path={path} was measured for model {model.get('name', '?')}, whose shape differs "
            f"from model={cfg.model.name} ({'; '.join(diffs)}); measure this model with servesim-calibrate."
        )
    if int(meta.get("tp", 1)) != spec.tp:
        raise ConfigError(
            f"latency.profile.path={path} was measured at TP {meta.get('tp', 1)} but the scenario runs "
            f"cluster.tp={spec.tp}; use a profile measured at that TP."
        )
    dtype = meta.get("dtype")
    if dtype is not None and dtype != cfg.model.weight_dtype and not {dtype, cfg.model.weight_dtype} <= {"bf16", "fp16"}:
        raise ConfigError(
            f"latency.profile.path={path} was measured with {dtype} weights but model.weight_dtype="
            f"{cfg.model.weight_dtype}; use a profile measured at that precision (or latency.model=roofline)."
        )
