"""Bad input fails with one clear sentence naming the key - no tracebacks."""

from __future__ import annotations

import pytest

import simulator
from tests.conftest import servesim_cli

# (overrides, a fragment the message must contain)
CASES = [
    (["scheduler=foo"], "scheduler=foo is not a known scheduler; choose one of: chunked_prefill, continuous, inflight, static"),
    (["scheduler.policy=foo"], "scheduler.policy='foo' is not a known scheduling policy; choose one of: chunked_prefill, continuous, inflight, static"),
    (["latency.model=magic"], "latency.model='magic' is not a known latency model; choose one of: constant, roofline"),
    (["memory.allocation=magic"], "memory.allocation='magic' is not a known KV allocation mode; choose one of: paged, reserve_max, reserve_pow2, reserve_exact"),
    (["hardware=tpu9"], "hardware=tpu9 is not a known hardware; choose one of:"),
    (["workload.rate=-1"], "workload.rate must be a finite number > 0"),
    (["workload.rate=abc"], "workload.rate='abc' is invalid; it must be a number"),
    (["workload.rte=3"], "workload.rte is not a known key; the keys of workload are: name, arrival, rate"),
    (["+foo=1"], "foo is not a known key; the keys of the top level are: name, seed"),
    (["+workload.trace.speed=2"], "workload.trace.speed is not a known key; the keys of workload.trace are: path, format"),
    (["workload.prompt_tokens=foo"], "workload.prompt_tokens='foo' is invalid: workload.prompt_tokens is a group of settings"),
    # a list key given a bare value or null: the shape it takes, not omegaconf's ListConfig message
    (["latency.custom_allreduce=nvidia"], "latency.custom_allreduce=nvidia is invalid: latency.custom_allreduce is a list; write it in brackets, quoted for the shell, e.g. 'latency.custom_allreduce=[nvidia]'"),
    (["latency.custom_allreduce=null"], "latency.custom_allreduce=null is invalid: latency.custom_allreduce needs a value (an empty list is '[]')"),
    (["latency.step_overhead_s=null"], "latency.step_overhead_s=null is invalid: latency.step_overhead_s needs a value."),
    (["latency.custom_allreduce=[intel]"], "latency.custom_allreduce must be a list of GPU vendors among nvidia, amd"),
    # a key of an entry a name -> settings mapping does not have yet: how to add the entry (issue: the message had said
    # "mi300x='{}' is invalid: mi300x is a group of settings; set its keys one by one")
    (["+pricing.hardware.mi300x.spot=2.0"],
     "pricing.hardware has no entry 'mi300x' to set a key of: add the entry whole, e.g. '++pricing.hardware={mi300x: {spot: 2.0}}'"),
    (["pricing.hardware.mi300x.spot=2.0"], "e.g. '++pricing.hardware={mi300x: {spot: 2.0}}' (the keys of an entry are: on_demand,"),
    (["+cluster.groups.big.replicas=2"], "cluster.groups has no entry 'big' to set a key of: add the entry whole, e.g. '++cluster.groups={big: {replicas: 2}}'"),
    (["pricing.hardware.mi300x.spot_source=AMD quote 2026"], "'++pricing.hardware={mi300x: {spot_source: AMD quote 2026}}'"),  # the whole value
    (["pricing.hardware.mi300x={spot: 2.0}"], "pricing.hardware has no entry 'mi300x' yet: add it, e.g. '++pricing.hardware={mi300x: {spot: 2.0}}'"),
    (["pricing.hardware.mi300x=2.0"], "pricing.hardware.mi300x=2.0 is invalid: an entry of pricing.hardware is a group of settings; add it whole"),
    (["pricing.hardware.mi300x.spto=2.0"], "pricing.hardware.mi300x.spto is not a known key; the keys of an entry are: on_demand,"),  # no advice that fails again
    (["pricing.hardware={mi300x: {spot: 2.0}}"], "write it '++pricing.hardware={mi300x: {spot: 2.0}}' (two +: merged into the entries pricing.hardware has)"),
    (["model=llama-3.1-70b"], "model=llama-3.1-70b does not fit"),
    (["workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=200000"],
     "longer than model llama-3.1-8b's context of 131072 tokens"),
    (["cluster.tp=3"], "cluster.tp=3 must divide model llama-3.1-8b's 32 attention heads"),
    (["memory.gpu_memory_utilization=1.5"], "memory.gpu_memory_utilization must lie in (0, 1]"),
    (["memory.block_size=0"], "memory.block_size must be >= 1"),
    (["model.kv_dtype=fp7"], "model.kv_dtype='fp7' is not a known precision"),
    (["hardware=a100-80gb", "model.weight_dtype=fp8"], "model.weight_dtype='fp8' needs FP8 tensor cores"),
    (["latency=constant", "latency.step_s=0"], "latency.step_s must be a finite number > 0"),
    (["latency.attention_row_pairs=-5"], "latency.attention_row_pairs must be"),
    (["latency.attention_decode_kv_rate_g=0"], "latency.attention_decode_kv_rate_g must be a positive number of KV-cache entries, in billions a second, or inf"),
    (["scheduler.max_batch_size=0"], "scheduler.max_batch_size must be >= 1"),
    (["slo.ttft_s=-1"], "slo.ttft_s must be a finite number > 0"),
    (["memory.prefix_caching=true", "memory.allocation=reserve_pow2"], "memory.prefix_caching=true needs memory.allocation=paged"),
    (["scheduler.max_batch_tokens=100"], "scheduler.max_batch_tokens=100 is below the longest prompt the workload can produce (14050)"),
    (["scheduler.preemption_mode=drop"], "scheduler.preemption_mode='drop' is not a known preemption mode; choose one of: recompute, swap"),
    (["memory.max_model_len=200000"], "memory.max_model_len must lie in [1, 131072]"),
    (["memory.max_model_len=4096"], "longer than memory.max_model_len=4096"),
    (["scheduler=chunked_prefill", "scheduler.max_batch_tokens=128"], "scheduler.max_batch_tokens (128) must be >= scheduler.max_batch_size (256)"),
    (["cluster=disaggregated", "cluster.disaggregation.decode.hardware=tpu9"], "cluster.disaggregation.decode.hardware='tpu9' is not a known hardware; choose one of: a100-40gb"),
    (["cluster=disaggregated", "cluster.disaggregation.prefill.tp=3"], "cluster.disaggregation.prefill.tp=3 must divide"),
    (["cluster=disaggregated", "model=llama-3.1-70b", "cluster.disaggregation.prefill.tp=4"], "cluster.disaggregation.decode.tp=1 leaves"),
    (["cluster=disaggregated", "cluster.disaggregation.decode_router=random"], "cluster.disaggregation.decode_router='random' is not a known decode router"),
    (["cluster=disaggregated", "cluster.disaggregation.link.bandwidth_gbps=0"], "cluster.disaggregation.link.bandwidth_gbps must be a finite number > 0"),
    # time-varying rate
    (["workload.rate_schedule=[]"], "workload.rate_schedule must hold at least one [start_s, rate] pair, or be null (got [])"),
    (["workload.rate_schedule=[[0,10],5]"], "workload.rate_schedule[1] must be a [start_s, rate] pair of numbers (got 5)"),
    (["workload.rate_schedule=[[0,10,3]]"], "workload.rate_schedule[0] must be a [start_s, rate] pair of numbers (got [0, 10, 3])"),
    (["workload.rate_schedule=[[10,5]]"], "workload.rate_schedule[0] must start at 0 s, so the rate is known from the start (got start_s=10)"),
    (["workload.rate_schedule=[[0,10],[300,40],[300,10]]"], "workload.rate_schedule[2] starts at 300 s, not after the previous piece's 300 s; start times must strictly increase"),
    (["workload.rate_schedule=[[0,10],[60,-1]]"], "workload.rate_schedule[1] rate must be a finite number >= 0 (got -1)"),
    (["workload.rate_schedule=[[0,0],[60,0]]"], "workload.rate_schedule needs a piece with a rate > 0 (got rates 0, 0)"),
    (["workload.arrival=closed_loop", "workload.rate_schedule=[[0,1]]"], "workload.rate_schedule is set but workload.arrival=closed_loop, which has no rate"),
    # closed-loop users and tenants
    (["workload.arrival=closed_loop", "workload.users=0"], "workload.users must be an integer >= 1 (got 0)"),
    (["workload.arrival=closed_loop", "workload.think_s=-1"], "workload.think_s must be a finite number >= 0 (got -1.0)"),
    (["workload.tenants=-1"], "workload.tenants must be an integer >= 0 (got -1)"),
    (["workload.tenant_skew=-0.5"], "workload.tenant_skew must be a finite number >= 0 (got -0.5)"),
    # client retries
    (["workload.retry.max_attempts=0"], "workload.retry.max_attempts must be an integer >= 1 (got 0)"),
    (["workload.retry.backoff_s=-1"], "workload.retry.backoff_s must be a finite number >= 0 (got -1.0)"),
    (["workload.retry.multiplier=0.5"], "workload.retry.multiplier must be a finite number >= 1 (got 0.5)"),
    (["workload.retry.max_backoff_s=0.5"], "workload.retry.max_backoff_s must be >= workload.retry.backoff_s (got max_backoff_s=0.5, backoff_s=1.0)"),
    (["workload.retry.jitter=1.5"], "workload.retry.jitter must lie in [0, 1] (got 1.5)"),
    # tiers
    (["++tiers={free: {share: -1}}"], "tiers.free.share must be a finite number >= 0 (got -1.0)"),
    (["++tiers={free: {share: 0}, pro: {share: 0}}"], "tiers.*.share must sum to > 0, so some tier gets traffic (got 0 over free, pro)"),
    (["++tiers={pro: {ttft_s: 0}}"], "tiers.pro.ttft_s must be a finite number > 0 (got 0.0)"),
    (["++tiers={pro: {tpot_s: -0.1}}"], "tiers.pro.tpot_s must be a finite number > 0 (got -0.1)"),
    (["++tiers={pro: {max_wait_s: 0}}"], "tiers.pro.max_wait_s must be a finite number > 0 (got 0.0)"),
    (["++tiers={pro: {max_queue: -1}}"], "tiers.pro.max_queue must be an integer >= 0, or null (got -1)"),
    (["++tiers={pro: {kv_watermark: 0}}"], "tiers.pro.kv_watermark must lie in (0, 1] (got 0.0)"),
    (["++tiers={pro: {kv_watermark: 1.5}}"], "tiers.pro.kv_watermark must lie in (0, 1] (got 1.5)"),
    (["++tiers={free: {tokens_per_s: 0}}"], "tiers.free.tokens_per_s must be a finite number > 0 (got 0.0)"),
    (["++tiers={free: {burst_tokens: -5}}"], "tiers.free.burst_tokens must be a finite number > 0 (got -5.0)"),
]


@pytest.mark.parametrize("overrides,fragment", CASES, ids=[" ".join(o) for o, _ in CASES])
def test_api_raises_config_error(overrides, fragment):
    with pytest.raises(simulator.ConfigError) as info:
        simulator.run(overrides + ["workload.num_requests=10"])
    message = str(info.value)
    assert fragment in message
    assert "\n" not in message  # one sentence, one line
    assert message.endswith(".")


def test_the_entry_the_mapping_error_advises_adds_a_price_and_keeps_the_others():
    with pytest.raises(simulator.ConfigError, match=r"'\+\+pricing.hardware=\{mi300x: \{spot: 2.0\}\}'"):
        simulator.load_config(["hardware=mi300x", "cluster.tier=spot", "pricing.hardware.mi300x.spot=2.0"])
    cfg = simulator.load_config(["hardware=mi300x", "cluster.tier=spot", "++pricing.hardware={mi300x: {spot: 2.0}}"])
    quoted = simulator.load_config(["hardware=mi300x", "++pricing.hardware={mi300x: {spot_source: AMD quote 2026}}"])
    assert quoted.pricing.hardware["mi300x"].spot_source == "AMD quote 2026"  # the advice for a value with spaces runs too
    assert cfg.pricing.hardware["mi300x"].spot == 2.0
    assert cfg.pricing.hardware["h100-sxm"].on_demand is not None  # merged into the catalog, not replacing it


@pytest.mark.parametrize("hardware,advised", [("h100-sxm", 2), ("a100-40gb", 4), ("l40s", 4)])
def test_big_model_fits_at_the_tensor_parallelism_the_error_advises(hardware, advised):
    # The fix the error message proposes must work: the smallest TP that divides the heads and fits.
    with pytest.raises(simulator.ConfigError, match=f"raise cluster.tp to {advised},"):
        simulator.load_config(["model=llama-3.1-70b", f"hardware={hardware}"])
    cfg = simulator.load_config(["model=llama-3.1-70b", f"hardware={hardware}", f"cluster.tp={advised}"])
    assert cfg.cluster.tp == advised


def test_a_tp_that_does_not_divide_the_heads_lists_the_ones_that_do():
    with pytest.raises(simulator.ConfigError, match="choose one of: 1, 2, 4, 8, 16, 32, 64"):
        simulator.load_config(["model=llama-3.1-70b", "cluster.tp=3"])


def _one_sentence(info) -> str:
    message = str(info.value)
    assert "\n" not in message and message.endswith(".")
    return message


def test_closed_loop_needs_num_requests():
    # not in CASES: those append workload.num_requests=10
    with pytest.raises(simulator.ConfigError) as info:
        simulator.run(["workload.arrival=closed_loop", "workload.num_requests=null", "workload.duration_s=60"])
    assert "workload.arrival=closed_loop needs workload.num_requests (got null)" in _one_sentence(info)


def test_empty_tier_name():
    # hydra's override grammar cannot spell an empty key; a config built in Python can
    base = simulator.compose(["workload.num_requests=10"])
    with pytest.raises(simulator.ConfigError) as info:
        simulator.run(["tiers={'': {share: 1}}"], config=base)
    assert "tiers has a tier named ''; tier names must be non-empty strings" in _one_sentence(info)


def test_trace_tier_not_in_tiers(tmp_path):
    trace = tmp_path / "tiers.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens,tier\n0,10,5,free\n1,10,5,gold\n")
    overrides = ["workload.arrival=trace", f"workload.trace.path={trace}", "++tiers={free: {share: 1}}"]
    with pytest.raises(simulator.ConfigError) as info:
        simulator.run(overrides)
    message = _one_sentence(info)
    assert f"trace {trace}, row 2 (line 3), column 'tier': tier 'gold' is not a tier of the scenario" in message
    assert "(the scenario defines free)" in message


CLI_CASES = [CASES[0], CASES[2], CASES[6], CASES[7], CASES[8]]


@pytest.mark.parametrize("overrides,fragment", CLI_CASES, ids=[" ".join(o) for o, _ in CLI_CASES])
def test_cli_prints_one_line_and_exits_2(overrides, fragment, tmp_path):
    proc = servesim_cli(*overrides, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"servesim: error: {proc.stderr.strip().removeprefix('servesim: error: ')}"
    assert fragment in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # nothing half-written
