"""A run as a Chrome / Perfetto trace: open it in https://ui.perfetto.dev.

    export(result, "timeline.perfetto.json")          # from a Result
    export_run_dir("outputs/2026-11-22/05-00-00")     # from a saved run directory
    python -m simulator.report.perfetto RUN_DIR       # the same, from a shell

The file is the JSON object form of the Trace Event Format
(``{"traceEvents": [...], "metadata": {...}}``); timestamps and durations
are integer microseconds of *simulated* time. What it holds (see
docs/perfetto.md):

- one process per replica, ``replica 0 (mixed, h100-sxm TP1)``, pid =
  replica index + 1, with threads
  - ``steps``: one complete (``X``) slice per engine step, named by its batch
    (``prefill 3 + decode 41``), every steps.parquet column in its args;
  - ``lifecycle``: the replica's states from replicas.parquet
    (provisioning, serving, draining, failed) as slices, ``removed`` as an
    instant;
  - counters ``KV blocks used`` and ``requests waiting`` / ``running`` /
    ``swapped``, sampled at the start of each step (as in steps.parquet);
- one ``gateway`` process with one slice per request from arrival to finish
  on ``requests N`` lanes (a lane holds requests that do not overlap), a
  ``queued`` child up to the request's first scheduling, and a flow arrow
  from there to the step whose end produced its first token (through the
  prefill step on a prefill replica when disaggregated).

The output is deterministic: the same inputs give byte-identical files.
Request slices and flows are bounded by ``max_requests`` (the first ones by
``request_id``); steps, counters and lifecycle are always complete.

No ``displayTimeUnit`` key is written: the Trace Event Format makes it a
display hint only, but some trace_processor versions read ``"ms"`` as the
unit of every timestamp, which would stretch the trace 1000x.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from simulator.report.perfetto_lookups import (
    isna,
    json_arg,
    lookup,
    pool_hardware,
    replica_index,
    run_end_us,
    steps_by_replica,
    text_or_none,
    to_us,
    to_us_list,
    version,
)

#: request slices and flows exported by default (steps are always all exported)
MAX_REQUESTS = 5000

STEPS_TID = 1
LIFECYCLE_TID = 2
#: columns shown as the step slice's position, not repeated in its args
_STEP_SKIP = ("replica", "pool", "start_s", "duration_s")
_FLOW_NAME = "request"
_FLOW_CAT = "request"

_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode


# -- public ---------------------------------------------------------------------
def export(result, path: str | Path, *, max_requests: int | None = MAX_REQUESTS) -> Path:
    """Write ``result`` (a :class:`simulator.Result`) as a trace to ``path``.

    ``max_requests`` bounds the request slices and flows (``None``: all).
    """
    from omegaconf import OmegaConf

    scenario = cast(dict, OmegaConf.to_container(OmegaConf.structured(result.config)))  # a structured config: a dict
    return _write(path, *build(result.requests, result.steps, result.replicas, scenario, max_requests=max_requests))


def export_run_dir(
    run_dir: str | Path, path: str | Path | None = None, *, max_requests: int | None = MAX_REQUESTS
) -> Path:
    """Convert a saved run directory (requests/steps/replicas parquet and
    scenario.yaml) to a trace; ``path`` defaults to
    ``RUN_DIR/timeline.perfetto.json``."""
    from omegaconf import OmegaConf

    from simulator.files import CONFIG_FILE, PERFETTO_FILE, REPLICAS_FILE, REQUESTS_FILE, STEPS_FILE

    d = Path(run_dir)
    for name in (REQUESTS_FILE, STEPS_FILE):
        if not (d / name).is_file():
            raise FileNotFoundError(f"{d} is not a servesim run directory: {name} is missing")
    requests = pd.read_parquet(d / REQUESTS_FILE)
    steps = pd.read_parquet(d / STEPS_FILE)
    replicas = pd.read_parquet(d / REPLICAS_FILE) if (d / REPLICAS_FILE).is_file() else None
    scenario: dict = {}
    if (d / CONFIG_FILE).is_file():
        # scenario.yaml holds a mapping (Result.save writes the scenario's config)
        scenario = cast(dict, OmegaConf.to_container(OmegaConf.load(d / CONFIG_FILE), resolve=False) or {})
    out = Path(path) if path is not None else d / PERFETTO_FILE
    return _write(out, *build(requests, steps, replicas, scenario, max_requests=max_requests))


def build(
    requests: pd.DataFrame,
    steps: pd.DataFrame,
    replicas: pd.DataFrame | None,
    scenario: dict,
    *,
    max_requests: int | None = MAX_REQUESTS,
) -> tuple[list[dict], dict]:
    """The trace's events and metadata (what :func:`export` writes)."""
    pools = pool_hardware(scenario)
    index = replica_index(steps, replicas)
    gateway_pid = (max(index) + 2) if index else 1
    steps_by = steps_by_replica(steps)
    tracks = {rep: _Track(s) for rep, s in steps_by.items()}
    events: list[dict] = []

    # -- names ---------------------------------------------------------------
    events += _meta(gateway_pid, 0, "process_name", "gateway")
    events += _meta(gateway_pid, 0, "process_sort_index", sort_index=-1)
    for rep in sorted(index):
        pool, tp = index[rep]
        hw, pool_tp = pools.get(pool, (lookup(scenario, "hardware", "name"), None))
        tp = tp or pool_tp or 1
        pid = rep + 1
        events += _meta(pid, 0, "process_name", f"replica {rep} ({pool}, {hw or '?'} TP{tp})")
        events += _meta(pid, 0, "process_sort_index", sort_index=rep)
        events += _meta(pid, STEPS_TID, "thread_name", "steps")
        events += _meta(pid, STEPS_TID, "thread_sort_index", sort_index=0)
        events += _meta(pid, LIFECYCLE_TID, "thread_name", "lifecycle")
        events += _meta(pid, LIFECYCLE_TID, "thread_sort_index", sort_index=1)

    # -- replicas: steps, counters, lifecycle --------------------------------
    end_us = run_end_us(requests, steps, replicas)
    for rep in sorted(index):
        life = replicas[replicas["replica"] == rep] if replicas is not None else None
        failed = (
            []
            if life is None
            else to_us(life["time_s"].to_numpy(dtype=np.float64)[(life["event"] == "failed").to_numpy()]).tolist()
        )
        events += _step_events(rep, steps_by.get(rep), tracks.get(rep), failed)
        if life is not None:
            events += _lifecycle_events(rep, life, end_us)

    # -- requests ------------------------------------------------------------
    total = len(requests)
    req = requests.sort_values("request_id", kind="stable")
    if max_requests is not None and total > max_requests:
        req = req.iloc[: max(0, int(max_requests))]
    events += _request_events(req, gateway_pid, tracks, index)

    meta: dict[str, Any] = {
        "generator": f"servesim {version()}",
        "time_unit": "ts and dur are microseconds of simulated time",
        "scenario": lookup(scenario, "name"),
        "seed": lookup(scenario, "seed"),
        "model": lookup(scenario, "model", "name"),
        "hardware": lookup(scenario, "hardware", "name"),
        "scheduler": lookup(scenario, "scheduler", "policy"),
        "replicas": len(index),
        "steps": int(len(steps)),
        "requests": int(total),
        "requests_exported": int(len(req)),
        "pids": {"gateway": gateway_pid, "replica": "replica index + 1"},
    }
    if len(req) < total:
        meta["truncated"] = (
            f"request slices and flows cover the first {len(req):,} of {total:,} requests (by request_id); "
            "steps, counters and lifecycle are complete. Export again with max_requests=None "
            "(python -m simulator.report.perfetto RUN_DIR --max-requests 0) for every request."
        )
    return events, meta


# -- writing ----------------------------------------------------------------------
def _write(path: str | Path, events: list[dict], meta: dict) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="ascii", newline="\n") as f:
        f.write('{"traceEvents":[\n')
        f.write(",\n".join(map(_encode, events)))
        f.write('\n],\n"metadata":')
        f.write(json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False))
        f.write("}\n")
    return out


# -- pieces -----------------------------------------------------------------------
def _meta(pid: int, tid: int, name: str, label: str | None = None, *, sort_index: int | None = None) -> list[dict]:
    args: dict[str, Any] = {"name": label} if label is not None else {"sort_index": sort_index}
    return [{"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}]


class _Track:
    """One replica's steps in time order: end times (s) and start/end (integer us)."""

    def __init__(self, s: pd.DataFrame) -> None:
        start = s["start_s"].to_numpy(dtype=np.float64)
        self.end_s = start + s["duration_s"].to_numpy(dtype=np.float64)
        self.start_us = to_us(start)
        self.end_us = to_us(self.end_s)

    def mid(self, k: int) -> int:
        """A timestamp strictly inside step ``k`` (its middle), so a flow binds to it unambiguously."""
        a, b = int(self.start_us[k]), int(self.end_us[k])
        return a + (b - a) // 2


def _step_events(rep: int, s: pd.DataFrame | None, track: _Track | None, failed: list[int]) -> list[dict]:
    """Step slices and KV / queue counters; a failure drops the counters to zero."""
    out: list[dict] = []
    pid = rep + 1
    if s is None or track is None or not len(s):
        return out  # no steps: no slices, and no counters to drop
    n = len(s)
    cols = [c for c in s.columns if c not in _STEP_SKIP]
    values = {c: s[c].tolist() for c in cols}
    pf = values.get("prefill_seqs") or [None] * n
    dc = values.get("decode_seqs") or [None] * n
    kv = values.get("kv_blocks_used")
    queues = [
        (k, values[c])
        for k, c in (("waiting", "num_waiting"), ("running", "num_running"), ("swapped", "num_swapped"))
        if c in values
    ]
    last_kv = last_q = None
    fails = list(failed)

    def zero_counters(t: int) -> None:
        """A failure at ``t`` loses the replica's KV and queues: its counters drop to 0."""
        if kv is not None:
            out.append({"ph": "C", "name": "KV blocks", "pid": pid, "tid": STEPS_TID, "ts": t, "args": {"used": 0}})
        if queues:
            out.append({"ph": "C", "name": "requests", "pid": pid, "tid": STEPS_TID, "ts": t, "args": {k: 0 for k, _ in queues}})

    for i in range(n):
        ts = int(track.start_us[i])
        while fails and fails[0] <= ts:  # the replica failed before this step: its KV and queues were lost
            zero_counters(fails.pop(0))
            last_kv = last_q = None
        out.append(
            {
                "ph": "X",
                "cat": "step",
                "name": _step_name(pf[i], dc[i]),
                "pid": pid,
                "tid": STEPS_TID,
                "ts": ts,
                "dur": int(track.end_us[i]) - ts,
                "args": {c: json_arg(values[c][i]) for c in cols},
            }
        )
        if kv is not None and kv[i] != last_kv:
            last_kv = kv[i]
            out.append(
                {"ph": "C", "name": "KV blocks", "pid": pid, "tid": STEPS_TID, "ts": ts, "args": {"used": int(kv[i])}}
            )
        q = tuple(int(v[i]) for _, v in queues)
        if queues and q != last_q:
            last_q = q
            out.append(
                {
                    "ph": "C",
                    "name": "requests",
                    "pid": pid,
                    "tid": STEPS_TID,
                    "ts": ts,
                    "args": {k: x for (k, _), x in zip(queues, q)},
                }
            )
    for t in fails:
        zero_counters(t)
    return out


def _step_name(prefill, decode) -> str:
    parts = []
    if prefill:
        parts.append(f"prefill {int(prefill)}")
    if decode:
        parts.append(f"decode {int(decode)}")
    return " + ".join(parts) or "step"


def _lifecycle_events(rep: int, ev: pd.DataFrame, end_us: int) -> list[dict]:
    pid = rep + 1
    times = to_us(ev["time_s"].to_numpy(dtype=np.float64)).tolist()
    names = [str(x) for x in ev["event"].tolist()]
    out: list[dict] = []
    for k, (t, name) in enumerate(zip(times, names)):
        if name == "removed":
            out.append(
                {
                    "ph": "i",
                    "cat": "lifecycle",
                    "name": "removed",
                    "pid": pid,
                    "tid": LIFECYCLE_TID,
                    "ts": int(t),
                    "s": "t",
                }
            )
            continue
        until = times[k + 1] if k + 1 < len(times) else end_us
        if until > t:  # an instant state (provisioning and serving at t=0) leaves no slice
            out.append(
                {
                    "ph": "X",
                    "cat": "lifecycle",
                    "name": name,
                    "pid": pid,
                    "tid": LIFECYCLE_TID,
                    "ts": int(t),
                    "dur": int(until - t),
                    "args": {},
                }
            )
    return out


def _request_events(req: pd.DataFrame, gateway_pid: int, tracks: dict, index: dict) -> list[dict]:
    """Per request: its slice on a ``requests N`` lane, a ``queued`` child and the flow to its first token."""
    if not len(req):
        return []
    col = {c: req[c].tolist() for c in req.columns}
    n = len(req)
    rid = [int(x) for x in col["request_id"]]
    arrival = to_us_list(col["arrival_s"])
    finish = to_us_list(col.get("finish_s", [math.nan] * n))
    sched = to_us_list(col.get("first_scheduled_s", [math.nan] * n))
    prefill_ends = _prefill_ends(tracks, index)

    order = sorted(range(n), key=lambda i: (arrival[i] if arrival[i] is not None else 0, rid[i]))
    lanes = _Lanes()
    out: list[dict] = []
    for i in order:
        a, f, s = arrival[i], finish[i], sched[i]
        t0 = a if a is not None else 0
        t1 = f if f is not None and f >= t0 else t0
        lane = lanes.take(t0, t1)
        status = text_or_none(col["status"][i]) if "status" in col else None
        cat = "request" if status == "completed" else (status or "request")
        out.append(
            {
                "ph": "X",
                "cat": cat,
                "name": f"request {rid[i]}",
                "pid": gateway_pid,
                "tid": lane,
                "ts": t0,
                "dur": t1 - t0,
                "args": _request_args(col, i, rid[i], status),
            }
        )
        if status != "completed" or s is None or s < t0:
            continue
        out.append(
            {
                "ph": "X",
                "cat": "queue",
                "name": "queued",
                "pid": gateway_pid,
                "tid": lane,
                "ts": t0,
                "dur": min(s, t1) - t0,
                "args": {},
            }
        )
        out += _flow_events(rid[i], gateway_pid, lane, t0, _flow_hops(col, i, tracks, index, prefill_ends))
    for lane in range(1, lanes.count + 1):
        out += _meta(gateway_pid, lane, "thread_name", f"requests {lane}")
        out += _meta(gateway_pid, lane, "thread_sort_index", sort_index=lane)
    return out


def _prefill_ends(tracks: dict, index: dict) -> dict[float, tuple[int, int]]:
    """A prefill replica's steps by exact end time, to find where a disaggregated prompt was prefilled."""
    prefill_ends: dict[float, tuple[int, int]] = {}
    for rep in sorted(tracks):
        if index.get(rep, ("",))[0] == "prefill":
            for k, e in enumerate(tracks[rep].end_s.tolist()):
                prefill_ends.setdefault(e, (rep, k))
    return prefill_ends


class _Lanes:
    """Gateway lanes (threads 1, 2, ...): each request takes the lowest lane free at its arrival."""

    def __init__(self) -> None:
        self.busy: list[tuple[int, int]] = []  # (end, lane) of lanes in use
        self.free: list[int] = []  # lanes free again, lowest first
        self.count = 0

    def take(self, t0: int, t1: int) -> int:
        """The lane for a request from ``t0`` to ``t1``."""
        while self.busy and self.busy[0][0] < t0:
            heapq.heappush(self.free, heapq.heappop(self.busy)[1])
        if self.free:
            lane = heapq.heappop(self.free)
        else:
            self.count += 1
            lane = self.count
        heapq.heappush(self.busy, (t1, lane))
        return lane


def _request_args(col: dict, i: int, rid: int, status: str | None) -> dict[str, Any]:
    """A request slice's args: id, status, labels, counts, and latencies in ms."""
    args: dict[str, Any] = {"request_id": rid, "status": status}
    for key in ("reject_reason", "tier", "tenant", "session"):
        v = text_or_none(col[key][i]) if key in col else None
        if v:
            args[key] = v
    for key in ("replica", "prompt_tokens", "output_tokens", "attempts", "preemptions", "swaps"):
        if key in col and not isna(col[key][i]):
            args[key] = int(col[key][i])
    for key in ("queue_s", "ttft_s", "tpot_s", "e2e_s"):
        if key in col and not isna(col[key][i]):
            args[key[:-2] + "_ms"] = round(float(col[key][i]) * 1e3, 3)
    return args


def _flow_events(rid: int, gateway_pid: int, lane: int, t0: int, hops: list[tuple[int, int]]) -> list[dict]:
    """The flow from a request's ``queued`` slice through each step its first token passed (none without hops)."""
    if not hops:
        return []
    # bound (by ts order, then file order) to the "queued" slice just written; the UI draws
    # the arrow from its end (first scheduled) to the start of each step below
    out = [{"ph": "s", "cat": _FLOW_CAT, "name": _FLOW_NAME, "id": rid, "pid": gateway_pid, "tid": lane, "ts": t0}]
    for k, (rep, ts) in enumerate(hops):
        last = k == len(hops) - 1
        ev: dict[str, object] = {
            "ph": "f" if last else "t",
            "cat": _FLOW_CAT,
            "name": _FLOW_NAME,
            "id": rid,
            "pid": rep + 1,
            "tid": STEPS_TID,
            "ts": ts,
        }
        if last:
            ev["bp"] = "e"
        out.append(ev)
    return out


def _flow_hops(col: dict, i: int, tracks: dict, index: dict, prefill_ends: dict) -> list[tuple[int, int]]:
    """(replica, ts inside the step) for each step the request's first token passed through."""
    # table cells: a number, or None / NaN / pd.NA where missing
    rep: Any = col["replica"][i] if "replica" in col else None
    ft: Any = col["first_token_s"][i] if "first_token_s" in col else None
    if isna(rep) or isna(ft) or int(rep) < 0:
        return []
    rep = int(rep)
    hops: list[tuple[int, int]] = []
    pd_s: Any = col["prefill_done_s"][i] if "prefill_done_s" in col else None
    if index.get(rep, ("",))[0] == "decode" and not isna(pd_s):
        hit = prefill_ends.get(float(pd_s))  # the prefill step that produced the first token
        if hit is not None:
            hops.append((hit[0], tracks[hit[0]].mid(hit[1])))
    track = tracks.get(rep)
    if track is not None:
        # the step whose end produced the first token, or (KV arriving between steps) the next one
        k = int(np.searchsorted(track.end_s, float(ft), side="left"))
        if k < len(track.end_s):
            hops.append((rep, track.mid(k)))
    return hops


# -- command line -------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m simulator.report.perfetto",
        description="Convert a servesim run directory to a Perfetto trace (open it at https://ui.perfetto.dev).",
    )
    ap.add_argument("run_dir", help="a run directory holding requests.parquet and steps.parquet")
    ap.add_argument("-o", "--output", help="where to write the trace (default: RUN_DIR/timeline.perfetto.json)")
    ap.add_argument(
        "--max-requests",
        type=int,
        default=MAX_REQUESTS,
        help=f"request slices and flows to export, the first by request_id (default {MAX_REQUESTS:,}; 0 = all)",
    )
    args = ap.parse_args(argv)
    try:
        out = export_run_dir(args.run_dir, args.output, max_requests=args.max_requests or None)
    except FileNotFoundError as exc:
        print(f"python -m simulator.report.perfetto: error: {exc} (give one run's directory, e.g. outputs/<date>/<time> or a sweep's numbered subdirectory)", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
