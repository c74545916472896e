"""Profiles, the fitted predictor, the Vidur importer and latency.model=profile.

None of these need torch: profiles are data, the predictor is numpy.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.calibration import profile as fmt
from simulator.calibration.fit import PER_LAYER, Grid2D, Interp1D, Predictor, causal_pairs
from simulator.calibration.vidur import VidurFormatError, import_vidur
from tests.conftest import SHARED

VIDUR = SHARED / "reference" / "vidur_profiles" / "compute"
needs_vidur = pytest.mark.skipif(not VIDUR.is_dir(), reason="../shared/reference/vidur_profiles is not beside the project")

TINY_SHAPE = {"hidden_size": 256, "num_attention_heads": 4, "num_kv_heads": 2, "head_dim": 64, "intermediate_size": 688, "vocab_size": 2048}
TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def synthetic(per_token=1e-6, fixed=2e-5, pair=1e-9, kv=3e-9, lm=5e-7, overhead=1e-3, tp=1, dtype="fp32") -> fmt.Profile:
    """A profile whose ground truth is known: linear in tokens, pairs and context."""
    rows = []
    for op in PER_LAYER:
        rows += [(op, t, 0, 0, fixed + per_token * t) for t in TOKENS]
    rows += [("lm_head", r, 0, 0, fixed + lm * r) for r in (1, 2, 4, 8, 16, 32, 64)]
    for b in (1, 2, 4):
        for L in (16, 64, 256):
            rows.append(("attn_prefill", b * L, b, L, fixed + pair * causal_pairs(b, L)))
    for b in (1, 4, 16):
        for c in (16, 256, 1024):
            rows.append(("attn_decode", b, b, c, fixed + kv * b * c))
    table = pd.DataFrame(rows, columns=["op", "tokens", "batch", "ctx", "time_s"])
    table["p10_s"], table["p90_s"], table["repeats"] = table["time_s"] * 0.95, table["time_s"] * 1.05, 5
    meta = {"source": "test", "device": "synthetic", "device_kind": "cpu", "dtype": dtype, "tp": tp,
            "model": {"name": "tiny-llama", **TINY_SHAPE}, "step_overhead_s": overhead}
    return fmt.Profile(table, meta)


def test_interpolators_are_exact_on_lines_and_sane_outside():
    f = Interp1D([1, 2, 4, 8], [3, 5, 9, 17])  # y = 2x + 1
    assert f(3) == pytest.approx(7) and f(6) == pytest.approx(13)
    assert f(16) == pytest.approx(33)  # linear beyond the last point
    assert f(0.5) == 3  # flat below the first
    g = Grid2D([1, 1, 2, 2, 4], [10, 20, 10, 20, 10], [1, 2, 2, 4, 4])  # z = a*b/10, (4, 20) missing
    assert g(1.5, 15) == pytest.approx(2.25)
    assert g(4, 20) == pytest.approx(4)  # missing corner: row 4 has one point, flat


def test_predictor_recovers_the_ground_truth():
    p = synthetic()
    pred = Predictor(p, num_layers=4)
    assert pred.missing == []
    per_token, fixed, pair, kv, lm, overhead = 1e-6, 2e-5, 1e-9, 3e-9, 5e-7, 1e-3
    mult = sum(PER_LAYER.values())
    # a mixed step: 1 prefill of 100 tokens + 8 decodes at context 300
    T = 100 + 8
    expected = 4 * (mult * (fixed + per_token * T) + (fixed + pair * causal_pairs(1, 100)) + (fixed + kv * 8 * 300))
    expected += fixed + lm * 9 + overhead
    got = pred.predict(1, 100, causal_pairs(1, 100), 8, 8 * 300)
    assert got == pytest.approx(expected, rel=1e-9)


def test_profile_round_trip_and_validation(tmp_path):
    p = synthetic()
    p.save(tmp_path / "prof")
    back = fmt.load(str(tmp_path / "prof"))
    pd.testing.assert_frame_equal(back.table, fmt.normalise(p.table))
    assert back.metadata["format"] == fmt.FORMAT and back.metadata["model"]["name"] == "tiny-llama"
    bad = p.table.copy()
    bad.loc[0, "op"] = "warp_drive"
    with pytest.raises(ValueError, match="unknown ops: warp_drive"):
        fmt.normalise(bad)
    with pytest.raises(ValueError, match="lacks columns: time_s"):
        fmt.normalise(p.table.drop(columns=["time_s"]))


def test_profile_latency_drives_a_simulation(tmp_path):
    synthetic().save(tmp_path / "prof")
    base = ["model=tiny-llama", "hardware=cpu", "latency=roofline", "latency.model=profile",
            f"latency.profile.path={tmp_path / 'prof'}", "workload.num_requests=100", "workload.rate=5",
            "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256", "output.charts=false"]
    r = simulator.run(base)
    assert r.summary["requests"]["completed"] == 100
    assert r.summary["scenario"]["latency_model"] == "profile prof"
    # Every step's duration is the predictor's price of that step.
    pred = Predictor(fmt.load(str(tmp_path / "prof")), num_layers=4)
    st = r.steps[r.steps["decode_seqs"] > 0].head(50)
    for row in st.itertuples():
        expected = pred.predict(0, 0, 0, row.decode_seqs, row.decode_ctx_tokens)
        assert row.duration_s == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    "override,fragment",
    [
        ("model=llama-3.1-8b", "was measured for model tiny-llama, whose shape differs"),
        ("cluster.tp=2", "was measured at TP 1 but the scenario runs cluster.tp=2"),
        ("model.weight_dtype=bf16", "was measured with fp32 weights but model.weight_dtype=bf16"),
    ],
)
def test_profile_mismatches_are_config_errors(tmp_path, override, fragment):
    synthetic().save(tmp_path / "prof")
    ov = ["model=tiny-llama", "hardware=cpu", "latency.model=profile", f"latency.profile.path={tmp_path / 'prof'}",
          "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256", override]
    if override == "model=llama-3.1-8b":
        ov = ["hardware=h100-sxm", *ov[2:], "model.weight_dtype=fp32"]
    with pytest.raises(simulator.ConfigError, match=fragment):
        simulator.load_config(ov)


def test_missing_or_unknown_profile_path_is_a_config_error(tmp_path):
    with pytest.raises(simulator.ConfigError, match="needs latency.profile.path"):
        simulator.load_config(["latency.model=profile"])
    with pytest.raises(simulator.ConfigError, match="is neither a profile directory"):
        simulator.load_config(["latency.model=profile", f"latency.profile.path={tmp_path / 'nope'}"])


# --- Vidur's published real-GPU profiles ------------------------------------------


@needs_vidur
def test_vidur_import_maps_every_linear_op():
    p = import_vidur(VIDUR / "h100" / "meta-llama" / "Llama-2-7b-hf", tp=1)
    assert p.ops() == set(PER_LAYER)
    assert p.metadata["model"]["hidden_size"] == 4096 and p.metadata["model"]["intermediate_size"] == 11008
    raw = pd.read_csv(VIDUR / "h100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv")
    row = raw[(raw["num_tensor_parallel_workers"] == 1)].iloc[0]
    qkv = p.table[(p.table["op"] == "qkv") & (p.table["tokens"] == row["num_tokens"])]
    assert qkv["time_s"].median() * 1e3 == pytest.approx(
        raw[(raw["num_tensor_parallel_workers"] == 1) & (raw["num_tokens"] == row["num_tokens"])]["time_stats.attn_pre_proj.median"].median()
    )
    with pytest.raises(VidurFormatError, match="no rows for TP 3"):
        import_vidur(VIDUR / "h100" / "meta-llama" / "Llama-2-7b-hf", tp=3)


@needs_vidur
def test_imported_vidur_profile_runs_with_roofline_attention(tmp_path):
    import_vidur(VIDUR / "h100" / "meta-llama" / "Llama-2-7b-hf", tp=1).save(tmp_path / "h100-l27")
    r = simulator.run(["model=llama-2-7b", "hardware=h100-sxm", "latency.model=profile", f"latency.profile.path={tmp_path / 'h100-l27'}",
                       "workload.prompt_tokens.max=2048", "workload.output_tokens.max=1024", "workload.num_requests=200",
                       "output.charts=false"])
    assert r.summary["requests"]["completed"] == 200
    assert "roofline for attn_decode, attn_prefill, lm_head" in r.summary["scenario"]["latency_model"]


CASES = [  # (gpu, Vidur model dir, hardware, catalog model, TP)
    ("h100", "Llama-2-7b-hf", "h100-sxm", "llama-2-7b", 1),
    ("a100", "Llama-2-7b-hf", "a100-80gb", "llama-2-7b", 1),
    ("a100", "Meta-Llama-3-8B", "a100-80gb", "llama-3.1-8b", 1),
    ("h100", "Llama-2-70b-hf", "h100-sxm", "llama-2-70b", 4),
]


@needs_vidur
@pytest.mark.parametrize("gpu,vmodel,hw,model,tp", CASES, ids=[f"{c[0]}-{c[1]}-tp{c[4]}" for c in CASES])
def test_roofline_linear_layers_against_real_gpu_timings(gpu, vmodel, hw, model, tp):
    """Fidelity we can state: the roofline's linear-layer time per step versus
    Vidur's torch measurements on real GPUs, from 1 to 4096 tokens.

    Measured: the roofline is optimistic by 5-20% on most token counts and by
    up to ~45% near the compute/memory knee (~256 tokens), where real GEMMs
    reach neither roof. The bounds pin that accuracy against regressions."""
    from simulator.latency.roofline import RooflineLatency
    from simulator.specs import ModelSpec

    meas = Predictor(import_vidur(VIDUR / gpu / "meta-llama" / vmodel, tp=tp), num_layers=1)
    cfg = simulator.load_config([f"hardware={hw}", f"model={model}", f"cluster.tp={tp}", "workload.prompt_tokens.max=2048",
                                 "workload.output_tokens.max=1024"])
    spec = ModelSpec.from_config(cfg.model, tp)
    roof = RooflineLatency(cfg, spec)
    layer_bytes = spec.layer_linear_params * spec.num_layers * spec.weight_bytes_per_param / (
        cfg.hardware.memory_bw_gbps * 1e9 * cfg.latency.memory_efficiency * tp)
    errors = []
    for T in (1, 4, 16, 64, 256, 1024, 2048, 4096):
        measured = meas.token_ops(T) * spec.num_layers
        predicted = max(roof._lin_flop_tok * T, layer_bytes + roof._lin_mem_tok * T)
        errors.append(predicted / measured - 1)
    errors = np.asarray(errors)
    assert np.median(np.abs(errors)) <= 0.25
    assert np.abs(errors).max() <= 0.5
    assert (errors < 0.05).all()  # optimistic, never pessimistic beyond noise
    assert not math.isnan(errors.sum())
