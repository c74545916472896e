"""``scheduler.async_scheduling``: the engine's CPU work overlaps the GPU's.

With overlap (TensorRT-LLM's PyTorch-backend overlap scheduler, SGLang's
overlap scheduler, vLLM's ``--async-scheduling``) a step takes the longer of
its GPU work and the engine's CPU work (``step_overhead``) instead of their
sum (simulator/latency/overlap.py).
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import pytest

import simulator
from simulator.calibration.published import load_cases, overrides
from simulator.latency import build_latency_model
from simulator.latency.base import StepShape
from simulator.latency.overlap import OverlappedLatency, overlapped
from simulator.specs import ModelSpec
from tests.conftest import run
from tests.test_profile_latency import synthetic

DECODE = StepShape(decode_seqs=64, decode_ctx_tokens=64 * 900)
MIXED = StepShape(prefill_seqs=1, prefill_tokens=512, prefill_attn_pairs=512 * 513 / 2, decode_seqs=64, decode_ctx_tokens=64 * 900)


def latency(*ov: str):
    cfg = simulator.load_config(["engine=vllm_v1", *ov])
    return build_latency_model(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp, pp=cfg.cluster.pp))


def test_a_step_takes_the_longer_of_its_gpu_and_cpu_work():
    assert overlapped(10.0, 3.0) == 7.0  # the GPU's 7 hide the CPU's 3
    assert overlapped(5.0, 4.0) == 4.0  # the CPU's 4 outlast the GPU's 1
    assert overlapped(2.0, 0.0) == 2.0


@pytest.mark.parametrize("overhead", ["0.0015", "0.05"])  # hidden by the GPU's work; longer than it
def test_overlap_replaces_the_sum_by_the_max(overhead):
    seq = latency(f"latency.step_overhead_s={overhead}")
    over = latency(f"latency.step_overhead_s={overhead}", "scheduler.async_scheduling=true")
    assert isinstance(over, OverlappedLatency) and not isinstance(seq, OverlappedLatency)
    for shape in (DECODE, MIXED):
        cpu = seq.cpu_s(shape)
        assert cpu == pytest.approx(float(overhead) + 64 * 2e-5 + (shape.prefill_seqs * 2e-5), rel=1e-12)
        gpu = seq.step_time(shape) - cpu
        assert over.step_time(shape) == pytest.approx(max(gpu, cpu), rel=1e-12)
        parts = over.breakdown(shape)
        assert sum(parts.values()) == pytest.approx(over.step_time(shape), rel=1e-12)
        assert parts["step_overhead"] == pytest.approx(max(0.0, cpu - gpu), abs=1e-15)  # only what the GPU does not hide


def _gpu_only(seqs: int, ctx: int, count: int) -> list[float]:
    return latency("latency.step_overhead_s=0", "latency.step_overhead_per_seq_s=0").decode_times(seqs, ctx, count)


@pytest.mark.parametrize("which", ["gpu", "cpu", "both"])  # the GPU's work longer; the CPU's; first one, then the other
def test_the_decode_fast_paths_price_alike(which):
    gpu = _gpu_only(64, 64 * 900, 60)
    overhead = {"gpu": 1.5e-3, "cpu": 2 * gpu[-1], "both": (gpu[0] + gpu[-1]) / 2}[which]
    over = latency("scheduler.async_scheduling=true", f"latency.step_overhead_s={overhead!r}", "latency.step_overhead_per_seq_s=0")
    times = over.decode_times(64, 64 * 900, 60)  # (numpy's path from 48 steps on)
    assert times == [over.step_time(StepShape(decode_seqs=64, decode_ctx_tokens=64 * 900 + i * 64)) for i in range(60)]
    assert over.decode_step_time(64, 64 * 900) == over.step_time(DECODE)
    hidden = [t == pytest.approx(g, rel=1e-12) for t, g in zip(times, gpu, strict=True)]
    assert {"gpu": all(hidden), "cpu": not any(hidden), "both": hidden[-1] and not hidden[0]}[which]


def test_no_cpu_work_no_change():
    seq, over = latency("latency.step_overhead_s=0", "latency.step_overhead_per_seq_s=0"), latency(
        "latency.step_overhead_s=0", "latency.step_overhead_per_seq_s=0", "scheduler.async_scheduling=true")
    assert over.step_time(MIXED) == seq.step_time(MIXED) and over.decode_times(8, 800, 50) == seq.decode_times(8, 800, 50)


@pytest.mark.parametrize(("extra", "decode_cpu", "mixed_cpu"), [
    (["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.2-1b"], 1.5e-3 + 64 * 2e-5, 1.5e-3 + 65 * 2e-5),
    (["cluster.tp=2", "cluster.pp=2"], 1.5e-3 + 64 * 2e-5, 1.5e-3 + 65 * 2e-5),
    (["scheduler.multi_step=8", "engine=vllm_v0"], 3e-3 / 8, 3e-3),  # a decode step pays an 8th of vLLM V0's 3 ms
])  # fmt: skip
def test_overlap_wraps_the_other_latency_wrappers(extra, decode_cpu, mixed_cpu):
    seq, over = latency(*extra), latency(*extra, "scheduler.async_scheduling=true")
    for shape, cpu in ((DECODE, decode_cpu), (MIXED, mixed_cpu)):  # (speculative models change the shape: copies)
        assert seq.cpu_s(replace(shape)) == pytest.approx(cpu, rel=1e-12)
        gpu = seq.step_time(replace(shape)) - cpu
        assert gpu > 0 and over.step_time(replace(shape)) == pytest.approx(max(gpu, cpu), rel=1e-12)


def test_an_uncertainty_draw_scales_the_overlapped_step():
    from simulator.latency.uncertainty import ScaledLatency

    over = latency("scheduler.async_scheduling=true", "latency.step_overhead_s=0.05")
    scaled = ScaledLatency(over, 1.1)
    assert scaled.cpu_s(MIXED) == pytest.approx(1.1 * over.cpu_s(MIXED), rel=1e-12)
    assert scaled.step_time(MIXED) == pytest.approx(1.1 * over.step_time(MIXED), rel=1e-12)
    assert sum(scaled.breakdown(MIXED).values()) == pytest.approx(scaled.step_time(MIXED), rel=1e-12)


@pytest.mark.parametrize(("extra", "decode_cpu"), [([], 5e-3), (["engine=vllm_v0", "scheduler.multi_step=8"], 5e-3 / 8)])
def test_a_profile_model_overlaps_its_own_overhead(tmp_path, extra, decode_cpu):
    synthetic(overhead=5e-3).save(tmp_path / "prof")
    base = ["model=tiny-llama", "hardware=cpu", "latency.model=profile", f"latency.profile.path={tmp_path / 'prof'}",
            "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256", *extra]
    seq, over = (build_latency_model(cfg, ModelSpec.from_config(cfg.model))
                 for cfg in (simulator.load_config(base), simulator.load_config([*base, "scheduler.async_scheduling=true"])))
    decode = StepShape(decode_seqs=8, decode_ctx_tokens=8 * 300)
    mixed = StepShape(prefill_seqs=1, prefill_tokens=100, prefill_attn_pairs=100 * 101 / 2, decode_seqs=8, decode_ctx_tokens=8 * 300)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape, cpu in ((decode, decode_cpu), (mixed, 5e-3)):  # a step with a prompt pays all of it
            assert seq.cpu_s(shape) == pytest.approx(cpu, rel=1e-12)
            assert seq.breakdown(shape)["step_overhead"] == pytest.approx(cpu, rel=1e-12)
            assert over.step_time(shape) == pytest.approx(max(seq.step_time(shape) - cpu, cpu), rel=1e-12)


def test_a_constant_step_has_no_cpu_work_to_hide():
    seq, over = latency("latency=constant"), latency("latency=constant", "scheduler.async_scheduling=true")
    assert over.cpu_s(MIXED) == 0.0 and over.step_time(MIXED) == seq.step_time(MIXED)


def test_predict_shows_the_cpu_work_it_hides():
    from simulator.calibration.predict import predict, render

    out = predict(["engine=trtllm", "hardware=h100-sxm", "model=llama-3.1-8b"], [], ["64:1000"])
    assert out["cpu_overlapped"] and out["cpu_s"] == pytest.approx(1.5e-3) and out["ops"]["step_overhead"] == 0.0
    assert "runs beside the GPU's" in render(out)
    off = predict(["engine=trtllm", "hardware=h100-sxm", "model=llama-3.1-8b", "scheduler.async_scheduling=false"], [], ["64:1000"])
    assert not off["cpu_overlapped"] and off["ops"]["step_overhead"] == off["cpu_s"] and "beside" not in render(off)


def test_engine_presets_say_who_overlaps():
    short = "workload.prompt_tokens.max=4096"  # (the default chat workload's longest prompt is over TensorRT-LLM's token budget)
    on = {e: simulator.load_config([f"engine={e}", short]).scheduler.async_scheduling for e in ("trtllm", "sglang", "vllm_v1", "vllm_v0")}
    assert on == {"trtllm": True, "sglang": True, "vllm_v1": False, "vllm_v0": False}
    assert "CPU work overlapped" in latency("scheduler.async_scheduling=true").describe()


def test_published_tensorrt_llm_cases_overlap_on_the_pytorch_backend_only():
    seen = {}
    for case in load_cases():
        if case.engine == "trtllm" and not case.skip:
            flag = [o for o in overrides(case) if o.startswith("scheduler.async_scheduling=")]
            assert len(flag) == 1
            seen[(case.raw.get("engine_args") or {}).get("backend", "none").split()[0]] = flag[0].endswith("true")
    assert seen == {"pytorch": True, "tensorrt-engine": False, "none": False}


def test_overlap_serves_a_cpu_bound_engine_faster_and_a_bad_value_is_refused():
    slow = ["latency.step_overhead_s=0.02", "workload.rate=20"]
    seq, over = run(*slow), run(*slow, "scheduler.async_scheduling=true")
    assert over.summary["latency_s"]["tpot"]["mean"] < seq.summary["latency_s"]["tpot"]["mean"]
    with pytest.raises(simulator.ConfigError, match="async_scheduling"):
        simulator.load_config(["scheduler.async_scheduling=sometimes"])
