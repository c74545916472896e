"""Speculative decoding: the acceptance model, exact token accounting, memory, and both regimes.

The regime tests are the lever's claim: with high acceptance at small batch a
draft model lowers TPOT; at large batch, or with low acceptance, the proposal
and the wider verification cost more than the extra tokens save.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import simulator
from simulator.config.catalog import load_model
from simulator.engine.request import Request
from simulator.engine.speculative import Acceptance, SpeculativeRunningSet
from simulator.errors import ConfigError
from simulator.specs import ModelSpec, device_bytes

CLOSED = [
    "workload.arrival=closed_loop", "workload.think_s=0",
    "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=512",
    "workload.output_tokens.dist=fixed", "workload.output_tokens.value=256",
]  # fmt: skip


def run(*overrides: str) -> simulator.Result:
    return simulator.run(list(overrides))


def spec_run(users: int, alpha: float, method: str = "draft", *extra: str) -> dict:
    ov = [*CLOSED, f"workload.users={users}", f"workload.num_requests={max(4 * users, 16)}",
          f"scheduler.speculative.method={method}", f"scheduler.speculative.acceptance_rate={alpha}", *extra]  # fmt: skip
    if method == "draft":
        ov.append("scheduler.speculative.draft_model=llama-3.2-1b")
    return run(*ov).summary


# --------------------------------------------------------------------------- the acceptance model


@pytest.mark.parametrize("alpha,k", [(0.7, 4), (0.3, 2), (0.95, 7)])
def test_tokens_per_step_follow_the_truncated_geometric_law(alpha, k):
    """E[A + 1] = (1 - a^(k+1)) / (1 - a); the tolerance is 4 standard errors of the sample mean."""
    acc = Acceptance(k, alpha, 0.0, np.random.default_rng(1))
    kept = acc.draw(np.full(200_000, alpha)) + 1
    se = kept.std(ddof=1) / math.sqrt(len(kept))
    assert abs(kept.mean() - acc.expected_tokens()) < 4 * se
    assert kept.min() == 1 and kept.max() == k + 1


def test_a_spread_gives_each_request_its_own_rate_with_the_configured_mean():
    acc = Acceptance(4, 0.6, 0.15, np.random.default_rng(2))
    reqs = [Request(i, 0.0, 10, 10) for i in range(4000)]
    rates = np.array([acc.rate_of(r) for r in reqs])
    assert acc.rate_of(reqs[0]) == rates[0]  # drawn once per request
    assert abs(rates.mean() - 0.6) < 4 * rates.std() / math.sqrt(len(rates))
    assert abs(rates.std() - 0.15) < 0.01


def test_look_ahead_slots_take_a_block_before_the_context_reaches_it():
    """k = 4: a member at 14 entries in 1 block of 16 needs a second block for its 5 verified positions."""
    rs = SpeculativeRunningSet(16, True, Acceptance(4, 0.5, 0.0, np.random.default_rng(0)))
    near, far, ending = Request(1, 0.0, 10, 100), Request(2, 0.0, 3, 100), Request(3, 0.0, 14, 2)
    for r, kv in ((near, 14), (far, 3), (ending, 15)):
        r.blocks, r.generated = 1, 1
        rs.add(r, kv)  # ending: one token left, so one look-ahead slot, which its block still holds
    assert rs.block_needers() == [near]


# --------------------------------------------------------------------------- exact accounting (constant latency)


def test_certain_acceptance_emits_k_plus_one_tokens_per_step():
    """latency=constant, one request, 257 output tokens: 1 prefill step, then ceil(256 / 5) verification steps."""
    common = [*CLOSED, "workload.users=1", "workload.num_requests=1", "workload.output_tokens.value=257",
              "latency=constant", "latency.step_s=0.01"]  # fmt: skip
    r = run(*common, "scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_rate=1")
    assert r.requests["e2e_s"].iloc[0] == pytest.approx(0.01 * (1 + math.ceil(256 / 5)))
    plain = run(*common, "scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_rate=0")
    assert plain.requests["e2e_s"].iloc[0] == pytest.approx(0.01 * 257)  # nothing accepted: one token a step


def test_every_request_gets_exactly_its_tokens_and_steps_count_them():
    r = run("workload.num_requests=300", "scheduler.speculative.method=ngram", "latency=constant", "latency.step_s=0.005")
    done = r.requests[r.requests["status"] == "completed"]
    assert len(done) == 300
    assert r.summary["preemption"]["count"] == 0  # so no token is produced twice
    assert int(r.steps["new_tokens"].sum()) == int(done["output_tokens"].sum())


def test_same_seed_same_outputs():
    a = run("workload.num_requests=200", "scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_spread=0.2")
    b = run("workload.num_requests=200", "scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_spread=0.2")
    assert a.requests.equals(b.requests) and a.steps.equals(b.steps)


# --------------------------------------------------------------------------- memory


def test_a_draft_model_takes_weights_and_keeps_its_own_kv_of_every_token():
    s = run("workload.num_requests=50", "scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.2-1b").summary
    base = run("workload.num_requests=50").summary
    target, draft = ModelSpec.from_config(load_model("llama-3.1-8b")), ModelSpec.from_config(load_model("llama-3.2-1b"))
    cfg = simulator.load_config([])
    usable = device_bytes(cfg.hardware) * cfg.memory.gpu_memory_utilization - cfg.memory.activation_reserve_gb * 1e9
    expected = int((usable - target.weight_bytes - draft.weight_bytes) // (target.kv_bytes_per_token + draft.kv_bytes_per_token))
    assert s["kv_cache"]["tokens_per_replica"] == expected
    assert s["kv_cache"]["tokens_per_replica"] < 0.8 * base["kv_cache"]["tokens_per_replica"]


# --------------------------------------------------------------------------- both regimes (roofline)


def test_high_acceptance_at_batch_one_lowers_tpot():
    none, draft = spec_run(1, 0.8, "none"), spec_run(1, 0.8, "draft")
    assert draft["latency_s"]["tpot"]["mean"] < none["latency_s"]["tpot"]["mean"] / 1.5


def test_at_large_batch_the_draft_no_longer_pays():
    none, draft = spec_run(256, 0.8, "none"), spec_run(256, 0.8, "draft")
    assert draft["latency_s"]["tpot"]["mean"] >= none["latency_s"]["tpot"]["mean"]


def test_low_acceptance_is_a_loss_even_at_batch_one():
    none, draft = spec_run(1, 0.3, "none"), spec_run(1, 0.3, "draft")
    assert draft["latency_s"]["tpot"]["mean"] > none["latency_s"]["tpot"]["mean"]


def test_the_gain_shrinks_as_the_batch_grows():
    gains = [spec_run(u, 0.8, "none")["latency_s"]["tpot"]["mean"] / spec_run(u, 0.8, "ngram")["latency_s"]["tpot"]["mean"] for u in (1, 64, 256)]
    assert gains[0] > gains[1] > gains[2]


def test_the_latency_description_names_the_lever():
    s = spec_run(1, 0.8, "ngram")
    assert s["scenario"]["latency_model"].endswith("+ speculative ngram k=4")


def test_mtp_needs_a_model_that_ships_the_module():
    with pytest.raises(ConfigError, match="model llama-3.1-8b has none"):
        simulator.load_config(["scheduler.speculative.method=mtp"])
    cfg = simulator.load_config(["model=deepseek-v3", "hardware=h200", "cluster.tp=8", "scheduler.speculative.method=mtp"])
    assert cfg.model.mtp_layers == 1


def test_with_a_spread_the_expected_tokens_are_the_per_step_average():
    """Requests that keep fewer tokens take more steps: the run's average is the harmonic mean over the Beta."""
    r = run("workload.num_requests=300", "workload.output_tokens.dist=fixed", "workload.output_tokens.value=1000",
            "scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_spread=0.3",
            "latency=constant", "latency.step_s=0.01")  # fmt: skip
    sp = r.summary["speculative"]
    # 300 requests' own rates: the estimate's relative standard deviation is 3.4% (simulated over 4,000
    # sets of 300 Beta draws); 4 of them
    assert sp["tokens_per_step"] == pytest.approx(sp["expected_tokens_per_step"], rel=4 * 0.034)
    assert sp["expected_tokens_per_step"] < 2.7731  # below the fixed-rate law: slow requests weigh more


# --------------------------------------------------------------------------- bad settings


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["scheduler.speculative.method=foo"], "is not known; choose one of: none, draft, ngram, mtp"),
        (["scheduler.speculative.method=draft"], "needs scheduler.speculative.draft_model"),
        (["scheduler.speculative.method=ngram", "scheduler.speculative.num_tokens=16"], "from 1 to memory.block_size - 1 = 15"),
        (["scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_rate=1.5"], "acceptance_rate"),
        (["scheduler.speculative.method=ngram", "scheduler.speculative.acceptance_spread=0.5"], "sqrt(rate x (1 - rate))"),
        (["scheduler.speculative.method=ngram", "scheduler=static"], "continuous or chunked_prefill"),
        (["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=mistral-7b"], "share the target's tokenizer"),
        (["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=nope"], "is not a known model"),
    ],
)
def test_bad_settings_are_one_clear_sentence(overrides, words):
    with pytest.raises(ConfigError, match=None) as e:
        simulator.load_config(overrides)
    assert words in str(e.value)


def test_the_summary_reports_the_tokens_kept_within_sampling_error_of_the_law():
    """Long outputs (truncation at a request's end is rare); 4 standard errors from the exact variance."""
    k, a = 4, 0.7
    r = run("workload.num_requests=200", "workload.output_tokens.dist=fixed", "workload.output_tokens.value=1000",
            "scheduler.speculative.method=ngram", "latency=constant", "latency.step_s=0.01")  # fmt: skip
    sp = r.summary["speculative"]
    pmf = np.array([a**j * (1 - a) for j in range(k)] + [a**k])  # A = 0..k accepted
    kept = np.arange(1, k + 2)
    mean, var = float(pmf @ kept), float(pmf @ kept**2) - float(pmf @ kept) ** 2
    assert sp["expected_tokens_per_step"] == pytest.approx(mean)
    assert abs(sp["tokens_per_step"] - mean) < 4 * math.sqrt(var / sp["verified_seq_steps"]) + 0.01  # + the end-of-request cap


def test_deepseek_v3s_mtp_module_is_one_moe_layer_of_about_the_published_14b():
    from simulator.latency.speculative import proposer_spec

    cfg = simulator.load_config(["model=deepseek-v3", "hardware=h200", "cluster.tp=8", "scheduler.speculative.method=mtp"])
    target = ModelSpec.from_config(cfg.model, 8)
    mtp = proposer_spec(cfg, target)
    assert mtp is not None and mtp.params_total == pytest.approx(14e9, rel=0.06)  # DeepSeek-V3 card: 671B main + 14B MTP


def test_a_draft_must_be_smaller_than_the_model_and_fit_beside_it():
    with pytest.raises(ConfigError, match="is not smaller than model llama-3.1-8b"):
        simulator.load_config(["scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.1-70b"])
    with pytest.raises(ConfigError, match="with its draft llama-3.1-8b does not fit"):
        simulator.load_config(["model=llama-3.1-70b", "cluster.tp=2", "memory.activation_reserve_gb=5",
                               "scheduler.speculative.method=draft", "scheduler.speculative.draft_model=llama-3.1-8b"])  # fmt: skip
