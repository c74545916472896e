"""KV offload tiers below GPU memory (memory.offload): evicted prefix blocks spill to host
memory and SSD instead of vanishing, and come back at the cost of a copy."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import numpy as np
import pytest

import simulator
from simulator.engine.request import Request
from simulator.errors import ConfigError
from simulator.memory.prefix import ABSENT, PrefixCachingBlockManager, Tier

BLOCK_BYTES = 2.0e6  # one block's KV on the replica


def _cache(gpu_blocks: int, host_blocks: int, ssd_blocks: int = 0) -> PrefixCachingBlockManager:
    tiers = [Tier("host", -2, host_blocks, 50e9, 1e-5), Tier("ssd", -3, ssd_blocks, 5e9, 1e-4)]
    return PrefixCachingBlockManager(gpu_blocks, 16, tiers=tiers, block_bytes=BLOCK_BYTES)


def _req(rid: int, ids: list[int], prompt: int) -> Request:
    r = Request(rid, 0.0, prompt, 4)
    r.set_prefix(np.asarray(ids, dtype=np.int64), 16, 16)
    return r


def _serve(cache: PrefixCachingBlockManager, req: Request) -> None:
    cache.admit(req, req.prompt)
    cache.register(req)
    cache.release_request(req)


def test_evicted_blocks_come_back_from_host_memory_at_the_cost_of_a_copy():
    cache = _cache(gpu_blocks=10, host_blocks=100)
    first = _req(0, list(range(10)), 160)  # 10 blocks: fills GPU memory
    _serve(cache, first)
    _serve(cache, _req(1, list(range(100, 110)), 160))  # unrelated: evicts all of first's blocks...
    assert cache.block_tiers(first) == ["host"] * 10  # ... down to host memory, not out of the cache
    again = _req(2, list(range(10)), 160)
    assert cache.cached_tokens(again) == 9 * 16  # the last block is recomputed, as always
    assert cache.admit_cost(again, again.prompt) == 10  # loaded blocks take GPU blocks like new ones
    cache.admit(again, again.prompt)
    assert again.prefilled == 9 * 16 and again.shared == 9
    assert cache.load_s == pytest.approx(1e-5 + 9 * BLOCK_BYTES / 50e9)  # one load of 9 blocks over the host link
    assert cache.stats()["offload"]["host"]["hit_blocks"] == 9


def test_a_full_host_tier_spills_its_oldest_blocks_to_ssd_then_out_of_the_cache():
    cache = _cache(gpu_blocks=4, host_blocks=4, ssd_blocks=4)
    reqs = [_req(i, [10 * i + j for j in range(4)], 64) for i in range(4)]
    for r in reqs:
        _serve(cache, r)  # each evicts the previous one's 4 blocks
    assert cache.block_tiers(reqs[3]) == ["gpu"] * 4
    assert cache.block_tiers(reqs[2]) == ["host"] * 4
    assert cache.block_tiers(reqs[1]) == ["ssd"] * 4
    assert cache.block_tiers(reqs[0]) == [None] * 4  # the oldest left the cache
    host, ssd = cache.tiers
    assert (host.used, ssd.used) == (4, 4) and host.dropped == 8 and ssd.dropped == 4
    ssd_hit = _req(9, [10, 11, 12, 13], 64)
    cache.admit(ssd_hit, 64)
    assert cache.load_s == pytest.approx(1e-4 + 3 * BLOCK_BYTES / 5e9)


def test_random_workloads_keep_every_block_in_one_place_and_every_tier_within_capacity():
    rng = random.Random(3)
    cache = _cache(gpu_blocks=60, host_blocks=40, ssd_blocks=30)
    trunks = [[rng.randrange(1, 2**40)] for _ in range(3)]
    held: list[Request] = []
    for i in range(8000):
        if held and (rng.random() < 0.45 or len(held) > 4):
            cache.release_request(held.pop(rng.randrange(len(held))))
        else:
            ids = list(rng.choice(trunks))[:2] + [rng.randrange(1, 2**40) for _ in range(rng.randrange(3))]
            if rng.random() < 0.3:
                trunks.append(ids)
            r = _req(i, ids, 16 * len(ids) - rng.randrange(16))
            if cache.admit_cost(r, r.prompt) <= cache.free:
                cache.admit(r, r.prompt)
                cache.register(r)
                held.append(r)
        counts = [n for run in cache.runs.values() for n in run.counts]
        for tier in cache.tiers:
            assert tier.used == counts.count(tier.marker) <= tier.capacity
        assert cache.cached == sum(n >= 0 for n in counts)
        assert cache.evictable == counts.count(0)
        assert all(run.cached == sum(n != ABSENT for n in run.counts) > 0 for run in cache.runs.values())
    assert cache.tiers[0].loaded > 50 and cache.tiers[1].loaded > 10 and cache.tiers[1].dropped > 10


SAMPLE = Path(simulator.__file__).resolve().parents[1] / "traces" / "sample_mooncake.jsonl"
REPLAY = [
    "workload.arrival=trace", f"workload.trace.path={SAMPLE}", "memory.prefix_caching=true", "scheduler=chunked_prefill",
    "memory.gpu_memory_utilization=0.25",  # room for about 4 prompts: the cache evicts
    "output.charts=false", "output.console=false",
]  # fmt: skip


def _run(*overrides: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulator.run([*REPLAY, *overrides])


@pytest.fixture(scope="module")
def replays():
    return _run(), _run("memory.offload.host_gb=64")


def test_offload_raises_the_prefix_hit_rate_and_charges_the_copies(replays):
    off, on = replays
    assert "offload" not in off.summary["prefix_cache"]  # off: the summary is as it was
    tiers = on.summary["prefix_cache"]["offload"]
    assert tiers["host"]["hit_blocks"] > 0 and tiers["loaded_gb"] > 0
    assert on.summary["prefix_cache"]["token_hit_rate"] > off.summary["prefix_cache"]["token_hit_rate"]
    assert tiers["host"]["load_s"] > 0  # the loads lengthen the steps that admit them...
    assert on.steps["swap_s"].sum() == 0 == on.summary["preemption"]["swap_time_s"]  # ... and are not swaps
    assert on.summary["latency_s"]["ttft"]["mean"] < off.summary["latency_s"]["ttft"]["mean"]  # copying beats recomputing


@pytest.mark.parametrize(("overrides", "message"), [
    (["memory.prefix_caching=false", "memory.offload.host_gb=8"], "need memory.prefix_caching=true"),
    (["memory.offload.host_gb=-1"], "memory.offload.host_gb"),
    (["memory.offload.ssd_gbps=0"], "memory.offload.ssd_gbps"),
])  # fmt: skip
def test_bad_offload_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        simulator.run([*REPLAY, *overrides, "workload.num_requests=5"])


def test_a_prompt_computed_again_takes_over_its_lower_tier_copy():
    """A finishes computing its prompt while B's copy of the same blocks sits in host memory: A's
    GPU blocks are cached and shared (the host copy is superseded), as without offload, so the next
    request with that prompt finds them in GPU memory and pays no load."""
    shared = []
    for host in (0, 100):
        cache = _cache(gpu_blocks=10, host_blocks=host)
        a = _req(0, list(range(5)), 80)
        cache.admit(a, 80)  # A computing its prompt
        _serve(cache, _req(1, list(range(5)), 80))  # the same prompt, done first
        c = _req(2, list(range(100, 105)), 80)
        cache.admit(c, 80)
        cache.register(c)  # evicts B's blocks (down to host memory when there is some)
        cache.register(a)
        shared.append(a.shared)
        assert cache.block_tiers(a) == ["gpu"] * 5
        if host:
            assert cache.tiers[0].used == 0  # B's host copy was superseded, not kept beside A's blocks
        cache.release_request(a)
        cache.release_request(c)
        d = _req(3, list(range(5)), 80)
        cache.admit(d, 80)
        assert d.shared == 4 and cache.load_s == 0  # hits in GPU memory
    assert shared == [5, 5]


def test_replicas_with_different_tiers_sum_what_they_have():
    """A host tier too small for one block on a 1-GPU replica is left out (with a warning) while the
    2-GPU replica keeps one: the summary adds up each tier over the replicas that have it."""
    groups = "++cluster.groups={slow: {replicas: 1, tp: 2}, fast: {replicas: 1}}"
    with pytest.warns(UserWarning, match="holds no whole KV block"):
        result = simulator.run([*REPLAY, groups, "memory.offload.host_gb=0.0015", "memory.offload.ssd_gb=1",
                                "workload.num_requests=60", "cluster.router=jsq"])  # fmt: skip
    off = result.summary["prefix_cache"]["offload"]
    assert set(off) == {"host", "ssd", "loaded_gb"}
    assert off["ssd"]["stored_blocks"] > 0


def test_swapped_out_requests_park_their_kv_in_the_host_tier():
    """With swap preemption and a host tier, a preempted request's KV parks in the host tier (making room
    by spilling cached prefix blocks) instead of in memory.swap_space_gb: with no swap space at all, it
    still swaps."""
    base = ["memory.activation_reserve_gb=54.5", "workload.rate=20", "scheduler.preemption_mode=swap",
            "memory.prefix_caching=true", "workload.prefix.system_prompts=4", "workload.prefix.system_tokens=1024",
            "workload.num_requests=400", "memory.swap_space_gb=0", "output.console=false", "output.charts=false"]  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nowhere = simulator.run(base)
        parked = simulator.run([*base, "memory.offload.host_gb=0.5"])
    assert nowhere.summary["preemption"]["swaps"] == 0 < nowhere.summary["preemption"]["count"]  # no host memory: recompute
    assert parked.summary["preemption"]["swaps"] > 0
    assert parked.summary["prefix_cache"]["offload"]["host"]["parked_blocks_peak"] > 0
