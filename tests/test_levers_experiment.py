"""experiment=levers: every lever runs by its one-line override, and the report draws the comparison."""

from __future__ import annotations

from pathlib import Path

import pytest

import simulator
from simulator.report.cli import report
from simulator.report.sweep_levers import lever_figures
from tests.conftest import servesim_cli

LEVERS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "scenarios" / "lever").glob("*.yaml"))


def test_the_experiment_sweeps_every_lever_file():
    text = (Path(__file__).resolve().parents[1] / "scenarios" / "experiment" / "levers.yaml").read_text()
    swept = next(line for line in text.splitlines() if line.strip().startswith("lever:")).split(":", 1)[1].strip()
    assert sorted(swept.split(",")) == LEVERS


@pytest.mark.parametrize("lever", LEVERS)
def test_each_lever_is_one_override_that_changes_the_run(lever):
    base = simulator.run(["workload.num_requests=150"]).summary
    s = simulator.run([f"lever={lever}", "workload.num_requests=150"]).summary
    if lever == "baseline":
        assert s == base
    else:
        assert s["latency_s"]["ttft"] != base["latency_s"]["ttft"] or s["scenario"] != base["scenario"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("levers")
    r = servesim_cli(
        "-m", "experiment=levers", "lever=baseline,fp8,orca", "workload.rate=5,15,30", "workload.num_requests=400",
        f"hydra.sweep.dir={out}", cwd=out, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def test_the_report_ranks_the_levers_and_draws_the_page(sweep, tmp_path):
    df, written, _ = report(sweep, out=tmp_path, formats=("png",))
    assert (tmp_path / "levers.png").is_file() and tmp_path / "levers.png" in written
    f = lever_figures(df, "workload.rate").set_index("lever")
    assert f.loc["fp8", "capacity"] > f.loc["baseline", "capacity"] > f.loc["orca", "capacity"]
    assert f.loc["fp8", "cost"] < f.loc["baseline", "cost"]  # the same GPU serving more per hour
    assert f.loc["orca", "ttft_p99_s"] > f.loc["baseline", "ttft_p99_s"]
    assert f.attrs["load"] == 15
