"""``scheduler.multi_step``: vLLM V0's multi-step scheduling (``--num-scheduler-steps``).

The scheduler decides once per group of N decode steps, so requests that arrive
meanwhile wait for the group's end, and the engine's CPU work between forward
passes is paid once per group: each decode-only step carries an N-th of the
step overhead (vLLM RFC #6854). The policy units are in test_scheduler_units.py.
"""

from __future__ import annotations

import pytest

import simulator
from simulator.errors import ConfigError
from simulator.latency import build_latency_model
from simulator.latency.base import StepShape
from simulator.specs import ModelSpec
from tests.conftest import run


def latency(*overrides: str):
    cfg = simulator.load_config(["engine=vllm_v0", *overrides])
    return build_latency_model(cfg, ModelSpec.from_config(cfg.model, cfg.cluster.tp, pp=cfg.cluster.pp))


@pytest.mark.parametrize(("bad", "says"), [("0", "whole number of decode steps >= 1"), ("-2", "whole number"), ("1.5", "must be an integer")])
def test_multi_step_must_be_a_whole_number_of_steps(bad, says):
    with pytest.raises(ConfigError, match=says):
        simulator.load_config([f"scheduler.multi_step={bad}"])


@pytest.mark.parametrize("policy", ["static", "inflight", "chunked_prefill"])
def test_multi_step_is_for_vllms_v0_scheduler_without_chunking_only(policy):
    with pytest.raises(ConfigError, match="policy=continuous only"):
        simulator.load_config([f"scheduler.policy={policy}", "scheduler.multi_step=8", "memory.allocation=reserve_exact",
                               "workload.prompt_tokens.max=4096"])  # fmt: skip


@pytest.mark.parametrize("engine", ["vllm_v1", "sglang"])
def test_engines_without_multi_step_scheduling_refuse_it(engine):
    with pytest.raises(ConfigError, match=f"engine={engine} has none"):
        simulator.load_config([f"engine={engine}", "scheduler.policy=continuous", "scheduler.multi_step=8",
                               "workload.prompt_tokens.max=4096"])  # fmt: skip


@pytest.mark.parametrize(("override", "says"), [("scheduler.speculative.method=ngram", "speculative decoding"),
                                                ("workload.beam_width=2", "beam search")])  # fmt: skip
def test_multi_step_refuses_what_vllm_refuses(override, says):
    with pytest.raises(ConfigError, match=says):
        simulator.load_config(["scheduler.multi_step=4", override])


def test_a_decode_step_pays_an_nth_of_the_overhead_a_prefill_step_all_of_it():
    one, eight = latency(), latency("scheduler.multi_step=8")
    per_seq = latency("latency.step_overhead_per_seq_s=40e-6"), latency("latency.step_overhead_per_seq_s=40e-6", "scheduler.multi_step=8")
    decode = StepShape(decode_seqs=64, decode_ctx_tokens=64 * 900)
    assert one.step_time(decode) - eight.step_time(decode) == pytest.approx(0.003 * 7 / 8, rel=1e-9)
    assert per_seq[0].step_time(decode) - per_seq[1].step_time(decode) == pytest.approx((0.003 + 64 * 40e-6) * 7 / 8, rel=1e-9)
    assert eight.decode_step_time(64, 64 * 900) == eight.step_time(decode)  # the plain path prices it alike
    mixed = StepShape(prefill_seqs=1, prefill_tokens=512, prefill_attn_pairs=512 * 513 / 2, decode_seqs=64, decode_ctx_tokens=64 * 900)
    assert eight.step_time(mixed) == one.step_time(mixed)
    parts = eight.breakdown(decode)
    assert parts["step_overhead"] == pytest.approx(0.003 / 8) and sum(parts.values()) == pytest.approx(eight.step_time(decode))
    assert "once per 8 decode steps" in eight.describe() and "once per" not in one.describe()


def test_a_pipeline_charges_its_cycle_the_same_share():
    one, eight = latency("cluster.pp=2"), latency("cluster.pp=2", "scheduler.multi_step=8")
    decode = StepShape(decode_seqs=32, decode_ctx_tokens=32 * 500)
    assert one.step_time(decode) - eight.step_time(decode) == pytest.approx(0.003 * 7 / 8, rel=1e-9)
    assert sum(eight.breakdown(decode).values()) == pytest.approx(eight.step_time(decode))


BUSY = ["engine=vllm_v0", "workload.rate=12", "workload.num_requests=400", "workload.output_tokens.dist=fixed",
        "workload.output_tokens.value=200", "output.tables=true"]  # fmt: skip


def _decode_runs_before_admissions(steps):
    """Lengths of the runs of decode-only steps that end in a prefill step while decoders were in flight."""
    runs, k = [], 0
    for pre, in_flight, seqs in zip(steps["prefill_tokens"], steps["num_running"], steps["prefill_seqs"]):
        if pre:
            if k and in_flight > seqs:
                runs.append(k)
            k = 0
        else:
            k += 1
    return runs


def test_admissions_wait_for_the_end_of_a_group_and_decodes_get_faster():
    grouped, single = run(*BUSY, "scheduler.multi_step=8"), run(*BUSY)
    runs = _decode_runs_before_admissions(grouped.steps)
    assert len(runs) > 50 and all(k % 8 == 0 for k in runs)
    assert any(k % 8 for k in _decode_runs_before_admissions(single.steps))  # without groups, admissions come at any step
    g, s = grouped.summary["latency_s"], single.summary["latency_s"]
    assert g["tpot"]["mean"] < s["tpot"]["mean"]  # an eighth of the CPU work per decode step ...
    assert g["queue"]["mean"] > s["queue"]["mean"]  # ... and arrivals wait for the group to end


def test_a_profile_charges_a_decode_step_the_same_share():
    base = ["model=tiny-llama", "hardware=cpu", "latency.model=profile", "latency.profile.path=cpu-tiny-llama",
            "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256", "scheduler=continuous"]  # fmt: skip
    cfgs = [simulator.load_config([*base, f"scheduler.multi_step={n}"]) for n in (1, 4)]
    one, four = (build_latency_model(c, ModelSpec.from_config(c.model)) for c in cfgs)
    decode, prefill = StepShape(decode_seqs=8, decode_ctx_tokens=8 * 200), StepShape(prefill_seqs=1, prefill_tokens=100, prefill_attn_pairs=5050)
    overhead = one.breakdown(decode)["step_overhead"]
    assert overhead > 0
    assert one.step_time(decode) - four.step_time(decode) == pytest.approx(overhead * 3 / 4, rel=1e-9)
    assert four.breakdown(decode)["step_overhead"] == pytest.approx(overhead / 4)
    assert four.step_time(prefill) == one.step_time(prefill)


def test_a_disaggregated_decode_pool_takes_arriving_kv_at_a_groups_end():
    """vLLM V0's decode instance takes a request whose KV arrived at a scheduling step: with groups of 8 the
    second token can wait for up to 8 steps; without, for about one. (The prefill pool has no decode steps.)"""
    base = ["engine=vllm_v0", "cluster=disaggregated", "workload.rate=10", "workload.num_requests=300"]
    for n, lo, hi in ((8, 4.0, 12.0), (1, 0.0, 2.5)):
        r = run(*base, f"scheduler.multi_step={n}")
        step = r.steps.loc[r.steps["pool"] == "decode", "duration_s"].max()
        assert lo * step < r.summary["latency_s"]["itl"]["max"] < hi * step
        prefill, decode = r.summary["pools"]
        assert "multi_step" not in prefill and decode.get("multi_step", 1) == n
        assert "once per" not in prefill["latency_model"]
