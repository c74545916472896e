"""Beam search (workload.beam_width): w beams in lock-step sharing their common history's KV blocks.

The genealogy is neutral (each beam's parent drawn uniformly); with the vLLM
paper's Alpaca lengths (19 tokens in, 58 out on average) its memory saving
lands next to the paper's measured one (Kwon et al., SOSP 2023, section 6.3:
37.6% to 55.2% for widths 2 to 6) without any fitted factor.
"""

from __future__ import annotations

import numpy as np
import pytest

import simulator
from simulator.engine.beam import Genealogy
from simulator.errors import ConfigError

ALPACA = [
    "workload.num_requests=300", "workload.rate=5",
    "workload.prompt_tokens.dist=fixed", "workload.prompt_tokens.value=19",
    "workload.output_tokens.dist=fixed", "workload.output_tokens.value=58",
]  # fmt: skip


def test_one_beam_holds_what_one_sequence_holds():
    g = Genealogy(1, 40, 16, np.random.default_rng(0))
    for t in range(1, 60):
        g.step()
        assert g.blocks() == -(-(40 + t) // 16) and g.tokens() == 40 + t


def test_beams_share_all_but_their_recent_history():
    """Four beams after 200 tokens hold far fewer blocks than four copies, and at least one beam's worth."""
    g = Genealogy(4, 64, 16, np.random.default_rng(1))
    for _ in range(200):
        g.step()
    one_beam = (64 + 200) // 16 + 1
    assert one_beam <= g.blocks() < 1.5 * one_beam < g.unshared_blocks() == 4 * one_beam


def test_the_saving_on_alpaca_lengths_is_near_the_vllm_papers():
    saving = {w: simulator.run([*ALPACA, f"workload.beam_width={w}"]).summary["beam_search"]["memory_saving"] for w in (2, 4, 6)}
    assert saving[2] == pytest.approx(0.376, abs=0.05) and saving[6] == pytest.approx(0.552, abs=0.05)
    assert saving[2] < saving[4] < saving[6]  # wider beams share more


def test_each_beam_is_a_sequence_of_the_batch_and_every_request_gets_its_answer():
    r = simulator.run([*ALPACA, "workload.beam_width=4", "workload.rate=1"])
    decoding = r.steps[r.steps["decode_seqs"] > 0]
    assert (decoding["decode_seqs"] % 4 == 0).all()
    assert (r.requests["status"] == "completed").all() and (r.requests["output_tokens"] == 58).all()
    one = simulator.run([*ALPACA, "workload.rate=1"]).summary
    four = r.summary
    assert four["kv_cache"]["mean_usage"] < 2 * one["kv_cache"]["mean_usage"]  # not 4x: the beams share


@pytest.mark.parametrize(
    "overrides,words",
    [
        (["workload.beam_width=0"], "workload.beam_width must be an integer >= 1"),
        (["workload.beam_width=2", "workload.n=2", "memory.prefix_caching=true"], "either sampled n times or beam-searched"),
        (["workload.beam_width=2", "memory.allocation=reserve_max", "memory.max_model_len=16384"], "memory.allocation=paged"),
        (["workload.beam_width=4", "scheduler.max_batch_size=2"], "scheduler.max_batch_size >= 4"),
    ],
)
def test_bad_settings(overrides, words):
    with pytest.raises(ConfigError) as e:
        simulator.load_config(overrides)
    assert words in str(e.value)
