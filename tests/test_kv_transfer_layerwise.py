"""Layer-wise KV transfer (``cluster.disaggregation.link.layerwise``, docs/levers/kv_transfer.md).

The copy overlaps the request's final prefill step layer by layer, so what is
left after the prefill ends is ``latency + max(B/L, B - P*(L-1)/L)`` with B the
whole cache's bytes / bandwidth, P that step's time and L the model's layers.
The transfer lands in TTFT: ``first_token_s - prefill_done_s`` is the exposed
copy (plus any wait for decode memory or the link).
"""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from tests.conftest import run

QUIET = ["output.charts=false", "output.console=false"]
KV_BYTES = 2 * 32 * 8 * 128 * 2  # Llama-3.1-8B, bf16: 128 KiB per token
LAYERS = 32
STEP_S = 0.01  # latency=constant: every step, the final prefill step included

ONE = [
    "cluster=disaggregated", "latency=constant", "workload.num_requests=1",
    "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=1024",
    "workload.output_tokens.dist=fixed", "workload.output_tokens.value=8",
]  # fmt: skip


def exposed(r: simulator.Result) -> np.ndarray:
    q = r.requests
    return (q["first_token_s"] - q["prefill_done_s"]).to_numpy()


def data_s(prompt: int, gbps: float) -> float:
    return prompt * KV_BYTES / (gbps * 1e9)


def test_slow_link_hides_all_but_the_prefill_overlap():
    # B = 134 ms >> P = 10 ms: the link is the bottleneck from layer 0 on
    link = ["cluster.disaggregation.link.bandwidth_gbps=1"]
    whole = run(*ONE, *link)
    lw = run(*ONE, *link, "cluster.disaggregation.link.layerwise=true")
    T = 5e-5 + data_s(1024, 1)
    assert exposed(whole)[0] == pytest.approx(T, rel=1e-12)
    assert exposed(lw)[0] == pytest.approx(T - STEP_S * (LAYERS - 1) / LAYERS, rel=1e-12)


def test_fast_link_exposes_only_the_last_layer():
    # B = 2.7 ms < P = 10 ms: every layer but the last has crossed before the prefill ends
    lw = run(*ONE, "cluster.disaggregation.link.layerwise=true", "cluster.disaggregation.link.latency_s=0")
    T = data_s(1024, 50)
    assert exposed(lw)[0] == pytest.approx(T / LAYERS, rel=1e-12)
    # the fixed link latency is paid once, not per layer
    lw = run(*ONE, "cluster.disaggregation.link.layerwise=true")
    assert exposed(lw)[0] == pytest.approx(5e-5 + T / LAYERS, rel=1e-12)


def test_chunked_prefill_overlaps_only_its_last_chunk():
    # 4,096 tokens in 1,024-token chunks: four steps, only the last one overlaps the copy
    chunked = [
        "workload.prompt_tokens.value=4096", "cluster.disaggregation.link.bandwidth_gbps=1",
        "cluster.disaggregation.prefill.scheduler.policy=chunked_prefill",
        "cluster.disaggregation.prefill.scheduler.max_batch_tokens=1024",
        "cluster.disaggregation.link.layerwise=true",
    ]  # fmt: skip
    r = run(*ONE, *chunked)
    q = r.requests
    assert q["prefill_done_s"][0] - q["first_scheduled_s"][0] == pytest.approx(4 * STEP_S)
    T = 5e-5 + data_s(4096, 1)
    assert exposed(r)[0] == pytest.approx(T - STEP_S * (LAYERS - 1) / LAYERS, rel=1e-12)


def test_copies_on_one_link_still_queue_and_hold_it_for_the_whole_transfer():
    # a prompt every 10 ms, a 134 ms copy each: copies queue on the prefill replica's link
    queued = [
        "workload.num_requests=5", "workload.arrival=constant", "workload.rate=100",
        "cluster.disaggregation.link.bandwidth_gbps=1",
    ]  # fmt: skip
    whole = run(*ONE, *queued)
    lw = run(*ONE, *queued, "cluster.disaggregation.link.layerwise=true")
    T = 5e-5 + data_s(1024, 1)
    overlap = STEP_S * (LAYERS - 1) / LAYERS
    for r, first in ((whole, T), (lw, T - overlap)):
        done = np.sort(r.requests["first_token_s"].to_numpy())
        assert exposed(r).min() == pytest.approx(first, rel=1e-12)  # the first copy found the link idle
        np.testing.assert_allclose(np.diff(done), T, rtol=1e-9)  # the others start as the previous ends
    s = lw.summary["kv_transfer"]
    assert s["transfers"] == 5 and s["mean_s"] == pytest.approx(T, rel=1e-12)  # the link is busy for all of T


@pytest.fixture(scope="module")
def loaded():
    # two prefill replicas into one decode replica over 6 GB/s links (copies 25 ms, prefill steps 33 ms, on average)
    sc = [
        "cluster=disaggregated", "cluster.disaggregation.prefill.replicas=2",
        "cluster.disaggregation.link.bandwidth_gbps=6", "workload.rate=30",
    ]  # fmt: skip
    return run(*sc, base=QUIET), run(*sc, "cluster.disaggregation.link.layerwise=true", base=QUIET)


def test_layerwise_never_delays_a_request_and_improves_ttft_under_load(loaded):
    whole, lw = loaded
    a = whole.requests.set_index("request_id")
    b = lw.requests.set_index("request_id")
    assert (b["status"] == "completed").all() and len(b) == len(a)
    assert (b["prefill_done_s"] <= a["prefill_done_s"] + 1e-12).all()
    assert (b["first_token_s"] <= a["first_token_s"] + 1e-12).all()
    assert (b["finish_s"] - b["first_token_s"] >= 0).all()
    mean = {k: r.summary["latency_s"]["ttft"]["mean"] for k, r in (("whole", whole), ("lw", lw))}
    # measured: 86.7 -> 51.9 ms
    assert mean["lw"] < 0.75 * mean["whole"]
    assert lw.summary["latency_s"]["tpot"]["mean"] <= whole.summary["latency_s"]["tpot"]["mean"] * 1.01
    # the last layer's share and the link latency can never be hidden
    cfg = lw.config.cluster.disaggregation.link
    floor = cfg.latency_s + b["prompt_tokens"] * KV_BYTES / (cfg.bandwidth_gbps * 1e9) / LAYERS
    assert (b["first_token_s"] - b["prefill_done_s"] >= floor - 1e-12).all()


def test_summary_still_counts_transfers_and_bytes(loaded):
    whole, lw = loaded
    s0, s1 = whole.summary["kv_transfer"], lw.summary["kv_transfer"]
    n = int((lw.requests["output_tokens"] > 1).sum())
    assert s1["transfers"] == s0["transfers"] == n
    gb = float((lw.requests["prompt_tokens"] * KV_BYTES).where(lw.requests["output_tokens"] > 1, 0).sum()) / 1e9
    assert s1["gb"] == pytest.approx(gb) and s0["gb"] == pytest.approx(gb)
    assert s1["mean_s"] == pytest.approx(s0["mean_s"], rel=1e-12)  # link time per copy is unchanged


def test_layerwise_without_disaggregation_is_a_config_error():
    with pytest.raises(simulator.ConfigError) as info:
        run("cluster.disaggregation.link.layerwise=true", "workload.num_requests=10")
    message = str(info.value)
    assert "cluster.disaggregation.link.layerwise=true" in message
    assert "cluster.disaggregation.enabled=true" in message
    assert "\n" not in message and message.endswith(".")


def test_the_summary_reports_the_exposed_copy_time():
    import simulator

    ov = ["cluster=disaggregated", "cluster.disaggregation.link.bandwidth_gbps=12.5", "workload.num_requests=200"]
    whole = simulator.run(ov).summary["kv_transfer"]
    layered = simulator.run([*ov, "cluster.disaggregation.link.layerwise=true"]).summary["kv_transfer"]
    assert not whole["layerwise"] and whole["mean_exposed_s"] == pytest.approx(whole["mean_s"])
    assert layered["layerwise"] and layered["mean_exposed_s"] < 0.5 * layered["mean_s"]
