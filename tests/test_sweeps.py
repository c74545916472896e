"""Sweeps: hydra multirun through the basic, joblib, submitit_local and Dask launchers, and the named experiments.

The launchers run the CLI in subprocesses (as users do). The joblib and Dask
sweeps must reproduce the sequential one byte for byte: their workers are
reused across points, so any state one run leaves behind in the process would
show. The Dask launcher (hydra_plugins/servesim_dask_launcher) runs on a local
cluster it starts itself and on a running cluster named by its address.
"""

from __future__ import annotations

import itertools
import socket
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


def test_dask_sweep_equals_the_sequential_sweep_and_reports(tmp_path):
    pytest.importorskip("distributed")
    basic = _summaries(_sweep(tmp_path / "basic"))
    out = _sweep(tmp_path / "dask", "hydra/launcher=dask", "hydra.launcher.n_workers=2")
    assert len(basic) == 4 and basic == _summaries(out)
    assert (out / "3" / ".hydra" / "overrides.yaml").read_text() == (
        tmp_path / "basic" / "sweep" / "3" / ".hydra" / "overrides.yaml"
    ).read_text()
    # servesim-report reads the collected runs as it reads any sweep
    proc = subprocess.run(["servesim-report", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = (out / "sweep.csv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("run,")
    assert (out / "latency_vs_load.png").is_file()


def test_dask_sweep_runs_on_a_running_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0") as cluster:
        out = _sweep(tmp_path, "hydra/launcher=dask", f"hydra.launcher.address={cluster.scheduler_address}")
        assert "servesim-point" in cluster.scheduler.task_prefixes  # the points ran on this cluster
        assert len(cluster.scheduler.workers) == 2  # and the sweep left it running
    assert sorted(_summaries(out)) == ["0", "1", "2", "3"]


def test_a_dask_sweep_counts_the_points_that_failed(tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "sweep"
    proc = subprocess.run(
        ["servesim", "-m", f"hydra.sweep.dir={out}", "workload.num_requests=30", "output.charts=false", "output.console=false",
         "workload.rate=2,-1", "hydra/launcher=dask", "hydra.launcher.n_workers=2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith(f"servesim: 1 of 2 points failed in {out}: job 1 ")
    assert "workload.rate must be" in (out / "1" / "cli.log").read_text()
    assert (out / "0" / "summary.json").is_file()


def test_a_sweep_with_a_failed_point_finishes_the_others_then_exits_1_naming_it(tmp_path):
    out = tmp_path / "sweep"
    args = ["servesim", "-m", f"hydra.sweep.dir={out}", "workload.num_requests=30", "output.charts=false", "output.console=false"]
    proc = subprocess.run([*args, "workload.rate=2,-1,3"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "workload.rate must be a finite number > 0" in proc.stdout + proc.stderr  # the point's own error, as it happened
    assert proc.stderr.strip().splitlines()[-1] == (
        f"servesim: 1 of 3 points failed in {out}: job 1 (each one's cli.log says why; servesim-report lists them)"
    )
    assert sorted(_summaries(out)) == ["0", "2"]
    # the same directory again, every point valid: the earlier sweep's failed folder is rewritten, not counted
    again = subprocess.run([*args, "workload.rate=2,4"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    # and once more with the middle point failing: its earlier summary goes, servesim-report cannot list it as run
    third = subprocess.run([*args, "workload.rate=2,-1"], capture_output=True, text=True, timeout=300)
    assert third.returncode == 1 and "1 of 2 points failed" in third.stderr
    assert not (out / "1" / "summary.json").exists() and (out / "2" / "summary.json").is_file()  # job 2: the first sweep's


def test_only_the_folders_a_sweep_wrote_count_as_its_points(tmp_path):
    import os
    import time

    from simulator.sweep_outcome import SWEEP_FILE, failure_line, sweep_points

    now = time.time()

    def at(path: Path, t: float) -> None:
        os.utime(path, (t, t))

    def job(name: str, summary: float | None, written: float = now) -> None:
        d = tmp_path / name
        (d / ".hydra").mkdir(parents=True)
        (d / ".hydra" / "overrides.yaml").write_text("- workload.rate=2\n")
        at(d / ".hydra" / "overrides.yaml", written)
        if summary is not None:
            (d / "summary.json").write_text("{}")
            at(d / "summary.json", summary)

    (tmp_path / SWEEP_FILE).write_text("{}")
    at(tmp_path / SWEEP_FILE, now - 10)  # this sweep started 10 s ago
    job("0", summary=now - 3600, written=now - 3600)  # an earlier sweep's point, not rewritten: not this sweep's
    job("1", summary=now - 3600)  # rewritten by this sweep, its summary the earlier one's: it failed this time
    job("2", summary=now)
    job("10", summary=None)
    job("11", summary=None)
    found = sweep_points(tmp_path, started=0.0)  # the sweep file's time rules, not the local clock
    assert found.points == ["1", "2", "10", "11"] and found.failed == ["1", "10", "11"]
    assert failure_line(found) == (
        f"servesim: 3 of 4 points failed in {tmp_path}: jobs 1, 10, 11 (each one's cli.log says why; servesim-report lists them)"
    )
    (tmp_path / SWEEP_FILE).unlink()  # another sweeper: the local clock at the sweep's start, with a second of slack
    assert sweep_points(tmp_path, started=now - 5).points == ["1", "2", "10", "11"]
    assert sweep_points(tmp_path / "missing", 0.0).points == []


def test_a_failed_point_leaves_no_earlier_run_behind(tmp_path):
    from simulator.files import RUN_FILES, discard_stale_outputs

    for name in (*RUN_FILES, "cli.log"):
        (tmp_path / name).write_text("x")
    (tmp_path / "replication-1").mkdir()
    (tmp_path / "replication-1" / "summary.json").write_text("{}")
    discard_stale_outputs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli.log"]


@pytest.mark.parametrize("via", ["address", "scheduler_file"])
def test_an_unreachable_dask_scheduler_fails_in_one_line(tmp_path, via):
    pytest.importorskip("distributed")
    if via == "address":
        with socket.socket() as s:  # a port nothing listens on
            s.bind(("127.0.0.1", 0))
            where = f"tcp://127.0.0.1:{s.getsockname()[1]}"
        words = f"cannot reach the Dask scheduler at {where}: "
    else:
        where = str(tmp_path / "no-scheduler.json")
        words = f"cannot reach the Dask scheduler named in {where}: no such file after 1 s"
    out = tmp_path / "sweep"
    proc = subprocess.run(
        ["servesim", "-m", f"hydra.sweep.dir={out}", *POINTS, "hydra/launcher=dask"]
        + [f"hydra.launcher.{via}={where}", "hydra.launcher.timeout=1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert err.splitlines() == [err] and err.startswith(f"servesim: error: {words}")
    assert not out.exists()  # nothing ran, nothing left behind


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
