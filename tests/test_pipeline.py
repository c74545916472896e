"""Pipeline parallelism: the cycle formula, the bubble at low load, memory over every stage, billing."""

from __future__ import annotations

import pytest

import simulator
from simulator.errors import ConfigError
from simulator.latency import build_latency_model
from simulator.latency.base import StepShape
from simulator.latency.pipeline import PipelineLatency
from simulator.specs import ModelSpec

CLOSED = [
    "model=llama-3.1-70b", "workload.arrival=closed_loop", "workload.think_s=0",
    "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=512",
    "workload.output_tokens.dist=fixed", "workload.output_tokens.value=256",
]  # fmt: skip


def latency(*overrides: str) -> PipelineLatency:
    cfg = simulator.load_config(["model=llama-3.1-70b", *overrides])
    model = build_latency_model(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp, pp=cfg.cluster.pp))
    assert isinstance(model, PipelineLatency)
    return model


def closed(users: int, *overrides: str) -> dict:
    return simulator.run([*CLOSED, f"workload.users={users}", f"workload.num_requests={max(4 * users, 16)}", *overrides]).summary


def test_one_sequence_walks_every_stage_in_turn():
    """m = 1: the cycle is the whole model's step plus a send between each pair of stages."""
    pp = latency("cluster.tp=2", "cluster.pp=4")
    shape = StepShape(decode_seqs=1, decode_ctx_tokens=700)
    assert pp.step_time(shape) == pytest.approx(pp.inner.step_time(shape) + 3 * pp.send_s(1))


def test_a_full_pipeline_is_bound_by_its_busiest_stage():
    pp = latency("cluster.tp=2", "cluster.pp=2")
    shape = StepShape(decode_seqs=64, decode_ctx_tokens=64 * 700)
    m, tau = pp.stage_times(shape)
    assert m == 2 and tau[-1] > tau[0]  # the last stage also runs the LM head
    assert pp.step_time(shape) == pytest.approx(pp.inner.overhead_s(64) + 2 * max(tau))
    # every sequence still advances once, for less than one TP-2 engine needs for the whole batch
    assert pp.step_time(shape) < pp.inner.step_time(shape)


def test_sends_are_priced_from_the_measured_fit():
    pp = latency("hardware=h100-sxm", "cluster.tp=2", "cluster.pp=2")
    assert pp.send_fixed == pytest.approx(7.6e-6)
    assert pp.send_s(1000) == pytest.approx(7.6e-6 + 1000 * 8192 * 2 / 2 / 357.5e9)


def test_the_bubble_at_batch_one_gives_no_speed_from_the_extra_gpus():
    tp2, pp2, tp4 = closed(1, "cluster.tp=2"), closed(1, "cluster.tp=2", "cluster.pp=2"), closed(1, "cluster.tp=4")
    assert pp2["latency_s"]["tpot"]["mean"] >= tp2["latency_s"]["tpot"]["mean"]
    assert tp4["latency_s"]["tpot"]["mean"] < 0.75 * pp2["latency_s"]["tpot"]["mean"]


def test_under_load_the_pipeline_serves_what_its_memory_admits():
    tp2, pp2 = closed(128, "cluster.tp=2"), closed(128, "cluster.tp=2", "cluster.pp=2")
    assert pp2["throughput"]["output_tokens_per_s"] > 2 * tp2["throughput"]["output_tokens_per_s"]


def test_kv_memory_spans_every_stage_and_every_gpu_is_billed():
    pp2, tp4 = closed(1, "cluster.tp=2", "cluster.pp=2"), closed(1, "cluster.tp=4")
    assert pp2["kv_cache"]["tokens_per_replica"] == tp4["kv_cache"]["tokens_per_replica"]  # 4 GPUs, the same weights
    assert pp2["cost"]["gpus"] == 4 and pp2["pools"][0]["gpus"] == 4 and pp2["scenario"]["pp"] == 2
    assert pp2["scenario"]["latency_model"].endswith("PP2")


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["cluster.pp=81"], "cluster.pp must be an integer from 1 to model llama-3.1-70b's 80 layers"),
        (["cluster.pp=2", "latency=constant"], "needs latency.model=roofline"),
    ],
)
def test_bad_settings(overrides, words):
    with pytest.raises(ConfigError) as e:
        simulator.load_config(["model=llama-3.1-70b", "cluster.tp=4", *overrides])
    assert words in str(e.value)
