"""The energy model (simulator/metrics/energy.py, docs/energy.md): power that follows load, idle power
for billed time, the section recomputed independently from steps.parquet, and bad settings refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.errors import ConfigError
from simulator.metrics import energy as energy_mod
from simulator.metrics.headline import headline
from simulator.specs import ModelSpec

BASE = ["output.console=false", "output.charts=false", "seed=3"]


def run(*overrides: str):
    return simulator.run([*BASE, *overrides])


def test_energy_rises_with_load():
    """Ten times the request rate on the same replica over about the same time: more kWh, more watts."""
    light = run("workload.rate=2", "workload.num_requests=40").summary
    heavy = run("workload.rate=20", "workload.num_requests=400").summary
    # comparable windows (both ~20 s of arrivals), so kWh compare like for like
    assert heavy["window"]["end_s"] == pytest.approx(light["window"]["end_s"], rel=0.35)
    el, eh = light["energy"], heavy["energy"]
    assert eh["gpu_kwh"] > 1.5 * el["gpu_kwh"]
    assert eh["mean_power_w_per_gpu"] > el["mean_power_w_per_gpu"]
    assert eh["facility_kwh"] == pytest.approx(eh["gpu_kwh"] * eh["pue"])
    assert eh["usd"] == pytest.approx(eh["facility_kwh"] * eh["usd_per_kwh"])
    idle, tdp = 70.0, 700.0  # h100-sxm, the default hardware
    assert idle < el["mean_power_w_per_gpu"] < eh["mean_power_w_per_gpu"] < tdp


def test_idle_heavy_run_draws_about_idle_power():
    """A request every 20 s on an H100: the GPU steps a small share of the time, so its mean draw is near idle."""
    short = (
        "workload.output_tokens.dist=fixed",
        "workload.output_tokens.value=16",
        "workload.prompt_tokens.dist=fixed",
        "workload.prompt_tokens.value=256",
    )
    s = run("workload.rate=0.05", "workload.num_requests=4", *short).summary
    e = s["energy"]
    idle, tdp = e["by_group"]["mixed"]["idle_w"], e["by_group"]["mixed"]["tdp_w"]
    busy = s["engine"]["busy_fraction"]
    assert busy < 0.02
    # above idle by at most the dynamic range over the busy share (u <= 1)
    assert idle < e["mean_power_w_per_gpu"] <= idle + busy * (tdp - idle)


def test_batching_lowers_joules_per_token():
    """The same saturating load served one sequence at a time and in batches of 64: batching serves the
    tokens in a fraction of the time at a similar draw, so each token costs fewer joules."""
    over = ("workload.rate=40", "workload.num_requests=120")
    one = run(*over, "scheduler.max_batch_size=1").summary
    many = run(*over, "scheduler.max_batch_size=64").summary
    assert many["throughput"]["total_tokens_per_s"] > 3 * one["throughput"]["total_tokens_per_s"]
    assert many["energy"]["joules_per_token"] < 0.5 * one["energy"]["joules_per_token"]
    assert headline(many)["joules_per_token"] == pytest.approx(many["energy"]["joules_per_token"])


def _recompute_kwh(cfg, steps: pd.DataFrame, billed_gpu_hours: float) -> float:
    """GPU kWh from steps.parquet and the billed hours, written out from docs/energy.md's formula."""
    hw, spec = cfg.hardware, ModelSpec.from_config(cfg.model, cfg.cluster.tp)
    peak = hw.bf16_tflops * 1e12 * hw.gemm.compute_efficiency
    attn = hw.bf16_tflops * 1e12 * hw.attention.efficiency
    bw = hw.memory_bw_gbps * 1e9 * hw.gemm.memory_efficiency
    d = steps["duration_s"].to_numpy(float)
    pt, ps = steps["prefill_tokens"].to_numpy(float), steps["prefill_seqs"].to_numpy(float)
    ds, ctx = steps["decode_seqs"].to_numpy(float), steps["decode_ctx_tokens"].to_numpy(float)
    lm = spec.hidden_size * spec.vocab_size
    body = spec.params_active - lm * (1 if spec.tie_word_embeddings else 2)
    pairs = ctx + np.array([p * (p / s + 1) / 2 if s else 0.0 for p, s in zip(pt, ps)])
    flops_time = (
        2 * body * (pt + ds) + 2 * lm * (ps + ds)
    ) / peak + 4 * spec.num_layers * spec.num_heads * spec.head_dim * pairs / attn
    bytes_time = (
        np.where(pt + ds > 0, spec.weight_bytes_read_per_step, 0.0) + spec.kv_bytes_per_token * (ctx + pt + ds)
    ) / bw
    gpus = spec.tp
    u = np.minimum(1.0, np.maximum(flops_time, cfg.energy.memory_power_share * bytes_time) / (gpus * d))
    joules = hw.idle_w * billed_gpu_hours * 3600 + (hw.tdp_w - hw.idle_w) * gpus * float(np.sum(u * d))
    return joules / 3.6e6


def test_section_matches_a_recomputation_from_the_saved_files(tmp_path):
    """kWh equals idle power over the billed GPU-hours plus the dynamic power of every row of steps.parquet,
    for a TP-2 pair of replicas on A100s with a non-default memory_power_share and PUE."""
    r = run(
        "hardware=a100-80gb",
        "cluster.replicas=2",
        "cluster.tp=2",
        "workload.rate=12",
        "workload.num_requests=120",
        "energy.memory_power_share=0.5",
        "energy.pue=1.2",
    )
    r.save(tmp_path)
    steps = pd.read_parquet(tmp_path / "steps.parquet")
    e, cost = r.summary["energy"], r.summary["cost"]
    assert cost["gpu_hours"] == pytest.approx(4 * r.summary["window"]["end_s"] / 3600)
    expected = _recompute_kwh(r.config, steps, cost["gpu_hours"])
    assert e["gpu_kwh"] == pytest.approx(expected, rel=1e-9)
    assert e["facility_kwh"] == pytest.approx(1.2 * expected, rel=1e-9)
    assert e["mean_power_w_per_gpu"] == pytest.approx(expected * 3.6e6 / (cost["gpu_hours"] * 3600), rel=1e-9)


def test_slices_give_the_same_figures(monkeypatch):
    """The step table is read a slice at a time: slices of 1,000 rows give the whole table's sums."""
    over = ("cluster.replicas=2", "workload.rate=20", "workload.num_requests=150")
    whole = run(*over).summary["energy"]
    monkeypatch.setattr(energy_mod, "CHUNK", 1000)
    sliced = run(*over).summary["energy"]
    assert sliced["gpu_kwh"] == pytest.approx(whole["gpu_kwh"], rel=1e-12)
    assert sliced["busy_utilisation"] == pytest.approx(whole["busy_utilisation"], rel=1e-12)


def test_hardware_without_power_data_reports_none():
    e = run("hardware.idle_w=null", "workload.num_requests=5").summary["energy"]
    assert e["gpu_kwh"] is None and e["joules_per_token"] is None and e["usd"] is None
    assert "no power data" in e["note"]


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("hardware.idle_w=-1", "hardware.idle_w=-1.0 is negative"),
        ("hardware.tdp_w=0", "hardware.tdp_w=0.0 must be positive"),
        ("hardware.idle_w=900", "is above hardware.tdp_w"),
        ("energy.pue=0.95", "energy.pue=0.95 is below 1"),
        ("energy.usd_per_kwh=-0.1", "energy.usd_per_kwh=-0.1 must be 0 or more"),
        ("energy.memory_power_share=1.5", "energy.memory_power_share=1.5 must be between 0 and 1"),
    ],
)
def test_bad_settings_are_refused(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.").replace("(", r"\(")):
        run(override, "workload.num_requests=2")


@pytest.mark.parametrize("dtype", ["bf16", "fp16", "fp8", "int8", "int4", "fp32"])
def test_the_energy_models_rates_are_the_rooflines(dtype):
    """The energy model restates the roofline's achieved rates (metrics sit below the latency layer):
    the linear layers', the attention's, and the LM head's (BF16 under an FP8 checkpoint)."""
    import simulator
    from simulator.latency.roofline import peak_flops
    from simulator.metrics.energy import _Work
    from simulator.specs import ModelSpec

    cfg = simulator.api.load_config([f"model.weight_dtype={dtype}"])
    work = _Work(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp))
    linear, attn = peak_flops(cfg, dtype)
    lm = peak_flops(cfg, "bf16")[0] if dtype == "fp8" else linear
    assert (work.linear_rate, work.attn_rate, work.lm_rate) == pytest.approx((linear, attn, lm), rel=1e-12)
