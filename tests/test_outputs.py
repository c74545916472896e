"""The public contract: Result, run directory files, columns, determinism, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources

import pandas as pd
import pytest

import simulator
from tests.conftest import SMALL, run

REQUEST_COLUMNS = {
    "request_id", "arrival_s", "prompt_tokens", "output_tokens", "status", "reject_reason", "replica",
    "first_token_s", "finish_s", "queue_s", "ttft_s", "tpot_s", "e2e_s", "preemptions",
}
STEP_COLUMNS = {
    "replica", "start_s", "duration_s", "prefill_tokens", "decode_seqs", "batch_size",
    "kv_blocks_used", "kv_blocks_total",
}
FILES = ("requests.parquet", "steps.parquet", "summary.json", "scenario.yaml", "latency_cdf.png")


def test_result_tables_carry_the_contract_columns(default_result):
    assert REQUEST_COLUMNS <= set(default_result.requests.columns)
    assert STEP_COLUMNS <= set(default_result.steps.columns)
    assert len(default_result.requests) == 600


def test_summary_has_the_promised_figures(default_result):
    s = default_result.summary
    for metric in ("ttft", "tpot", "itl", "e2e"):
        assert set(s["latency_s"][metric]) >= {"mean", "p50", "p90", "p99"}
    assert s["requests"]["completed"] + s["requests"]["rejected"] == s["requests"]["total"]
    assert 0 <= s["slo"]["attainment"] <= 1
    assert s["slo"]["goodput_rps"] <= s["throughput"]["requests_per_s"] + 1e-12
    assert s["cost"]["gpus"] == 1 and s["cost"]["usd"] == pytest.approx(s["cost"]["gpu_hours"] * 4.25)
    assert 0 < s["kv_cache"]["peak_usage"] <= 1
    # Percentiles are ordered.
    for metric in ("ttft", "tpot", "itl", "e2e"):
        d = s["latency_s"][metric]
        assert d["p50"] <= d["p90"] <= d["p99"] <= d["max"]


def test_percentiles_match_the_requests_table(default_result):
    df = default_result.requests
    ttft = df.loc[df["status"] == "completed", "ttft_s"]
    assert default_result.summary["latency_s"]["ttft"]["p99"] == pytest.approx(ttft.quantile(0.99))
    assert default_result.summary["latency_s"]["e2e"]["p50"] == pytest.approx(df["e2e_s"].median())


def test_slo_attainment_and_goodput_follow_the_definition(default_result):
    r = simulator.run(SMALL + ["workload.num_requests=600", "slo.ttft_s=0.1", "slo.tpot_s=0.03"])
    df = r.requests
    ok = (df["status"] == "completed") & (df["ttft_s"] <= 0.1) & (df["tpot_s"].isna() | (df["tpot_s"] <= 0.03))
    assert 0 < ok.mean() < 1  # the SLOs bite
    assert r.summary["slo"]["attainment"] == pytest.approx(ok.mean())
    assert r.summary["slo"]["goodput_rps"] == pytest.approx(ok.sum() / r.summary["window"]["end_s"])


def test_save_writes_every_file(default_result, tmp_path):
    default_result.save(tmp_path, charts=True)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0
    back = pd.read_parquet(tmp_path / "requests.parquet")
    pd.testing.assert_frame_equal(back, default_result.requests, check_dtype=False)
    assert json.loads((tmp_path / "summary.json").read_text())["requests"]["total"] == 600


def test_same_seed_gives_byte_identical_outputs(tmp_path):
    for d in ("a", "b"):
        run("seed=7", "output.charts=true").save(tmp_path / d)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_workload():
    a, b = run("seed=1"), run("seed=2")
    assert not a.requests["arrival_s"].equals(b.requests["arrival_s"])


def test_run_accepts_a_config_and_overrides():
    cfg = simulator.compose(SMALL + ["workload.num_requests=50"])
    r = simulator.run(["workload.rate=3"], config=cfg)
    assert r.config.workload.rate == 3 and len(r.requests) == 50
    r2 = simulator.run(config=r.config)
    pd.testing.assert_frame_equal(r.requests, r2.requests)


def test_scenarios_ship_inside_the_package():
    root = resources.files("simulator.scenarios")
    assert root.joinpath("config.yaml").is_file()
    for group in ("hardware", "model", "workload", "scheduler", "latency", "memory"):
        assert any(p.name.endswith(".yaml") for p in root.joinpath(group).iterdir()), group


def test_cli_default_scenario_prints_summary_and_writes_files(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "workload.num_requests=200", f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for fragment in ("llama-3.1-8b", "h100-sxm", "TTFT", "TPOT", "ITL", "e2e", "throughput", "KV cache", "outputs:"):
        assert fragment in out
    for name in FILES:
        assert (tmp_path / "run" / name).is_file(), name
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["requests"]["completed"] == 200


def test_cli_multirun_sweeps(tmp_path):
    proc = subprocess.run(
        [
            sys.executable, "-m", "simulator.cli", "-m", "workload.rate=4,8", "workload.num_requests=50",
            "output.console=false", "output.charts=false", f"hydra.sweep.dir={tmp_path}/sweep",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    rates = sorted(json.loads((tmp_path / "sweep" / str(i) / "summary.json").read_text())["scenario"]["rate_rps"] for i in (0, 1))
    assert rates == [4.0, 8.0]


def test_the_decode_batch_is_reported_apart_from_prefill_only_steps():
    """Under continuous batching a step prefills or decodes; the mean over every step mixes
    prefill-only steps (a few new requests) into what users read as the decode batch."""
    r = simulator.run(["workload.num_requests=300", "output.charts=false", "output.console=false"])
    st, eng = r.steps, r.summary["engine"]
    decoding = st[st["decode_seqs"] > 0]
    assert eng["mean_decode_batch"] == pytest.approx(decoding["decode_seqs"].mean())
    assert eng["decode_step_share"] == pytest.approx(len(decoding) / len(st))
    assert 0 < eng["decode_step_share"] < 1 and eng["mean_decode_batch"] > eng["mean_batch_size"]


def test_help_says_what_the_tool_does_first():
    out = subprocess.run([sys.executable, "-m", "simulator.cli", "--help"], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0].startswith("servesim: simulate an LLM serving cluster")
    assert "Common commands:" in out and "servesim engine=vllm_v1" in out and "docs/" in out
    assert "engine: sglang, trtllm, vllm_v0, vllm_v05, vllm_v1" in out  # the groups, generated by hydra
    assert len(lines) < 60 and "powered by Hydra" not in out


def test_tables_can_be_left_out_for_large_sweeps(tmp_path):
    """output.tables=false: summary.json and scenario.yaml only; the summary is the same as with the tables."""
    import json

    import simulator

    lean = simulator.run(["workload.num_requests=100", "output.tables=false", "output.charts=false"])
    lean.save(tmp_path / "lean")
    assert sorted(p.name for p in (tmp_path / "lean").iterdir()) == ["scenario.yaml", "summary.json"]
    full = simulator.run(["workload.num_requests=100", "output.charts=false"])
    assert json.loads((tmp_path / "lean" / "summary.json").read_text())["latency_s"] == json.loads(json.dumps(full.summary["latency_s"]))
