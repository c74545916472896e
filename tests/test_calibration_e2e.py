"""servesim-calibrate end to end on the CPU: measure -> fit -> validate -> simulate.

The error bound here is the CPU one. A 2-core CI VM drifts by up to ~30%
between back-to-back timings and a parallel test worker adds load, so the
bound is loose: median APE <= 35%, p90 <= 100%. On a quiet machine the same
run gives a median of 4-10% and a p90 of 15-40% (see the shipped profile's
validation.md). It still fails for modelling mistakes such as a layer counted
twice (~+100% everywhere), an operator family left out, or a unit error.
The GPU target (median <= 5%, p90 <= 10% for Llama-3.1-8B) needs a GPU.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator.calibration import cli  # noqa: E402
from simulator.calibration import profile as fmt  # noqa: E402

MEDIAN_BOUND = 0.35
P90_BOUND = 1.00
PROVENANCE = ("device", "device_kind", "torch", "dtype", "model", "tp", "grid", "date", "step_overhead_s", "statistic")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    out = tmp_path_factory.mktemp("calib") / "cpu-tiny"
    rc = cli.main(["run", "--model", "tiny-llama", "--out", str(out), "--threads", "1", "--statistic", "p10", "--repeats", "7"])
    assert rc == 0
    return out


def test_run_writes_a_profile_with_provenance(measured):
    for name in (fmt.PARQUET, fmt.METADATA, "validation.md", "validation.json", "validation.png"):
        assert (measured / name).stat().st_size > 0, name
    meta = json.loads((measured / fmt.METADATA).read_text())
    for key in PROVENANCE:
        assert meta.get(key) is not None, key
    assert meta["device_kind"] == "cpu" and meta["model"]["name"] == "tiny-llama" and meta["tp"] == 1
    assert meta["format"] == fmt.FORMAT
    prof = fmt.load(str(measured))
    assert {"qkv", "mlp_down", "attn_prefill", "attn_decode", "lm_head"} <= prof.ops()


def test_validation_error_is_within_the_cpu_bound(measured):
    summary = json.loads((measured / "validation.json").read_text())["summary"]
    assert summary["steps"] >= 12
    assert summary["median_ape"] <= MEDIAN_BOUND, summary
    assert summary["p90_ape"] <= P90_BOUND, summary


def test_a_measured_profile_drives_a_simulation(measured):
    r = simulator.run(
        ["model=tiny-llama", "hardware=cpu", "latency.model=profile", f"latency.profile.path={measured}",
         "workload.num_requests=200", "workload.rate=20", "workload.prompt_tokens.max=1024",
         "workload.output_tokens.max=256", "output.charts=false"]
    )
    assert r.summary["requests"]["completed"] == 200
    assert r.summary["scenario"]["latency_model"] == "profile cpu-tiny"


def test_the_shipped_cpu_profile_is_usable_by_name():
    cfg = simulator.load_config(
        ["model=tiny-llama", "hardware=cpu", "latency.model=profile", "latency.profile.path=cpu-tiny-llama",
         "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256"]
    )
    assert cfg.latency.profile.path == "cpu-tiny-llama"
    meta = fmt.load("cpu-tiny-llama").metadata
    assert meta["validation"]["median_ape"] <= MEDIAN_BOUND


def test_cli_reports_errors_in_one_line(capsys, tmp_path):
    assert cli.main(["run", "--model", "no-such-model", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("servesim-calibrate: error: --model='no-such-model' is not a known model")
