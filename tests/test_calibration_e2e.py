"""servesim-calibrate end to end on the CPU: measure -> fit -> validate -> simulate.

The bound asserted here is the CPU one, and it is drift-robust. Operators are
timed first and whole steps a minute later; on a shared 2-core VM the machine
speed changes in between (other processes, a parallel test worker, frequency
and steal), which shows as one common factor between predicted and measured
times. Measured under deliberate load (three busy processes on two cores):
that factor fell to 0.55 while the steps' ranking stayed right (Spearman
>= 0.947) and the error after removing the factor stayed small (median <=
0.24); beside the cluster tests' heavier workers it reached 0.40 (Spearman
0.978), against 0.03-0.07 alone. So the test asserts: Spearman rank
correlation >= 0.9, the common factor within [0.5, 2], and median error
after removing it <= 50% (a broken fit fails all three). On a
quiet machine the absolute errors are median 5-12%, p90 9-40% (the shipped
profile's validation.md: 9.0% / 16.7%). The GPU target (median <= 5%,
p90 <= 10% for Llama-3.1-8B) needs a GPU.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator.calibration import cli  # noqa: E402
from simulator.calibration import profile as fmt  # noqa: E402

MIN_RANK_CORRELATION = 0.9
SCALE_BAND = (0.5, 2.0)
SCALED_MEDIAN_BOUND = 0.50
SHIPPED_MEDIAN_BOUND = 0.20  # the shipped profile was validated on a quiet machine
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
    report = json.loads((measured / "validation.json").read_text())
    steps = pd.DataFrame(report["steps"])
    assert report["summary"]["steps"] == len(steps) >= 12
    ratio = steps["predicted_s"] / steps["measured_s"]
    scale = float(np.median(ratio))
    scaled_error = (ratio / scale - 1).abs()
    rank_corr = steps["predicted_s"].rank().corr(steps["measured_s"].rank())
    detail = f"scale {scale:.2f}, scaled median {scaled_error.median():.2f}, rank correlation {rank_corr:.3f}"
    assert rank_corr >= MIN_RANK_CORRELATION, detail
    assert SCALE_BAND[0] <= scale <= SCALE_BAND[1], detail
    assert scaled_error.median() <= SCALED_MEDIAN_BOUND, detail


def test_a_measured_profile_drives_a_simulation(measured):
    r = simulator.run(
        ["model=tiny-llama", "hardware=cpu", "latency.model=profile", f"latency.profile.path={measured}",
         "workload.num_requests=200", "workload.rate=20", "workload.prompt_tokens.max=1024",
         "workload.output_tokens.max=256", "output.charts=false"]
    )
    assert r.summary["requests"]["completed"] == 200
    assert r.summary["scenario"]["latency_model"].startswith("profile cpu-tiny")


def test_the_shipped_cpu_profile_is_usable_by_name():
    cfg = simulator.load_config(
        ["model=tiny-llama", "hardware=cpu", "latency.model=profile", "latency.profile.path=cpu-tiny-llama",
         "workload.prompt_tokens.max=1024", "workload.output_tokens.max=256"]
    )
    assert cfg.latency.profile.path == "cpu-tiny-llama"
    meta = fmt.load("cpu-tiny-llama").metadata
    assert meta["validation"]["median_ape"] <= SHIPPED_MEDIAN_BOUND


def test_cli_reports_errors_in_one_line(capsys, tmp_path):
    assert cli.main(["run", "--model", "no-such-model", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("servesim-calibrate: error: --model='no-such-model' is not a known model")
