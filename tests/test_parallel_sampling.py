"""Parallel sampling (workload.n): n completions per prompt sharing the prompt's KV blocks."""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.errors import ConfigError
from simulator.workload import generate
from tests.conftest import run

LONG = [
    "memory.prefix_caching=true", "workload.rate=0.5", "workload.num_requests=40",
    "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=2048",
    "workload.output_tokens.dist=fixed", "workload.output_tokens.value=128",
]  # fmt: skip


def test_each_prompt_becomes_n_consecutive_samples_of_one_prefix():
    base = generate(simulator.load_config(["workload.num_requests=50"]))
    w = generate(simulator.load_config(["workload.num_requests=50", "workload.n=3", "memory.prefix_caching=true"]))
    assert len(w) == 150 and w.leader is not None
    assert np.array_equal(w.arrival_s[::3], base.arrival_s) and np.array_equal(w.prompt_tokens[1::3], base.prompt_tokens)
    assert np.array_equal(w.output_tokens[::3], base.output_tokens)  # the first sample keeps the drawn length
    assert not np.array_equal(w.output_tokens[1::3], base.output_tokens)  # the others draw their own
    assert w.leader.tolist()[:6] == [0, 0, 0, 3, 3, 3]
    assert list(w.prefix_ids[0]) == list(w.prefix_ids[2]) != list(w.prefix_ids[3])


def test_n_samples_hold_far_less_than_n_times_the_kv():
    one, four = run(*LONG).summary, run(*LONG, "workload.n=4").summary
    ratio = four["kv_cache"]["mean_usage"] / one["kv_cache"]["mean_usage"]
    # 2,048 shared prompt tokens and 4 x 128 generated against 2,048 + 128: about 1.2x, far under 4x
    assert 1.0 < ratio < 1.6
    assert four["requests"]["completed"] == 4 * one["requests"]["completed"]


def test_the_prompt_is_computed_once_per_prompt_not_per_sample():
    one, four = run(*LONG), run(*LONG, "workload.n=4")
    once = int(one.steps["prefill_tokens"].sum())
    # each later sample recomputes at most its last partial block and the last token
    assert once <= int(four.steps["prefill_tokens"].sum()) <= once + 40 * 3 * 16


def test_later_samples_start_after_the_first_has_cached_the_prompt():
    r = run(*LONG, "workload.n=3").requests.sort_values("request_id")
    first, later = r.iloc[::3], r.drop(r.index[::3])
    assert (later["first_token_s"].to_numpy().reshape(-1, 2).min(axis=1) >= first["first_token_s"].to_numpy()).all()


def test_samples_follow_their_first_to_its_replica():
    r = run(*LONG, "workload.n=3", "cluster.replicas=2", "cluster.router=round_robin").requests.sort_values("request_id")
    replicas = r["replica"].to_numpy().reshape(-1, 3)
    assert (replicas == replicas[:, :1]).all()
    assert len(set(replicas[:, 0])) == 2  # the prompts themselves still spread


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["workload.n=0"], "workload.n must be an integer >= 1"),
        (["workload.n=2"], "set memory.prefix_caching=true"),
        (["workload.n=2", "memory.prefix_caching=true", "workload.arrival=closed_loop"], "needs open-loop arrivals"),
    ],
)
def test_bad_settings(overrides, words):
    with pytest.raises(ConfigError) as e:
        simulator.load_config(overrides)
    assert words in str(e.value)


def test_the_summary_counts_prompts_samples_and_what_they_shared():
    r = run(*LONG, "workload.n=3")
    ps = r.summary["parallel_sampling"]
    assert (ps["n"], ps["prompts"], ps["samples"], ps["prompts_completed"]) == (3, 40, 120, 40)
    # every later sample references the prompt's blocks but the one holding its last token (recomputed, as in vLLM)
    assert ps["shared_prompt_blocks"] == 40 * 2 * (2048 // 16 - 1)
    assert ps["prompt_e2e_s"]["mean"] >= r.summary["latency_s"]["e2e"]["mean"] * (1 - 1e-12)  # equal when each prompt's samples finish together (the two means then differ by rounding alone)
    assert "parallel_sampling" not in run(*LONG).summary
