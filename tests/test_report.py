"""servesim-report: a sweep as one table, its readings (knee, Pareto front) and its charts."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import simulator
from simulator.metrics.headline import headline
from simulator.report import sweep_charts
from simulator.report.cli import main, report
from simulator.report.sweep import (
    DESCRIPTORS,
    ReportError,
    collect,
    cost_axis,
    find_runs,
    highest_load_run,
    knee,
    knees,
    pareto_front,
    parse_overrides,
    series_default,
    series_labels,
    short_names,
    spread_runs,
    unfinished_runs,
    write_table,
    x_default,
)

BASE = ["workload.num_requests=150", "output.charts=false", "output.console=false"]
#: (folder, overrides): folder names that sort differently as text and as numbers
POINTS = [
    ("0", ["scheduler=continuous", "workload.rate=4"]),
    ("1", ["scheduler=chunked_prefill", "workload.rate=4"]),
    ("2", ["scheduler=continuous", "workload.rate=16"]),
    ("10", ["scheduler=chunked_prefill", "workload.rate=16"]),
]
CHARTS = ["latency_vs_load", "cdfs", "cost_frontier", "timeline"]
#: one H100 for every point: nothing to trade against cost, so no cost chart
SAME_COST_CHARTS = [c for c in CHARTS if c != "cost_frontier"]


def _save_run(directory: Path, overrides: list[str]) -> Path:
    simulator.run(overrides + BASE).save(directory)
    (directory / ".hydra").mkdir(exist_ok=True)
    (directory / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides + BASE))
    return directory


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """A small sweep laid out like a hydra multirun: 2 policies x 2 rates."""
    root = tmp_path_factory.mktemp("sweep")
    for name, ov in POINTS:
        _save_run(root / name, ov)
    return root


def _summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# ---------------------------------------------------------------- the table


def test_collect_has_one_row_per_run_with_overrides_descriptors_and_figures(sweep):
    df = collect(sweep)
    assert list(df["run"]) == ["0", "1", "2", "10"]  # natural order, as hydra numbers jobs
    names = list(headline(_summary(sweep / "0")))
    assert df.shape == (4, len(df.columns))
    for col in ["workload.rate", "scheduler", "workload.num_requests", *names]:
        assert col in df.columns
    for col in DESCRIPTORS:
        if col != "scheduler":  # the scheduler override holds it
            assert col in df.columns
    assert df.attrs["overrides"] == [
        "scheduler",
        "workload.rate",
        "workload.num_requests",
        "output.charts",
        "output.console",
    ]
    assert df["workload.rate"].dtype == np.int64 and list(df["workload.rate"]) == [4, 4, 16, 16]
    assert list(df["scheduler"]) == ["continuous", "chunked_prefill", "continuous", "chunked_prefill"]
    assert list(df["output.charts"]) == [False] * 4
    for _, row in df.iterrows():
        s = _summary(sweep / row["run"])
        for k, v in headline(s).items():
            assert (math.isnan(v) and math.isnan(row[k])) or row[k] == v, (row["run"], k)
        assert row["model"] == s["scenario"]["model"] and row["hardware"] == s["scenario"]["hardware"]
        assert row["slo_ttft_s"] == s["slo"]["ttft_s"] and row["replications"] == 1


def test_table_files_round_trip(sweep, tmp_path):
    df = collect(sweep)
    pq, csv = write_table(df, tmp_path)
    back = pd.read_parquet(pq)
    assert list(back.columns) == list(df.columns)
    pd.testing.assert_frame_equal(
        back.drop(columns="slo_e2e_s"), df.drop(columns="slo_e2e_s"), check_dtype=False, check_index_type=False
    )
    assert back.attrs["overrides"] == df.attrs["overrides"]
    assert x_default(back) == "workload.rate" and series_default(back, "workload.rate") == ["scheduler"]
    from_csv = pd.read_csv(csv)
    assert len(from_csv) == 4 and series_default(from_csv, "workload.rate") == ["scheduler"]


def test_replicated_run_gives_means_and_confidence_bounds(sweep, tmp_path):
    shutil.copytree(sweep / "0", tmp_path / "plain")
    rep = tmp_path / "replicated"
    shutil.copytree(sweep / "2", rep)
    s = _summary(rep)
    s["replications"] = {
        "n": 3,
        "seeds": [0, 1, 2],
        "figures": {
            "ttft_p99_s": {"mean": 0.5, "std": 0.1, "ci95_low": 0.25, "ci95_high": 0.75, "values": [0.4, 0.5, 0.6]},
            "goodput_rps": {"mean": 12.0, "std": 1.0, "ci95_low": 9.5, "ci95_high": 14.5, "values": [11, 12, 13]},
        },
    }
    (rep / "summary.json").write_text(json.dumps(s))
    df = collect(tmp_path).set_index("run")
    assert df.loc["replicated", "ttft_p99_s"] == 0.5 and df.loc["replicated", "goodput_rps"] == 12.0
    assert df.loc["replicated", "ttft_p99_s_ci95_low"] == 0.25 and df.loc["replicated", "goodput_rps_ci95_high"] == 14.5
    assert df.loc["replicated", "replications"] == 3
    assert math.isnan(df.loc["plain", "ttft_p99_s_ci95_low"])
    assert df.loc["plain", "ttft_p99_s"] == headline(_summary(sweep / "0"))["ttft_p99_s"]
    cols = list(df.columns)
    assert cols.index("ttft_p99_s_ci95_low") == cols.index("ttft_p99_s") + 1
    # error bars where bounds exist: the charts still draw
    written = sweep_charts.latency_vs_load_chart(
        df.reset_index(), tmp_path / "out", x="offered_rps", series=[], formats=["png"]
    )
    written += sweep_charts.cost_frontier_chart(
        df.reset_index(), tmp_path / "out", x="offered_rps", series=[], formats=["png"]
    )
    assert all(p.stat().st_size > 0 for p in written)


def test_runs_are_found_in_nested_sweeps_but_not_inside_a_run(sweep, tmp_path):
    shutil.copytree(sweep / "0", tmp_path / "a" / "0")
    shutil.copytree(sweep / "1", tmp_path / "b" / "3")
    shutil.copytree(sweep / "2", tmp_path / "a" / "0" / "replication-1")  # part of run a/0
    (tmp_path / "b" / "4" / ".hydra").mkdir(parents=True)  # a point that failed
    (tmp_path / "b" / "4" / ".hydra" / "overrides.yaml").write_text("- workload.rate=99\n")
    assert [p.relative_to(tmp_path).as_posix() for p in find_runs(tmp_path)] == ["a/0", "b/3"]
    assert unfinished_runs(tmp_path) == ["b/4"]
    assert list(collect(tmp_path / "a" / "0")["run"]) == ["."]


def test_a_sweep_whose_every_point_failed_names_them(tmp_path, capsys):
    for job in ("0", "1"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
        (tmp_path / job / ".hydra" / "overrides.yaml").write_text("- workload.rate=-1\n")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"servesim-report: error: no runs under {tmp_path}") and err.rstrip().endswith(
        "2 run folder(s) without summary.json (failed? each one's cli.log says why): 0, 1"
    )


def test_overrides_are_typed_like_hydra_types_them():
    ov = parse_overrides(
        [
            "workload.rate=2",
            "x=2.5",
            "flag=false",
            "hardware=h100-sxm",
            "+new=null",
            "~gone",
            "lst=[1,2]",
            "hydra.job.name=x",
        ]
    )
    assert ov == {"workload.rate": 2, "x": 2.5, "flag": False, "hardware": "h100-sxm", "new": None, "lst": "[1,2]"}


# ---------------------------------------------------------------- readings


def test_knee_is_the_highest_load_before_the_first_miss():
    x = [1, 2, 4, 8, 16]
    assert knee(x, [0.1, 0.5, 0.9, 2.0, 5.0], 1.0) == 4
    assert knee(x, [1.5, 0.5, 0.9, 2.0, 5.0], 1.0) is None  # the lowest load already misses
    assert knee(x, [0.1, 0.2, 0.3, 0.4, 0.5], 1.0) == 16  # everything met: the sweep's top
    assert knee(x, [0.1, 1.5, 0.3, 0.4, 0.5], 1.0) == 1  # a lucky point past a miss does not count
    assert knee(x, [0.1, 0.2, float("nan"), 0.4, 0.5], 1.0) == 2  # nothing completed counts as a miss
    assert knee(x, [0.1, 0.2, 0.3, 0.4, 0.5], None) is None
    assert knee([8, 1, 4, 2], [2.0, 0.1, 0.9, 0.5], 1.0) == 4  # order of the rows does not matter
    assert knee([1, 2, 2, 4], [0.1, 0.8, 1.4, 0.9], 1.0) == 1  # repeats at one load are averaged (1.1 misses)
    assert knee(x, [0.1, 0.5, 0.9, 2.0, 5.0], [1, 1, 0.5, 1, 1]) == 2  # one SLO per point


def test_knees_per_series_combine_ttft_and_tpot():
    df = pd.DataFrame(
        {
            "run": list("abcdef"),
            "policy": ["A"] * 3 + ["B"] * 3,
            "rate": [1, 2, 4] * 2,
            "ttft_p99_s": [0.2, 0.5, 3.0, 0.2, 0.3, 0.6],
            "tpot_p99_s": [0.01, 0.2, 0.3, 0.01, 0.02, 0.05],
            "slo_ttft_s": [1.0] * 6,
            "slo_tpot_s": [0.1] * 6,
        }
    )
    k = knees(df, "rate", ["policy"]).set_index("series")
    assert k.loc["policy=A", "ttft_knee"] == 2 and k.loc["policy=A", "tpot_knee"] == 1
    assert k.loc["policy=A", "knee"] == 1 and not k.loc["policy=A", "all_met"]
    assert k.loc["policy=B", "knee"] == 4 and k.loc["policy=B", "all_met"]
    assert knees(df, "rate", ["policy"], slo_ttft=0.4).set_index("series").loc["policy=B", "ttft_knee"] == 2


def test_pareto_front_keeps_the_runs_no_other_beats_on_cost_and_goodput():
    df = pd.DataFrame(
        {
            "run": list("abcdefgh"),
            "usd_per_hour": [4.0, 4.0, 8.0, 8.0, 16.0, 12.0, 2.0, np.nan],
            "goodput_rps": [5.0, 6.0, 6.0, 9.0, 9.0, 9.5, 1.0, 20.0],
        }
    )
    front = pareto_front(df, "usd_per_hour", "goodput_rps")
    assert list(df["run"][front]) == ["b", "d", "f", "g"]
    # identical runs: the first one counts
    twin = pd.DataFrame({"gpus": [1, 1, 2], "goodput_rps": [3.0, 3.0, 2.0]})
    assert list(pareto_front(twin, "gpus", "goodput_rps")) == [True, False, False]
    assert cost_axis(df) == "gpus" and cost_axis(df.dropna()) == "usd_per_hour"


def test_axis_and_series_defaults(sweep):
    df = collect(sweep)
    assert x_default(df) == "workload.rate"
    assert series_default(df, "workload.rate") == ["scheduler"]
    assert list(series_labels(df, ["scheduler"]))[:2] == ["scheduler=continuous", "scheduler=chunked_prefill"]
    assert highest_load_run(df, "workload.rate", ["scheduler"]) == "2"
    assert spread_runs(df, "workload.rate", ["scheduler"]) == ["0", "2", "1", "10"]
    assert spread_runs(df, "workload.rate", ["scheduler"], k=2) == ["0", "1"]
    one = df[df["scheduler"] == "continuous"]
    one.attrs = {}
    assert x_default(one.drop(columns=["workload.rate"])) == "offered_rps"  # no rate override, but the load varies
    fleet = pd.DataFrame({"run": ["0", "1"], "cluster.replicas": [1, 2], "offered_rps": [8.0, 8.0]})
    fleet.attrs["overrides"] = ["cluster.replicas"]
    assert x_default(fleet) == "cluster.replicas"  # fixed load: the numeric override that varies
    assert short_names(["a.prefill.replicas", "a.decode.replicas", "workload.rate"]) == {
        "a.prefill.replicas": "prefill.replicas",
        "a.decode.replicas": "decode.replicas",
        "workload.rate": "rate",
    }


# ---------------------------------------------------------------- the command on a real multirun


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("multirun") / "sweep"
    cmd = [
        sys.executable,
        "-m",
        "simulator.cli",
        "-m",
        "workload.rate=4,16",
        "scheduler=continuous,chunked_prefill",
        "workload.num_requests=150",
        "output.console=false",
        "output.charts=false",
        f"hydra.sweep.dir={root}",
    ]
    exe = shutil.which("servesim")
    if exe:
        cmd = [exe, *cmd[3:]]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return root


def test_cli_on_a_real_multirun_writes_the_table_and_reproducible_charts(multirun, tmp_path, capsys):
    out1, out2 = tmp_path / "one", tmp_path / "two"
    assert main([str(multirun), "--out", str(out1)]) == 0
    printed = capsys.readouterr().out
    assert "sweep: 4 runs" in printed and "knee" in printed and "sweep.csv" in printed
    table = pd.read_csv(out1 / "sweep.csv")
    assert table.shape[0] == 4 and list(table["run"]) == [0, 1, 2, 3]
    assert {"workload.rate", "scheduler", "ttft_p99_s", "goodput_rps", "usd_per_hour"} <= set(table.columns)
    for _, row in table.iterrows():
        h = headline(_summary(multirun / str(row["run"])))
        assert row["goodput_rps"] == pytest.approx(h["goodput_rps"], rel=1e-12)
        assert row["ttft_p99_s"] == pytest.approx(h["ttft_p99_s"], rel=1e-12)
    assert sorted(table["workload.rate"]) == [4, 4, 16, 16]
    for name in SAME_COST_CHARTS:
        for fmt in ("png", "svg"):
            assert (out1 / f"{name}.{fmt}").stat().st_size > 1000
    assert not list(out1.glob("cost_frontier.*"))  # every run on one H100: said so where the charts are listed
    assert "(no cost_frontier chart: every run costs the same ($4.25/h))" in printed.split("wrote:")[1]
    assert (out1 / "latency_vs_load.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in (out1 / "cdfs.svg").read_bytes()[:1000]

    assert main([str(multirun), "--out", str(out2)]) == 0
    capsys.readouterr()
    for name in SAME_COST_CHARTS:
        for fmt in ("png", "svg"):
            assert (out1 / f"{name}.{fmt}").read_bytes() == (out2 / f"{name}.{fmt}").read_bytes(), f"{name}.{fmt}"


def test_report_options(multirun, tmp_path):
    df, written, chosen = report(
        multirun,
        out=tmp_path,
        series=["none"],
        runs=["1", "3"],
        timeline="0",
        formats=["svg"],
        slo_ttft=0.05,
        include=["requests"],
    )
    assert chosen["series"] == [] and chosen["cdf_runs"] == ["1", "3"] and chosen["timeline"] == "0"
    assert sorted(p.name for p in written if p.suffix == ".svg") == sorted(f"{c}.svg" for c in SAME_COST_CHARTS)
    assert chosen["skipped"] == {"cost_frontier": "every run costs the same ($4.25/h)"}
    assert not any(p.suffix == ".png" for p in written)
    stacked = pd.read_parquet(tmp_path / "sweep_requests.parquet")
    assert stacked.columns[0] == "run" and len(stacked) == 4 * 150
    assert chosen["knees"]["ttft_knee"].isna().all()  # p99 TTFT of 50 ms is missed everywhere


def test_cli_errors_are_one_line_with_exit_status_2(multirun, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ReportError, match="no runs under"):
        collect(empty)
    assert main([str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("servesim-report: error: no runs under") and err.count("\n") == 1
    assert main([str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main([str(multirun), "--out", str(tmp_path / "o"), "--x", "nope", "--no-charts"]) == 2
    assert "--x: no column 'nope'" in capsys.readouterr().err
    assert main([str(multirun), "--out", str(tmp_path / "o"), "--runs", "7"]) == 2
    assert "--runs: no run '7'" in capsys.readouterr().err
    assert main([str(multirun), "--out", str(tmp_path / "o"), "--formats", "gif"]) == 2
    assert "--formats" in capsys.readouterr().err
    assert main([]) == 2
    assert capsys.readouterr().err.startswith("servesim-report: error:")


def test_queue_integral_splits_steps_that_straddle_bins():
    """A step contributes to each time bin only the part of it inside that bin."""
    from simulator.report.charts import integral_per_bin

    start, dur, held = np.array([0.0, 8.0, 15.0]), np.array([2.0, 6.0, 1.0]), np.array([1.0, 10.0, 3.0])
    per_bin = integral_per_bin(start, dur, held, np.array([0.0, 10.0, 20.0]))
    assert per_bin.tolist() == [2.0 + 10.0 * 2.0, 10.0 * 4.0 + 3.0]
    assert per_bin.sum() == pytest.approx(float(np.dot(held, dur)))


def test_runs_without_the_load_axis_get_no_knee():
    """A folder holding two sweeps: the runs that never set x are not judged on it."""
    from simulator.report.sweep import knees

    df = pd.DataFrame(
        {
            "scheduler": ["a", "a", "b"],
            "workload.rate": [2.0, 4.0, np.nan],
            "ttft_p99_s": [0.1, 0.2, 0.3],
            "tpot_p99_s": [0.01, 0.02, 0.03],
            "slo_ttft_s": [1.0, 1.0, 1.0],
            "slo_tpot_s": [0.1, 0.1, 0.1],
        }
    )
    kn = knees(df, "workload.rate", ["scheduler"])
    assert list(kn["series"]) == ["scheduler=a"] and kn["knee"].iloc[0] == 4.0


def test_policies_keep_their_colour_across_reports():
    from simulator.report.sweep_charts import _colors

    two = _colors(["scheduler=continuous", "scheduler=chunked_prefill"])
    three = _colors(["scheduler=static", "scheduler=continuous", "scheduler=chunked_prefill"])
    assert two["scheduler=continuous"] == three["scheduler=continuous"]
    assert two["scheduler=chunked_prefill"] == three["scheduler=chunked_prefill"]
    other = _colors(["cluster.replicas=1", "cluster.replicas=2"])
    assert len(set(other.values())) == 2


# ---------------------------------------------------------------- colours, ticks, skipped charts

OKABE_ITO = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#F0E442", "#000000"}
POLICIES = ("static", "continuous", "chunked_prefill", "inflight")


def _hex(color) -> str:
    from matplotlib.colors import to_hex

    return to_hex(color).upper()


def _legend_colors(fig, label_part: str, axes=None) -> set[str]:
    """The colours of the legend entries (figure's and axes') whose text contains ``label_part``."""
    legends = list(fig.legends) + [ax.get_legend() for ax in (axes or fig.axes) if ax.get_legend()]
    if axes is not None:
        legends = [ax.get_legend() for ax in axes if ax.get_legend()]
    return {
        _hex(handle.get_color())
        for leg in legends
        for handle, text in zip(leg.legend_handles, leg.get_texts())
        if label_part in text.get_text()
    }


def test_palette_is_okabe_ito_and_every_policy_has_its_own_colour():
    import matplotlib.style
    from matplotlib import rcParams

    from simulator.report.charts import OTHER_COLORS, POLICY_COLORS, STYLE

    assert set(POLICY_COLORS) == set(POLICIES)
    assert {c.upper() for c in POLICY_COLORS.values()} <= OKABE_ITO and len(set(POLICY_COLORS.values())) == 4
    assert {c.upper() for c in OTHER_COLORS} == OKABE_ITO - {c.upper() for c in POLICY_COLORS.values()}
    with matplotlib.style.context(STYLE):
        cycle = [_hex(c) for c in rcParams["axes.prop_cycle"].by_key()["color"]]
    assert set(cycle) == OKABE_ITO
    # a series that is not a policy never takes a policy's colour while four others are free
    other = sweep_charts._colors([f"cluster.replicas={k}" for k in range(4)] + ["scheduler=static"])
    assert not {c.upper() for k, c in other.items() if "replicas" in k} & {c.upper() for c in POLICY_COLORS.values()}


def test_past_eight_series_a_shared_colour_gets_its_own_marker(sweep, tmp_path, saved_figures):
    """experiment=levers draws ten series: the palette has eight colours, so the ninth and tenth
    repeat two and tell themselves apart by marker, in the lines and in the legend."""
    df = collect(sweep)
    levers = [f"l{k}" for k in range(10)]
    many = pd.concat([df.assign(lever=name) for name in levers], ignore_index=True)
    sweep_charts.latency_vs_load_chart(many, tmp_path, x="workload.rate", series=["lever"], formats=["png"])
    legend = saved_figures[-1].legends[0]
    looks = {
        text.get_text(): (_hex(handle.get_color()), handle.get_marker())
        for handle, text in zip(legend.legend_handles, legend.get_texts())
        if text.get_text().startswith("lever=")
    }
    assert len(looks) == 10 and len(set(looks.values())) == 10
    assert len({color for color, _ in looks.values()}) == 8
    drawn = {(_hex(line.get_color()), line.get_marker()) for line in saved_figures[-1].axes[0].get_lines()}
    assert set(looks.values()) <= drawn


@pytest.fixture
def saved_figures(monkeypatch) -> list:
    """Every figure the code under test saves, in order, once each (a figure saved as PNG and SVG counts once)."""
    from matplotlib.figure import Figure

    figures: list[Figure] = []
    real_save = Figure.savefig

    def keep(self, *a, **kw):
        if not figures or figures[-1] is not self:
            figures.append(self)
        return real_save(self, *a, **kw)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def test_a_policy_has_the_same_colour_in_every_chart(sweep, tmp_path, saved_figures):
    """latency_vs_load, cdfs, cost_frontier, the run timeline and the single-run CDF draw a policy alike."""
    from simulator.report.charts import POLICY_COLORS, latency_cdf_chart

    figures = saved_figures
    df = collect(sweep)
    df = df.assign(usd_per_hour=[4.25, 4.25, 8.5, 8.5])  # so the cost chart has something to show
    kw = {"x": "workload.rate", "series": ["scheduler"], "formats": ["png"]}
    sweep_charts.latency_vs_load_chart(df, tmp_path, **kw)
    sweep_charts.cdfs_chart(df, sweep, ["0", "1", "2", "10"], tmp_path, **kw)
    sweep_charts.cost_frontier_chart(df, tmp_path, **kw)
    assert len(figures) == 3
    for policy in ("continuous", "chunked_prefill"):
        want = POLICY_COLORS[policy].upper()
        assert _legend_colors(figures[0], f"scheduler={policy}") == {want}, "latency_vs_load"
        assert want in {_hex(line.get_color()) for line in figures[0].axes[0].get_lines()}
        assert _legend_colors(figures[2], f"scheduler={policy}") == {want}, "cost_frontier"
        # CDFs: the policy's hue, lighter for the lower load
        cdf = _legend_colors(figures[1], f"scheduler={policy}")
        assert want in cdf and len(cdf) == 2, "cdfs"
        run = "2" if policy == "continuous" else "10"
        sweep_charts.run_timeline_chart(sweep / run, tmp_path, formats=["png"])
        assert _legend_colors(figures[-1], "mean", axes=figures[-1].axes[:1]) == {want}, "timeline"
    result = simulator.run(["scheduler=chunked_prefill", "workload.num_requests=60", "output.console=false"])
    latency_cdf_chart(result, tmp_path / "cdf.png")
    drawn = {_hex(line.get_color()) for line in figures[-1].axes[0].get_lines() if line.get_drawstyle() != "default"}
    assert drawn == {POLICY_COLORS["chunked_prefill"].upper()}, "single-run latency_cdf"


def test_cdf_tick_labels_do_not_overlap(tmp_path, saved_figures):
    """Latencies spanning five decades (static batching beside continuous) on a narrow CDF panel."""
    from simulator.report.charts import tick_labels_overlap

    rng = np.random.default_rng(0)
    root = tmp_path / "runs"
    rows = []
    for k, (policy, scale) in enumerate([("static", 300.0), ("continuous", 0.02), ("chunked_prefill", 0.5)]):
        (root / str(k)).mkdir(parents=True)
        n = 400
        req = pd.DataFrame(
            {
                "status": ["completed"] * n,
                "ttft_s": rng.lognormal(np.log(scale), 1.2, n),
                "tpot_s": rng.lognormal(np.log(scale / 50), 1.0, n),
                "e2e_s": rng.lognormal(np.log(scale * 10), 1.2, n),
            }
        )
        req.to_parquet(root / str(k) / "requests.parquet")
        rows.append({"run": str(k), "scheduler": policy, "workload.rate": 16, "slo_ttft_s": 1.0, "slo_tpot_s": 0.1})
    df = pd.DataFrame(rows)
    sweep_charts.cdfs_chart(df, root, ["0", "1", "2"], tmp_path, x="workload.rate", series=["scheduler"], formats=["png"])
    fig = saved_figures[0]
    assert fig.axes[0].get_xscale() == "log"
    assert tick_labels_overlap(fig) == []
    # and the check itself catches overlapping labels: 1-2-5 ticks over the same span do overlap
    from matplotlib.ticker import LogLocator

    fig.axes[0].xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    assert tick_labels_overlap(fig)


def test_showdown_charts_have_no_overlapping_tick_labels(multirun, tmp_path, saved_figures):
    from simulator.report.charts import tick_labels_overlap

    report(multirun, out=tmp_path, formats=["png"])
    assert len(saved_figures) == 3
    for fig in saved_figures:
        assert tick_labels_overlap(fig) == []


def test_cost_chart_is_skipped_only_when_every_run_costs_the_same(sweep, tmp_path, capsys):
    stale = tmp_path / "same" / "cost_frontier.png"
    stale.parent.mkdir()
    stale.write_bytes(b"left by an earlier report")
    df, written, chosen = report(sweep, out=tmp_path / "same", formats=["png"])
    assert "cost_frontier" not in {p.stem for p in written} and not stale.exists()
    assert chosen["skipped"] == {"cost_frontier": "every run costs the same ($4.25/h)"}
    # two fleets: the chart is drawn
    two = tmp_path / "two"
    shutil.copytree(sweep / "0", two / "0")
    _save_run(two / "1", ["scheduler=continuous", "workload.rate=4", "cluster.replicas=2"])
    df, written, chosen = report(two, out=tmp_path / "two-out", formats=["png"])
    assert "cost_frontier" in {p.stem for p in written} and chosen["skipped"] == {}
    assert main([str(sweep), "--out", str(tmp_path / "cli"), "--formats", "png"]) == 0
    listed = capsys.readouterr().out.split("wrote:")[1]
    assert "(no cost_frontier chart: every run costs the same ($4.25/h))" in listed


def test_runs_that_end_with_a_backlog_get_a_note(tmp_path, capsys):
    """300 requests at 24 req/s on one H100 (it serves ~19): the drain after the last arrival is over a third of the run."""
    for k, rate in enumerate((4, 24)):
        simulator.run(["workload.num_requests=300", f"workload.rate={rate}", "output.console=false"]).save(
            tmp_path / "s" / str(k), charts=False
        )
    assert main([str(tmp_path / "s"), "--no-charts"]) == 0
    printed = capsys.readouterr().out
    assert "note: 1 of 2 runs spent over 25% of their time draining" in printed
    table = pd.read_csv(tmp_path / "s" / "sweep.csv")
    assert (table["drain_share"] > 0.25).sum() == 1
