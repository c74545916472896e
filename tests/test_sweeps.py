"""Sweeps: hydra multirun through the basic, joblib and submitit_local launchers, and the named experiments.

The launchers run the CLI in subprocesses (as users do). The joblib sweep
must reproduce the sequential one byte for byte: its workers are reused
across points, so any state one run leaves behind in the process would show.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module

import simulator
from simulator.config.compose import CONFIG_MODULE

EXPERIMENTS = Path(simulator.__file__).resolve().parents[1] / "scenarios" / "experiment"
POINTS = ["workload.num_requests=120", "output.charts=false", "scheduler=continuous,chunked_prefill", "workload.rate=4,12"]


def _sweep(tmp: Path, *extra: str) -> Path:
    out = tmp / "sweep"
    proc = subprocess.run(
        ["servesim", "-m", f"hydra.sweep.dir={out}", *POINTS, *extra], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _summaries(sweep: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(sweep.glob("*/summary.json"))}


def test_joblib_sweep_equals_the_sequential_sweep(tmp_path):
    basic = _summaries(_sweep(tmp_path / "basic"))
    parallel = _summaries(_sweep(tmp_path / "joblib", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"))
    assert len(basic) == 4 and basic == parallel


def test_submitit_local_sweep_runs_every_point(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = _sweep(tmp_path, "hydra/launcher=submitit_local")
    assert sorted(_summaries(out)) == ["0", "1", "2", "3"]


def test_no_launcher_is_hard_wired():
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        cfg = compose("config", return_hydra_config=True)
    assert cfg.hydra.launcher._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    assert cfg.hydra.sweeper._target_ == "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


def _points(name: str) -> list[list[str]]:
    params = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())["hydra"]["sweeper"]["params"]
    axes = [[f"{key}={v}" for v in str(values).split(",")] for key, values in params.items()]
    return [list(p) for p in itertools.product(*axes)]


@pytest.mark.parametrize(("name", "count"), [("batching_showdown", 24), ("disaggregation_ratio", 9), ("tier_shedding", 12)])
def test_named_sweep_experiments_compose_at_every_point(name, count):
    points = _points(name)
    assert len(points) == count
    for point in points:
        cfg = simulator.load_config([f"experiment={name}", *point])
        assert cfg.name == name


@pytest.mark.parametrize(
    ("sweep", "words"),
    [
        ("workload.rat=4,8", "workload.rat is not a known key"),
        ("scheduler=static,continous", "scheduler=continous is not a known scheduler"),
        ("experiment=batching_shodown", "experiment=batching_shodown is not a known experiment"),
    ],
)
def test_a_sweep_with_a_typo_fails_at_once_in_one_line(tmp_path, sweep, words):
    proc = subprocess.run(
        ["servesim", "-m", sweep, f"hydra.sweep.dir={tmp_path}"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and words in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing ran
