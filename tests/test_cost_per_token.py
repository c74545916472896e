"""Cost per request and per token: the ``cost`` section's unit prices (simulator/metrics/cost.py)."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest
from rich.console import Console

import simulator
from simulator.metrics.cost import token_cost
from simulator.metrics.headline import FIGURES, headline
from simulator.report.console import render_summary
from tests.conftest import ORACLE, SMALL

H100_PRICE = 4.25  # scenarios/hardware/h100-sxm.yaml, the default GPU
UNIT_KEYS = ("usd_per_request", "usd_per_million_tokens", "usd_per_million_input_tokens", "usd_per_million_output_tokens")
CONSTANT = ["latency=constant", "latency.step_s=0.01", "workload.num_requests=300", "output.charts=false", "output.console=false"]


def _tokens(r: simulator.Result) -> tuple[int, int, int]:
    done = r.requests[r.requests["status"] == "completed"]
    return len(done), int(done["prompt_tokens"].sum()), int(done["output_tokens"].sum())


def _static_usd(r: simulator.Result) -> float:
    """A fixed one-GPU fleet: billed for the whole window at the H100's price."""
    return r.summary["window"]["end_s"] / 3600.0 * H100_PRICE


def test_one_request_at_a_time_splits_by_steps_exactly():
    # 16-token prompts, 5 output tokens, batch of one: each request is one prefill step then 4
    # decode steps, all 10 ms, so a fifth of the GPU time (and of the idle time) is input's.
    r = simulator.run([*ORACLE, "workload.num_requests=200", "workload.rate=20", "workload.output_tokens.dist=fixed",
                       "workload.output_tokens.value=5", "output.console=false"])  # fmt: skip
    cost = r.summary["cost"]
    n, prompt, output = _tokens(r)
    assert (n, prompt, output) == (200, 200 * 16, 200 * 5)
    usd = _static_usd(r)
    assert cost["usd"] == pytest.approx(usd)
    assert cost["input_gpu_share"] == pytest.approx(1 / 5)
    assert cost["usd_per_request"] == pytest.approx(usd / 200)
    assert cost["usd_per_million_tokens"] == pytest.approx(usd / (200 * 21) * 1e6)
    assert cost["usd_per_million_input_tokens"] == pytest.approx(usd * 0.2 / (200 * 16) * 1e6)
    assert cost["usd_per_million_output_tokens"] == pytest.approx(usd * 0.8 / (200 * 5) * 1e6)


def test_mixed_steps_split_by_prefill_tokens_and_decode_sequences():
    r = simulator.run([*CONSTANT, "scheduler=chunked_prefill"])
    st, cost = r.steps, r.summary["cost"]
    prefill, decode = st["prefill_tokens"].to_numpy(), st["decode_seqs"].to_numpy()
    assert ((prefill > 0) & (decode > 0)).sum() > 50  # chunked prefill mixes prompts into decode steps
    assert (st["duration_s"] == 0.01).all() and ((prefill + decode) > 0).all()
    # equal step times: the input share is the mean over steps of each step's prefill part
    share = sum(p / (p + d) for p, d in zip(prefill.tolist(), decode.tolist())) / len(st)
    n, prompt, output = _tokens(r)
    usd = _static_usd(r)
    assert cost["input_gpu_share"] == pytest.approx(share)
    assert cost["usd_per_million_input_tokens"] == pytest.approx(usd * share / prompt * 1e6)
    assert cost["usd_per_million_output_tokens"] == pytest.approx(usd * (1 - share) / output * 1e6)
    assert cost["usd_per_million_tokens"] == pytest.approx(usd / (prompt + output) * 1e6)


def test_the_figures_add_back_to_the_bill():
    r = simulator.run([*SMALL, "workload.num_requests=300"])
    cost = r.summary["cost"]
    n, prompt, output = _tokens(r)
    assert n > 0 and cost["usd"] > 0
    assert cost["usd_per_request"] * n == pytest.approx(cost["usd"])
    assert cost["usd_per_million_tokens"] * (prompt + output) / 1e6 == pytest.approx(cost["usd"])
    parts = cost["usd_per_million_input_tokens"] * prompt / 1e6 + cost["usd_per_million_output_tokens"] * output / 1e6
    assert parts == pytest.approx(cost["usd"])
    assert 0 < cost["input_gpu_share"] < 1
    # decoding a token costs more GPU time than prefilling one
    assert cost["usd_per_million_output_tokens"] > cost["usd_per_million_input_tokens"]


def test_prefill_only_work_is_charged_to_input():
    r = simulator.run([*SMALL, "workload.output_tokens.dist=fixed", "workload.output_tokens.value=1"])
    cost = r.summary["cost"]
    n, prompt, output = _tokens(r)
    assert output == n > 0
    assert cost["input_gpu_share"] > 0.99
    assert cost["usd_per_million_input_tokens"] * prompt / 1e6 == pytest.approx(cost["usd"], rel=0.01)
    assert cost["usd_per_million_output_tokens"] * output / 1e6 < 0.01 * cost["usd"]


def test_an_unknown_price_leaves_every_dollar_figure_none():
    r = simulator.run([*SMALL, "hardware.price_per_gpu_hour=null"])
    cost = r.summary["cost"]
    assert cost["usd"] is None
    assert all(cost[k] is None for k in UNIT_KEYS)
    assert 0 < cost["input_gpu_share"] < 1  # GPU time, not dollars: still known
    fig = headline(r.summary)
    assert math.isnan(fig["usd_per_million_tokens"]) and math.isnan(fig["usd_per_million_output_tokens"])
    assert "unit cost:" not in _console(r.summary)


def test_disaggregated_pools_bill_prefill_to_input_and_decode_to_output():
    r = simulator.run([*SMALL, "cluster=disaggregated"])
    cost = r.summary["cost"]
    by_group = cost["by_group"]
    n, prompt, output = _tokens(r)
    assert cost["usd_per_million_input_tokens"] * prompt / 1e6 == pytest.approx(by_group["prefill"]["usd"])
    assert cost["usd_per_million_output_tokens"] * output / 1e6 == pytest.approx(by_group["decode"]["usd"])


def test_each_group_is_split_by_its_own_steps_and_priced_at_its_own_rate():
    steps = pd.DataFrame(
        {
            "replica": [0, 0, 1, 1],
            "duration_s": [1.0, 1.0, 1.0, 3.0],
            "prefill_tokens": [100, 0, 0, 0],
            "decode_seqs": [0, 8, 4, 4],
        }
    )
    cost = {
        "gpu_hours": 3.0,
        "price_per_gpu_hour": None,
        "usd": 12.0,
        "by_group": {
            "a": {"gpu_hours": 1.0, "price_per_gpu_hour": 2.0, "usd": 2.0},  # half prefill
            "b": {"gpu_hours": 1.0, "price_per_gpu_hour": 4.0, "usd": 4.0},  # decode only
            "c": {"gpu_hours": 1.0, "price_per_gpu_hour": 6.0, "usd": 6.0},  # never stepped: the fleet's split
        },
    }
    out = token_cost(cost, steps, {0: "a", 1: "b"}, {"a": 1, "b": 2, "c": 1}, completed=4, input_tokens=100, output_tokens=40)
    fleet = 1.0 / (1.0 * 2 + 2 * 4.0)  # input GPU-seconds over busy GPU-seconds, b counting 2 GPUs a replica
    input_usd = 2.0 * 0.5 + 4.0 * 0.0 + 6.0 * fleet
    assert out["input_gpu_share"] == pytest.approx((0.5 + 0.0 + fleet) / 3)
    assert out["usd_per_million_input_tokens"] == pytest.approx(input_usd / 100 * 1e6)
    assert out["usd_per_million_output_tokens"] == pytest.approx((12.0 - input_usd) / 40 * 1e6)
    assert out["usd_per_request"] == pytest.approx(3.0)
    assert out["usd_per_million_tokens"] == pytest.approx(12.0 / 140 * 1e6)
    none = token_cost(cost, steps.iloc[:0], {}, {}, completed=0, input_tokens=0, output_tokens=0)
    assert all(v is None for v in none.values())


def test_headline_and_console_carry_the_unit_costs():
    r = simulator.run([*SMALL, "workload.num_requests=200"])
    cost, fig = r.summary["cost"], headline(r.summary)
    assert {"usd_per_million_tokens", "usd_per_million_output_tokens"} <= set(FIGURES) == set(fig)
    assert fig["usd_per_million_tokens"] == pytest.approx(cost["usd_per_million_tokens"])
    assert fig["usd_per_million_output_tokens"] == pytest.approx(cost["usd_per_million_output_tokens"])
    line = next(x for x in _console(r.summary).splitlines() if x.startswith("unit cost:"))
    assert "/1M input" in line and "/1M output tokens" in line and "/request" in line and len(line) <= 80
    keys = list(cost)
    assert keys.index("by_group") < keys.index("usd_per_request") < keys.index("input_gpu_share") < keys.index("note")


def _console(summary) -> str:
    buf = io.StringIO()
    render_summary(summary, None, Console(file=buf, width=200, highlight=False, soft_wrap=True))
    return buf.getvalue()
