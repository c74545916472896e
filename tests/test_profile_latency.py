"""Profiles, the fitted predictor, the Vidur importer and latency.model=profile.

None of these need torch: profiles are data, the predictor is numpy.
"""

from __future__ import annotations

import warnings

import pandas as pd
import pytest

import simulator
from simulator.calibration import profile as fmt
from simulator.calibration.fit import PER_LAYER, Grid2D, Interp1D, Predictor, causal_pairs
from simulator.calibration.vidur import VidurFormatError, import_vidur
from simulator.latency.base import StepShape
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
    assert f(16) == pytest.approx(17 * 16 / 8)  # past the last point: proportional to x, never a line
    assert f(0.5) == 3  # flat below the first
    shaped = Interp1D([1, 2, 4, 8], [3, 5, 9, 17], shape=lambda x: 2 * x + 1)
    assert shaped(16) == pytest.approx(33)  # past the last point along the given shape
    down = Interp1D([1, 2, 4, 8], [3, 5, 9, 8.5])  # a noisy last segment sloping down
    assert down(64) == pytest.approx(8.5 * 8)  # grows with the work, not down to the floor
    g = Grid2D([1, 1, 2, 2, 4], [10, 20, 10, 20, 10], [1, 2, 2, 4, 4])  # z = a*b/10, (4, 20) missing
    assert g(1.5, 15) == pytest.approx(2.25)
    assert g(4, 20) == pytest.approx(8)  # missing corner: row 4 has one point, scaled along a*b
    assert g(8, 20) == pytest.approx(16)  # past the last row along a*b


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


def test_times_may_be_zero_but_not_negative_nan_or_text():
    t = synthetic().table
    zero = t.copy()
    zero.loc[0, ["time_s", "p10_s", "p90_s"]] = 0.0  # an op that takes no time (a no-op reshape)
    assert (fmt.normalise(zero)["time_s"] == 0).sum() == 1
    neg = t.copy()
    neg.loc[0, "time_s"] = -1e-6
    with pytest.raises(ValueError, match=r"must be numbers >= 0: 1 rows are negative"):
        fmt.normalise(neg)
    nan = t.copy()
    nan.loc[0, "time_s"] = float("nan")
    with pytest.raises(ValueError, match=r"1 rows have no time_s \(NaN\)"):
        fmt.normalise(nan)
    text = t.astype({"time_s": object})
    text.loc[0, "time_s"] = "fast"
    with pytest.raises(ValueError, match="time_s must be numbers; got 'fast'"):
        fmt.normalise(text)


def test_the_kv_column_is_optional(tmp_path):
    old = fmt.load("cpu-tiny-llama")  # written before the column existed
    assert "kv" not in old.table.columns
    pred = Predictor(old, num_layers=4)
    assert pred.attn_prefill is not None and pred.attn_prefill_ctx is None  # the pairs axis, as before
    with_kv = synthetic().table.assign(kv=0)
    with_kv.loc[with_kv["op"] == "attn_prefill", "kv"] = 64
    fmt.Profile(with_kv, synthetic().metadata).save(tmp_path / "kv")
    back = fmt.load(str(tmp_path / "kv"))
    assert (back.table.loc[back.table["op"] == "attn_prefill", "kv"] == 64).all()
    assert Predictor(back, num_layers=4).attn_prefill_ctx is not None


def test_breakdown_sums_to_step_time(tmp_path):
    synthetic().save(tmp_path / "prof")
    cfg = simulator.load_config(["model=tiny-llama", "hardware=cpu", "latency.model=profile",
                                 f"latency.profile.path={tmp_path / 'prof'}", "workload.prompt_tokens.max=1024",
                                 "workload.output_tokens.max=256"])
    from simulator.latency import build_latency_model
    from simulator.specs import ModelSpec

    lm = build_latency_model(cfg, ModelSpec.from_config(cfg.model))
    shapes = [StepShape(), StepShape(1, 100, causal_pairs(1, 100), 0, 0, 0), StepShape(0, 0, 0, 0, 8, 8 * 300),
              StepShape(2, 300, causal_pairs(1, 100, 50) + causal_pairs(1, 200), 50, 8, 2400),
              StepShape(1, 4000, causal_pairs(1, 4000), 0, 64, 64 * 5000)]  # the last one past the grid
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sh in shapes:
            parts = lm.breakdown(sh)
            assert set(parts) == {"linear", "lm_head", "attention_prefill", "attention_decode", "allreduce", "step_overhead"}
            assert sum(parts.values()) == lm.step_time(sh)  # exactly
            assert all(v >= 0 for v in parts.values())
    mixed = lm.breakdown(shapes[3])
    assert mixed["attention_prefill"] > 0 and mixed["attention_decode"] > 0 and mixed["step_overhead"] == 1e-3


def test_profile_latency_drives_a_simulation(tmp_path):
    synthetic().save(tmp_path / "prof")
    base = ["model=tiny-llama", "hardware=cpu", "latency=roofline", "latency.model=profile",
            f"latency.profile.path={tmp_path / 'prof'}", "workload.num_requests=100", "workload.rate=5",
            "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256", "output.charts=false"]
    r = simulator.run(base)
    assert r.summary["requests"]["completed"] == 100
    assert r.summary["scenario"]["latency_model"] == "profile prof; past the grid: roofline shape"
    # Every step's duration is the predictor's price of that step.
    from simulator.latency.roofline import RooflineLatency
    from simulator.specs import ModelSpec

    cfg = simulator.load_config(base)
    pred = Predictor(fmt.load(str(tmp_path / "prof")), num_layers=4, roof=RooflineLatency(cfg, ModelSpec.from_config(cfg.model)))
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


def _profile_model(tmp_path, vidur_dir, name, hardware, model, **kw):
    """An imported Vidur profile saved under tmp_path, and the ProfileLatency of a scenario using it."""
    from simulator.latency import build_latency_model
    from simulator.specs import ModelSpec

    import_vidur(VIDUR / vidur_dir, **kw).save(tmp_path / name)
    cfg = simulator.load_config([f"hardware={hardware}", f"model={model}", "latency.model=profile",
                                 f"latency.profile.path={tmp_path / name}", "workload.prompt_tokens.max=2048",
                                 "workload.output_tokens.max=1024"])
    return build_latency_model(cfg, ModelSpec.from_config(cfg.model))


def _prefill(chunks: list[tuple[int, int]]) -> StepShape:
    """A prefill-only step of (chunk, cached context) pieces."""
    return StepShape(len(chunks), sum(c for c, _ in chunks), sum(causal_pairs(1, c, p) for c, p in chunks),
                     sum(p for _, p in chunks))


@needs_vidur
def test_past_the_grid_the_profile_never_goes_below_physics(tmp_path):
    """Bug (a): Vidur's A100 Llama-2-7B grid ends at 4,096 tokens and its last
    segment slopes down; linear extrapolation priced a 49,152-token prefill
    step at 32 ms, below the 2.1 s compute floor."""
    lm = _profile_model(tmp_path, "a100/meta-llama/Llama-2-7b-hf", "a100-l27", "a100-80gb", "llama-2-7b")
    assert lm.describe().endswith("; past the grid: roofline shape")
    floor = 2 * 6.7e9 * 49152 / 312e12
    with pytest.warns(UserWarning, match=r"past the measured grid of profile a100-l27 \(token ops tokens 49152 > 4096"):
        big = lm.step_time(_prefill([(4096, 0)] * 12))
        lm.step_time(_prefill([(4096, 0)] * 12))
    assert big >= floor
    # One warning per run, however many steps fall past the grid.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lm.step_time(_prefill([(8192, 0)] * 3))
    assert not caught
    # Past the grid, the token ops follow the roofline's shape from the last measured point.
    roof = lm._roof
    def lin(T):
        return lm.breakdown(StepShape(1, T, causal_pairs(1, T), 0, 0, 0))["linear"]
    def shape(T):
        return roof.linear_s(T) + roof.elementwise_s(T)
    for T in (6000, 16384, 49152):
        assert lin(T) / lin(4096) == pytest.approx(shape(T) / shape(4096), rel=1e-9)


A30 = "a30/Qwen/Qwen-2-7B"


def _a30_table(chunk: int, kv: int) -> float:
    """Seconds per layer of the A30 table's prefill row(s) at (chunk, kv_cache_size): kernel + KV-cache write."""
    raw = pd.read_csv(VIDUR / A30 / "attention.csv")
    r = raw[raw["is_prefill"] & (raw["prefill_chunk_size"] == chunk) & (raw["kv_cache_size"] == kv)]
    assert len(r), (chunk, kv)
    t = r["time_stats.attn_prefill.median"] + r["time_stats.attn_kv_cache_save.median"]
    return float(t.median()) / 1e3


@needs_vidur
def test_prefill_attention_is_keyed_on_chunk_and_context(tmp_path):
    """Bug (b): the importer dropped kv_cache_size, so every chunk length
    collapsed to one value whatever its context (a fresh 395-token prompt
    was priced 17x too high)."""
    lm = _profile_model(tmp_path, A30, "a30-qwen2", "a30", "qwen2-7b")
    layers = 28

    def attn(chunks):
        return lm.breakdown(_prefill(chunks))["attention_prefill"] / layers

    # On the table's own rows: its values.
    for chunk, kv in ((64, 0), (64, 4032), (256, 1024), (512, 2048), (1024, 3072), (128, 3968), (2048, 2048)):
        assert attn([(chunk, kv)]) == pytest.approx(_a30_table(chunk, kv), rel=1e-9), (chunk, kv)
    # Context matters: the same chunk over 3,000 cached tokens costs several times a fresh one.
    assert attn([(512, 3008)]) > 3 * attn([(512, 0)])
    # Between rows, within interpolation error of the neighbours.
    mid = attn([(512, 1536)])
    lo, hi = _a30_table(512, 1024), _a30_table(512, 2048)
    assert min(lo, hi) <= mid <= max(lo, hi)
    # A fresh 395-token prompt is priced from the kv=0 rows at chunks 384 and 416.
    fresh = attn([(395, 0)])
    a, b = _a30_table(384, 0), _a30_table(416, 0)
    assert fresh == pytest.approx(a + (b - a) * (395 - 384) / (416 - 384), rel=1e-9)
    # The table has batch 1 only: a batch of 3 is past the grid and follows the roofline's shape.
    roof = lm._roof
    def roof_attn(n, c, p):
        return roof.attention_prefill_s(n * causal_pairs(1, c, p), n * (c + p))
    with pytest.warns(UserWarning, match=r"\(prefill attention batch 3 > 1 measured\)"):
        three = attn([(256, 1024)] * 3)
    assert three == pytest.approx(attn([(256, 1024)]) * roof_attn(3, 256, 1024) / roof_attn(1, 256, 1024), rel=1e-9)


@needs_vidur
def test_the_a30_qwen2_table_imports_and_drives_a_simulation(tmp_path):
    """Bug (c): the one real attention table failed to import on its 470
    empty mlp.csv cells."""
    p = import_vidur(VIDUR / A30, tp=1)
    assert p.ops() == {*PER_LAYER, "attn_prefill", "attn_decode"}
    assert "470 empty cells skipped" in p.metadata["notes"]
    skipped = p.metadata["skipped_cells"]
    assert {op: e["cells"] for op, e in skipped.items()} == {"attn_pre_proj": 260, "attn_post_proj": 210}
    assert len(skipped["attn_pre_proj"]["num_tokens"]) == 52 and len(skipped["attn_post_proj"]["num_tokens"]) == 42
    assert (p.table["time_s"] >= 0).all() and not p.table["time_s"].isna().any()
    assert p.metadata["model"]["hidden_size"] == 3584 and p.metadata["model"]["num_kv_heads"] == 4
    p.save(tmp_path / "a30-qwen2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a long decode may pass the 4,032-token context grid
        r = simulator.run(["hardware=a30", "model=qwen2-7b", "latency.model=profile",
                           f"latency.profile.path={tmp_path / 'a30-qwen2'}", "workload.num_requests=300",
                           "workload.rate=4", "workload.prompt_tokens.max=512", "workload.output_tokens.max=256",
                           "output.charts=false"])
    assert r.summary["requests"]["completed"] == 300
    assert r.summary["scenario"]["latency_model"] == "profile a30-qwen2; roofline for lm_head; past the grid: roofline shape"
    decode = r.steps[(r.steps["decode_seqs"] > 0) & (r.steps["prefill_tokens"] == 0)]
    # A decode step reads ~15 GB of weights at 933 GB/s: the measured ops must say so.
    assert decode["duration_s"].median() > 0.015


def test_a_decode_run_warns_past_the_grid_only_for_steps_that_run():
    """A decode run prices its steps ahead (decode_times) and a wake-up may drop the later ones: the
    past-the-grid warning waits for ran_to, which the run calls with the longest step it started. The
    shipped CPU profile measures decode contexts up to 1,024 per sequence."""
    from simulator.latency import build_latency_model
    from simulator.specs import ModelSpec

    def model():
        cfg = simulator.load_config(["model=tiny-llama", "hardware=cpu", "latency.model=profile",
                                     "latency.profile.path=cpu-tiny-llama", "workload.prompt_tokens.max=1024",
                                     "workload.output_tokens.max=256"])  # fmt: skip
        return build_latency_model(cfg, ModelSpec.from_config(cfg.model))

    lm = model()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ahead = lm.decode_times(8, 7_000, 400)  # 875 per sequence at first, past 1,024 from step 144 on
        lm.ran_to(8, 7_000 + 100 * 8)  # the run started 101 steps: all within the grid
    assert not caught
    with pytest.warns(UserWarning, match=r"past the measured grid of profile cpu-tiny-llama \(decode attention context"):
        lm.ran_to(8, 7_000 + 200 * 8)  # ... 201 steps: the last ones past it
    other = model()
    with pytest.warns(UserWarning, match="past the measured grid"):  # a step the loop prices itself warns at once
        assert ahead == [other.decode_step_time(8, 7_000 + i * 8) for i in range(400)]  # (and priced ahead alike)
