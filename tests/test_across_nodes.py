"""Collectives of a replica larger than one node (docs/cluster.md, "Across nodes").

Tensor parallelism over more GPUs than ``hardware.gpus_per_node`` all-reduces
through NCCL only, the node's cost plus 2 log2(nodes) network hops, at the
lesser of the node's bandwidth and the NICs'; expert-parallel all-to-alls and
pipeline hand-offs between nodes add one hop and cross each GPU's NIC. Within
a node nothing changes.
"""

from __future__ import annotations

import math

import pytest

import simulator
from simulator.calibration.predict import predict
from simulator.errors import ConfigError
from simulator.latency import build_latency_model
from simulator.latency.base import StepShape
from simulator.latency.pipeline import PipelineLatency
from simulator.latency.roofline import RooflineLatency, allreduce_paths
from simulator.specs import ModelSpec

H100_NCCL_8 = (28.6e-6, 193.7e9)  # scenarios/hardware/h100-sxm.yaml, the 8-GPU NCCL row
HOP = 5e-6  # hardware.network_latency_us
NET = 47e9  # hardware.network_gbps of h100-sxm


def model(*overrides: str):
    cfg = simulator.load_config(["model=llama-3.1-70b", *overrides])
    cl = cfg.cluster
    return build_latency_model(cfg, ModelSpec.from_config(cfg.model, cl.tp, cl.ep, cl.pp))


def test_within_a_node_the_measured_paths_are_unchanged():
    cfg = simulator.load_config(["cluster.tp=8"])
    paths, source = allreduce_paths(cfg.hardware, 8, cfg.latency)
    assert source == "measured" and len(paths) == 2  # NCCL and the engines' one-shot kernel


@pytest.mark.parametrize("tp,nodes", [(16, 2), (32, 4)])
def test_tensor_parallel_all_reduce_across_nodes_is_nccl_plus_tree_hops(tp, nodes):
    cfg = simulator.load_config([f"cluster.tp={tp}"])
    paths, source = allreduce_paths(cfg.hardware, tp, cfg.latency)
    assert len(paths) == 1  # no custom kernel across nodes
    (alpha, beta), = paths
    assert alpha == pytest.approx(H100_NCCL_8[0] + 2 * math.log2(nodes) * HOP)
    assert beta == pytest.approx(min(H100_NCCL_8[1], 8 * NET * nodes / (2 * (nodes - 1))))
    assert f"network across {nodes}" in source


def test_a_slow_network_bounds_the_bandwidth():
    cfg = simulator.load_config(["cluster.tp=16", "hardware.network_gbps=5"])
    (alpha, beta), = allreduce_paths(cfg.hardware, 16, cfg.latency)[0]
    assert beta == pytest.approx(8 * 5e9 * 2 / 2)  # 40 GB/s < the node's 193.7


def test_a_decode_step_pays_more_per_all_reduce_across_nodes():
    """64 sequences of Llama-3.1-70B: each all-reduce is 1 MiB, latency-bound; two nodes add 10 us to each."""
    one, two = model("cluster.tp=8"), model("cluster.tp=16")
    shape = StepShape(decode_seqs=64, decode_ctx_tokens=64 * 2048)
    per_call_one = one.breakdown(shape)["allreduce"] / 160
    per_call_two = two.breakdown(shape)["allreduce"] / 160
    assert per_call_two == pytest.approx(H100_NCCL_8[0] + 2 * HOP + 64 * 8192 * 2 / H100_NCCL_8[1])
    assert per_call_two > per_call_one
    assert "x16 over 2 nodes" in two.describe() and "nodes" not in one.describe()


def test_a_gpu_without_a_catalogued_network_is_refused_across_nodes_with_the_fix():
    with pytest.raises(ConfigError, match=r"cluster.tp=16 spans 2 nodes of 8 l40s GPUs.*hardware.network_gbps"):
        model("hardware=l40s", "cluster.tp=16")
    assert isinstance(model("hardware=l40s", "cluster.tp=16", "hardware.network_gbps=12.5"), RooflineLatency)


@pytest.mark.parametrize("override,words", [
    ("hardware.gpus_per_node=0", "gpus_per_node must be a whole number"),
    ("hardware.network_gbps=-1", "network_gbps must be a positive number"),
    ("hardware.network_latency_us=-2", "network_latency_us must be"),
])  # fmt: skip
def test_bad_network_settings_name_the_key(override, words):
    with pytest.raises(ConfigError, match=words):
        model("cluster.tp=16", override)


def test_a_bigger_node_keeps_the_replica_on_nvlink():
    """GB200 NVL72-style domains: gpus_per_node=16 puts TP 16 back in one node, by the ring model (no 16-GPU table)."""
    cfg = simulator.load_config(["cluster.tp=16", "hardware.gpus_per_node=16"])
    assert allreduce_paths(cfg.hardware, 16, cfg.latency)[1] == "ring model"


def test_expert_parallel_all_to_all_sends_the_off_node_share_over_the_nics():
    base = ["model=deepseek-v3", "hardware=h200", "cluster.tp=8", "cluster.replicas=8"]
    cfg = simulator.load_config([*base, "cluster.ep=64"])
    spec = ModelSpec.from_config(cfg.model, 8, 64)
    m = build_latency_model(cfg, spec)
    sent = spec.experts_per_token * spec.hidden_size * 2 / 8  # bytes a GPU sends per token of its replica
    alpha_in_node = 10.0e-6  # the 8-GPU one-shot kernel's latency on NVLink4 (the smaller of the two paths)
    nvlink = 450e9 * cfg.latency.comm_efficiency
    per_token = max(sent * 7 / 64 / nvlink, sent * 56 / 64 / 47e9)
    assert m.alltoall_s(100) == pytest.approx(2 * spec.moe_layers * (alpha_in_node + HOP + per_token * 100))
    # within one node (ep = 8 over one TP-1 replica each) no network term appears
    small = simulator.load_config(["model=deepseek-v3", "hardware=h200", "cluster.tp=1", "cluster.replicas=8", "cluster.ep=8"])
    s8 = ModelSpec.from_config(small.model, 1, 8)
    within = build_latency_model(small, s8)
    sent8 = s8.experts_per_token * s8.hidden_size * 2
    assert within.alltoall_s(100) == pytest.approx(2 * s8.moe_layers * (10.0e-6 + sent8 * 7 / 8 / nvlink * 100))


def test_a_pipeline_hand_off_between_nodes_crosses_the_network():
    """TP 8 PP 2: the one hand-off leaves the node; TP 4 PP 2 stays in it; TP 2 PP 8: only the 4th crosses."""
    across = model("cluster.tp=8", "cluster.pp=2")
    inside = model("cluster.tp=4", "cluster.pp=2")
    mixed = model("cluster.tp=2", "cluster.pp=8")
    assert isinstance(across, PipelineLatency)
    assert across.crosses == [True] and inside.crosses == [False]
    assert mixed.crosses == [False, False, False, True, False, False, False]
    assert across.send_s(1000, True) == pytest.approx(7.6e-6 + HOP + 1000 * 8192 * 2 / 8 / NET)
    assert across.send_s(1000, True) > across.send_s(1000)
    assert "PP2 over 2 nodes" in across.describe() and "nodes" not in inside.describe()


def test_predict_prices_the_pipeline_and_says_how_many_gpus():
    out = predict(["model=llama-3.1-70b", "cluster.tp=8", "cluster.pp=2"], [], ["64:2048"])
    assert out["scenario"].startswith("llama-3.1-70b on 16x h100-sxm TP8 PP2")
    assert "pipeline_cycle" in out["ops"] and "PP2 over 2 nodes" in out["latency_model"]
    with pytest.raises(ConfigError, match="needs latency.model=roofline"):
        predict(["model=llama-3.1-70b", "cluster.pp=2", "latency.model=constant"], [], ["64:2048"])
