"""``latency.model=profile``: step times fitted to measured operator timings.

``latency.profile.path`` names a profile directory (or a profile shipped in
``calibration/profiles/``) written by ``servesim-calibrate measure`` or
imported from Vidur's published CSVs. The profile must have been measured
for the scenario's model shape, tensor-parallel degree and weight precision;
anything else is an error, not a silent extrapolation.

Operators a profile lacks (Vidur's published linear-layer tables have no
attention or LM head) are priced by the roofline model and named in
``describe()``, so a run always says which parts are measured. The per-step
overhead comes from the profile when the harness fitted one, else from
``latency.step_overhead_s``.
"""

from __future__ import annotations

from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape
from simulator.latency.roofline import RooflineLatency


@LATENCY_MODELS.register("profile")
class ProfileLatency(LatencyModel):
    def __init__(self, cfg, spec):
        super().__init__(cfg, spec)
        from simulator.calibration import profile as fmt
        from simulator.calibration.fit import Predictor

        if not cfg.latency.profile.path:
            raise ConfigError("latency.model=profile needs latency.profile.path (a profile directory or a shipped profile name).")
        prof = fmt.load(cfg.latency.profile.path)
        meta = dict(prof.metadata)
        self.name = prof.path.name
        meta["_missing"] = {"lm_head", "attn_prefill", "attn_decode"} - prof.ops()
        _check(meta, cfg, spec)
        overhead = meta.get("step_overhead_s")
        self.overhead_source = "profile" if overhead is not None else "latency.step_overhead_s"
        roof = RooflineLatency(cfg, spec)
        self._roof = roof
        self.predictor = Predictor(
            prof,
            num_layers=spec.num_layers,
            step_overhead_s=overhead if overhead is not None else float(cfg.latency.step_overhead_s),
            comm_per_token_s=roof._comm_tok / spec.num_layers,
            comm_fixed_s=roof._comm_fixed / spec.num_layers,
        )
        self.missing = self.predictor.missing
        self._fill_attention = "attn_prefill" in self.missing or "attn_decode" in self.missing
        self._fill_lm_head = "lm_head" in self.missing
        if self._fill_lm_head:
            lin_peak = roof._lin_flop_seq  # seconds per logit row of compute
            lm_bytes = spec.lm_head_params * spec.weight_bytes_per_param / (
                float(cfg.hardware.memory_bw_gbps) * 1e9 * float(cfg.latency.memory_efficiency) * spec.tp
            )
            self._lm_compute, self._lm_bytes = lin_peak, lm_bytes

    def step_time(self, shape: StepShape) -> float:
        ds = shape.decode_seqs
        t = self.predictor.predict(
            shape.prefill_seqs, shape.prefill_tokens, shape.prefill_attn_pairs, ds, shape.decode_ctx_tokens
        )
        if self._fill_attention:
            parts = self._roof.breakdown(shape)
            if "attn_prefill" in self.missing:
                t += max(parts["prefill_attn_compute"], parts["prefill_attn_memory"])
            if "attn_decode" in self.missing:
                t += max(parts["decode_attn_compute"], parts["decode_attn_memory"])
        if self._fill_lm_head:
            rows = shape.prefill_seqs + ds
            if rows:
                c = self._lm_compute * rows
                t += c if c > self._lm_bytes else self._lm_bytes
        return t

    def describe(self) -> str:
        filled = f"; roofline for {', '.join(self.missing)}" if self.missing else ""
        return f"profile {self.name}{filled}"


def _missing(meta: dict) -> set[str]:
    return set(meta.get("_missing", ()))


def _check(meta: dict, cfg, spec) -> None:
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
