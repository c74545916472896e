"""``scheduler.policy=inflight``: TensorRT-LLM's in-flight batching (docs/policies/inflight.md)."""

from __future__ import annotations

import pytest

import simulator
from tests.conftest import run

BASE = ["latency=constant", "latency.step_s=0.01", "workload.rate=20", "workload.num_requests=200",
        "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=1000",
        "workload.output_tokens.dist=fixed", "workload.output_tokens.value=50", "output.charts=false", "output.console=false"]


def test_whole_prompts_share_steps_with_decodes():
    steps = run(*BASE, "scheduler.policy=inflight", "scheduler.max_batch_tokens=4096", base=[]).steps
    mixed = steps[(steps["prefill_tokens"] > 0) & (steps["decode_seqs"] > 0)]
    assert len(mixed) > 0
    assert (steps.loc[steps["prefill_tokens"] > 0, "prefill_tokens"] % 1000 == 0).all()  # never a chunk
    # continuous batching never mixes them: a prefill step pauses every decode
    cont = run(*BASE, "scheduler.policy=continuous", "scheduler.max_batch_tokens=4096", base=[]).steps
    assert not ((cont["prefill_tokens"] > 0) & (cont["decode_seqs"] > 0)).any()


def test_a_step_holds_no_more_than_its_token_budget():
    steps = run(*BASE, "scheduler.policy=inflight", "scheduler.max_batch_tokens=2500", base=[]).steps
    assert (steps["prefill_tokens"] + steps["decode_seqs"] <= 2500).all()
    assert steps["prefill_tokens"].max() == 2000  # two whole prompts fit beside a few decodes, three never do


def test_prompts_beyond_the_budget_are_a_config_error_or_rejected():
    with pytest.raises(simulator.ConfigError, match="inflight batching could never schedule"):
        simulator.load_config([*BASE, "scheduler.policy=inflight", "scheduler.max_batch_tokens=512"])
    r = run(*BASE[:4], "workload.prompt_tokens.dist=exponential", "workload.prompt_tokens.mean=300",
            "workload.output_tokens.dist=fixed", "workload.output_tokens.value=50", "output.charts=false",
            "output.console=false", "scheduler.policy=inflight", "scheduler.max_batch_tokens=1024", base=[])
    too_long = r.requests["prompt_tokens"] > 1024
    assert too_long.any() and (r.requests.loc[too_long, "reject_reason"] == "prompt_exceeds_max_batch_tokens").all()


def test_prompts_near_the_budget_are_warned_about():
    with pytest.warns(UserWarning, match="a prompt joins only when the running batch leaves room for it whole"):
        simulator.load_config(["engine=trtllm", "workload.prompt_tokens.max=8192"])  # prompts up to the budget
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulator.load_config(["engine=trtllm", "scheduler.max_batch_tokens=32768"])


def test_engine_trtllm_selects_it_with_no_evict_reservations():
    cfg = simulator.load_config(["engine=trtllm", "memory.max_model_len=15360", "scheduler.max_batch_tokens=16384"])
    assert cfg.scheduler.policy == "inflight" and cfg.memory.allocation == "reserve_exact"
    assert cfg.engine_name == "trtllm"


@pytest.mark.parametrize(("engine", "policy"), [("vllm_v0", "continuous"), ("vllm_v05", "continuous"), ("vllm_v1", "chunked_prefill"),
                                                ("sglang", "chunked_prefill"), ("trtllm", "inflight")])  # fmt: skip
def test_an_engine_sets_its_policy_and_a_scheduler_choice_on_the_command_line_wins(engine, policy):
    short = "workload.prompt_tokens.max=4096"
    preset = simulator.load_config([f"engine={engine}", short])
    assert preset.scheduler.policy == policy
    other = "static" if policy != "static" else "continuous"
    for order in ([f"engine={engine}", f"scheduler={other}"], [f"scheduler={other}", f"engine={engine}"]):
        cfg = simulator.load_config([*order, short, "memory.max_model_len=8192"])
        assert cfg.scheduler.policy == other  # the user's choice, not silently the preset's
        assert cfg.scheduler.max_batch_size == preset.scheduler.max_batch_size  # the engine's limits stay
    assert simulator.load_config(["scheduler=inflight", short]).scheduler.policy == "inflight"
