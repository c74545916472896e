"""The Perfetto / Chrome trace export (simulator.report.perfetto)."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from simulator.api import PERFETTO_FILE
from simulator.report import perfetto
from tests.conftest import FLEET, run

BASE = ["workload.num_requests=150", "output.charts=false", "output.console=false"]
#: every phase the exporter writes, with the keys each must carry
REQUIRED = {
    "M": {"ph", "name", "pid", "tid", "args"},
    "X": {"ph", "name", "cat", "pid", "tid", "ts", "dur", "args"},
    "C": {"ph", "name", "pid", "ts", "args"},
    "i": {"ph", "name", "pid", "tid", "ts", "s"},
    "s": {"ph", "name", "cat", "id", "pid", "tid", "ts"},
    "t": {"ph", "name", "cat", "id", "pid", "tid", "ts"},
    "f": {"ph", "name", "cat", "id", "pid", "tid", "ts", "bp"},
}


@pytest.fixture(scope="module")
def two():
    return run("cluster.replicas=2", "workload.rate=20", base=BASE)


@pytest.fixture(scope="module")
def disagg():
    return run("cluster=disaggregated", "cluster.disaggregation.prefill.replicas=2", base=BASE)


@pytest.fixture(scope="module")
def fleet():
    """Autoscaling, a failure and a repair: lifecycle slices, replicas coming and going."""
    return run(*FLEET, base=BASE)


def load(result, tmp_path, name="t.json", **kw):
    path = perfetto.export(result, tmp_path / name, **kw)
    with open(path) as f:
        return json.load(f)


def process_names(trace) -> dict[int, str]:
    return {e["pid"]: e["args"]["name"] for e in trace["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}


@pytest.mark.parametrize("which", ["two", "disagg", "fleet"])
def test_valid_trace_with_required_keys(which, request, tmp_path):
    result = request.getfixturevalue(which)
    trace = load(result, tmp_path)
    assert set(trace) == {"traceEvents", "metadata"}
    events = trace["traceEvents"]
    assert events
    for e in events:
        assert e["ph"] in REQUIRED, e
        missing = REQUIRED[e["ph"]] - set(e)
        assert not missing, (missing, e)
        if "ts" in e:
            assert isinstance(e["ts"], int) and e["ts"] >= 0
        if e["ph"] == "X":
            assert isinstance(e["dur"], int) and e["dur"] >= 0
    meta = trace["metadata"]
    assert meta["steps"] == len(result.steps)
    assert meta["requests"] == meta["requests_exported"] == len(result.requests)


def test_one_process_per_replica_two_replicas(two, tmp_path):
    names = process_names(load(two, tmp_path))
    gateway = [pid for pid, n in names.items() if n == "gateway"]
    assert len(gateway) == 1
    replicas = {pid: n for pid, n in names.items() if pid not in gateway}
    assert replicas == {1: "replica 0 (mixed, h100-sxm TP1)", 2: "replica 1 (mixed, h100-sxm TP1)"}


def test_one_process_per_replica_disaggregated(disagg, tmp_path):
    names = process_names(load(disagg, tmp_path))
    replicas = {pid: n for pid, n in names.items() if n != "gateway"}
    assert replicas == {
        1: "replica 0 (prefill, h100-sxm TP1)",
        2: "replica 1 (prefill, h100-sxm TP1)",
        3: "replica 2 (decode, h100-sxm TP1)",
    }


@pytest.mark.parametrize("which", ["two", "disagg", "fleet"])
def test_one_slice_per_step_without_overlap(which, request, tmp_path):
    result = request.getfixturevalue(which)
    events = load(result, tmp_path)["traceEvents"]
    slices = defaultdict(list)
    for e in events:
        if e["ph"] == "X" and e["cat"] == "step":
            assert e["tid"] == perfetto.STEPS_TID
            slices[e["pid"] - 1].append(e)
    assert {rep: len(v) for rep, v in slices.items()} == result.steps.groupby("replica").size().to_dict()
    for rep, v in slices.items():
        v.sort(key=lambda e: e["ts"])
        for a, b in zip(v, v[1:]):
            assert a["ts"] + a["dur"] <= b["ts"], (rep, a, b)
    # the batch is in the name and every steps.parquet column in the args
    first = min(slices[0], key=lambda e: e["ts"])
    row = result.steps[result.steps["replica"] == 0].sort_values("start_s").iloc[0]
    assert first["args"]["batch_size"] == row["batch_size"]
    assert first["args"]["kv_blocks_used"] == row["kv_blocks_used"]
    assert first["name"].startswith("prefill ")


@pytest.mark.parametrize("which", ["two", "disagg"])
def test_flows_pair_up_and_land_on_steps(which, request, tmp_path):
    result = request.getfixturevalue(which)
    events = load(result, tmp_path, max_requests=None)["traceEvents"]
    flows = defaultdict(list)
    for e in events:
        if e["ph"] in "stf":
            flows[e["id"]].append(e)
    completed = set(result.requests.loc[result.requests["status"] == "completed", "request_id"].tolist())
    assert set(flows) == completed
    steps = defaultdict(list)
    for e in events:
        if e["ph"] == "X" and e["cat"] == "step":
            steps[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for rid, chain in flows.items():
        phases = [e["ph"] for e in chain]
        assert phases[0] == "s" and phases[-1] == "f" and set(phases[1:-1]) <= {"t"}, (rid, phases)
        assert len({(e["cat"], e["name"]) for e in chain}) == 1
        assert [e["ts"] for e in chain] == sorted(e["ts"] for e in chain)
        for e in chain[1:]:  # strictly inside one step slice: binds to it without ambiguity
            assert any(a < e["ts"] < b for a, b in steps[(e["pid"], e["tid"])]), e
    if which == "disagg":  # gateway -> prefill replica -> decode replica
        assert all(len(chain) == 3 for chain in flows.values())


def test_flow_points_at_the_first_token_step(two, tmp_path):
    events = load(two, tmp_path)["traceEvents"]
    req = two.requests.set_index("request_id")
    ends = [e for e in events if e["ph"] == "f"]
    steps = {(e["pid"], e["ts"]): e for e in events if e["ph"] == "X" and e["cat"] == "step"}
    for f in ends[:50]:
        r = req.loc[f["id"]]
        assert f["pid"] == r["replica"] + 1
        step = next(s for (pid, ts), s in steps.items() if pid == f["pid"] and ts < f["ts"] < ts + s["dur"])
        assert step["ts"] + step["dur"] == round(r["first_token_s"] * 1e6)


def test_lifecycle_and_counters(fleet, tmp_path):
    events = load(fleet, tmp_path)["traceEvents"]
    life = [e for e in events if e.get("cat") == "lifecycle"]
    assert {e["name"] for e in life} >= {"serving", "failed"}
    counters = {e["name"] for e in events if e["ph"] == "C"}
    assert counters == {"KV blocks", "requests"}
    failed = [e for e in life if e["name"] == "failed"]
    zero = [e for e in events if e["ph"] == "C" and e["name"] == "KV blocks" and e["args"]["used"] == 0]
    assert {(e["pid"], e["ts"]) for e in failed} <= {(e["pid"], e["ts"]) for e in zero}


def test_deterministic(two, tmp_path):
    a = perfetto.export(two, tmp_path / "a.json").read_bytes()
    b = perfetto.export(two, tmp_path / "b.json").read_bytes()
    assert a == b
    again = run("cluster.replicas=2", "workload.rate=20", base=BASE)  # a fresh run of the same seed
    assert perfetto.export(again, tmp_path / "c.json").read_bytes() == a


def test_saved_run_dir_gives_the_same_trace(tmp_path):
    result = run("cluster.replicas=2", "output.perfetto=true", base=BASE)
    out = result.save(tmp_path / "run")
    saved = (out / PERFETTO_FILE).read_bytes()
    assert saved == perfetto.export(result, tmp_path / "direct.json").read_bytes()
    converted = perfetto.export_run_dir(out, tmp_path / "from_dir.json")
    assert converted.read_bytes() == saved
    # the command line writes RUN_DIR/timeline.perfetto.json
    (out / PERFETTO_FILE).unlink()
    assert perfetto.main([str(out)]) == 0
    assert (out / PERFETTO_FILE).read_bytes() == saved


def test_no_trace_unless_asked(two, tmp_path):
    out = two.save(tmp_path / "run", charts=False)
    assert not (out / PERFETTO_FILE).exists()


def test_max_requests_bounds_requests_not_steps(two, tmp_path):
    trace = load(two, tmp_path, max_requests=20)
    events = trace["traceEvents"]
    requests = [
        e
        for e in events
        if e["ph"] == "X" and e["pid"] == max(process_names(trace)) and e["name"].startswith("request ")
    ]
    assert sorted(int(e["name"].split()[1]) for e in requests) == list(range(20))
    assert {e["id"] for e in events if e["ph"] == "s"} <= set(range(20))
    assert sum(e["ph"] == "X" and e["cat"] == "step" for e in events) == len(two.steps)
    meta = trace["metadata"]
    assert meta["requests_exported"] == 20 and "truncated" in meta


def test_missing_run_dir_files(tmp_path, capsys):
    assert perfetto.main([str(tmp_path)]) == 2
    assert "requests.parquet is missing" in capsys.readouterr().err


def test_request_lanes_do_not_overlap(two, tmp_path):
    events = load(two, tmp_path)["traceEvents"]
    gateway = max(process_names({"traceEvents": events}))
    lanes = defaultdict(list)
    for e in events:
        if e["ph"] == "X" and e["pid"] == gateway and e["cat"] != "queue":
            lanes[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    assert len(lanes) > 1  # requests overlap in time, so they need several lanes
    for v in lanes.values():
        v.sort()
        for (_, a_end), (b_start, _) in zip(v, v[1:]):
            assert a_end < b_start


def test_run_dir_without_replicas_or_scenario(two, tmp_path):
    """An older or trimmed run directory still converts (names fall back to what the steps say)."""
    out = two.save(tmp_path / "run", charts=False)
    (out / "replicas.parquet").unlink()
    (out / "scenario.yaml").unlink()
    trace = json.loads(perfetto.export_run_dir(out).read_text())
    names = process_names(trace)
    assert sorted(n for n in names.values() if n != "gateway") == [
        "replica 0 (mixed, ? TP1)",
        "replica 1 (mixed, ? TP1)",
    ]
    assert sum(e["ph"] == "X" and e["cat"] == "step" for e in trace["traceEvents"]) == len(two.steps)
