"""The compact summary a run prints to the terminal (fits 80 columns)."""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from simulator.metrics.sections import (
    LATENCY_KEYS,
    STAT_KEYS,
    CostSection,
    LatencySection,
    SpeculativeSection,
    Stats,
    Summary,
)

_LATENCY_LABELS = {"ttft": "TTFT", "tpot": "TPOT", "itl": "ITL", "e2e": "e2e", "queue": "queue"}


#: latency units, largest first, each used from the value it starts at (ms below 1 s, min from 10 min)
_UNITS = (("min", 60.0, 600.0), ("s", 1.0, 1.0), ("ms", 1e-3, 0.0))


def _unit_of(typical: float | None) -> tuple[str, float]:
    """(name, seconds per unit) of the unit a value of ``typical`` seconds reads best in."""
    for name, scale, start in _UNITS:
        if typical is not None and math.isfinite(typical) and typical >= start:
            return name, scale
    return "ms", 1e-3


def _unit(d: Stats) -> tuple[str, float]:
    """The unit of one row of the latency table, chosen by its p90 (the tail a reader looks at; its
    median or mean when there is none), so that every cell of the row reads in one unit."""
    for typical in (d.get("p90"), d.get("p50"), d.get("mean")):
        if typical is not None:
            return _unit_of(typical)
    return "ms", 1e-3


def _column_unit(values: list[float | None]) -> tuple[str, float]:
    """The unit of a column of latencies: its largest value's."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return _unit_of(max(finite)) if finite else ("ms", 1e-3)


def _cell(v, scale: float) -> str:
    """One latency cell in its row's or column's unit: seconds and minutes with two decimals below
    100 (three below 1), milliseconds with one; none from 10,000 up."""
    if v is None or not math.isfinite(v):
        return "-"
    x = v / scale
    if scale >= 1 and abs(x) < 1:
        return f"{x:.3f}"
    if scale >= 1 and round(x, 2) < 100:
        return f"{x:.2f}"
    return f"{x:,.1f}" if round(x, 1) < 10_000 else f"{x:,.0f}"


def _secs(v: float) -> str:
    return f"{v:g} s" if v >= 1 else f"{v * 1e3:g} ms"


def _pct(part: float | None) -> str:
    return "-" if part is None else f"{part * 100:.1f}%"


#: short names of rejection reasons, so a tier row fits 80 columns
REASON_ABBREV = {
    "queue_full": "queue",
    "wait_too_long": "wait",
    "kv_pressure": "kv",
    "slo_unattainable": "slo",
    "rate_limited": "rate",
    "exceeds_burst": "burst",
    "no_replica": "noreplica",
    "replica_failure": "failure",
    "kv_capacity": "kvcap",
    "prompt_exceeds_max_batch_tokens": "toolong",
}


def _rejected_cell(d: dict, top: int = 2) -> str:
    """The tier's rejected share and its most frequent reasons (counts are in summary.json)."""
    if not d["rejected"]:
        return "0%"
    reasons = sorted(d["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))
    names = ", ".join(REASON_ABBREV.get(k, k) for k, _ in reasons[:top]) + ("…" if len(reasons) > top else "")
    return f"{_pct(d['rejection_rate'])} {names}"


def tier_table(tiers: dict) -> Table:
    """One row per tier (highest priority first): the table ``render_summary`` prints."""
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1, 0, 1), collapse_padding=True)
    table.add_column("tier", overflow="fold", max_width=14)
    table.add_column("requests", justify="right", no_wrap=True)
    table.add_column("done", justify="right", no_wrap=True)
    table.add_column("rejected, why", overflow="fold", min_width=16)
    table.add_column("SLO met", justify="right", no_wrap=True)
    table.add_column("goodput\nreq/s", justify="right", no_wrap=True)
    units = {k: _column_unit([d["latency_s"][k]["p99"] for d in tiers.values()]) for k in ("ttft", "tpot")}
    table.add_column(f"p99 TTFT\n{units['ttft'][0]}", justify="right", no_wrap=True)
    table.add_column(f"p99 TPOT\n{units['tpot'][0]}", justify="right", no_wrap=True)
    shown: dict[str, str] = {}
    for name, d in tiers.items():
        n = d["requests"]
        top = sorted(d["rejected_by_reason"].items(), key=lambda kv: (-kv[1], kv[0]))[:2]
        shown.update({REASON_ABBREV[k]: k for k, _ in top if k in REASON_ABBREV})
        table.add_row(
            name or "(none)",
            f"{n:,}",
            _pct(d["completed"] / n if n else None),
            _rejected_cell(d),
            _pct(d["slo_attainment"]),
            f"{d['goodput_rps']:.2f}" if d["goodput_rps"] == d["goodput_rps"] else "-",
            _cell(d["latency_s"]["ttft"]["p99"], units["ttft"][1]),
            _cell(d["latency_s"]["tpot"]["p99"], units["tpot"][1]),
        )
    if shown:
        table.caption = "why: " + ", ".join(f"{a} = {k}" for a, k in sorted(shown.items()))
        table.caption_justify = "left"
    return table


def cluster_line(summary: Summary) -> str | None:
    """The fleet in one line when it changed (autoscaling, failures), else None."""
    cl = summary.get("cluster")
    if not cl:
        return None
    sr = cl["serving_replicas"]
    if not (cl["scale_ups"] or cl["scale_downs"] or cl["failures"] or sr["min"] != sr["max"]):
        return None
    fail = f"{cl['failures']} failure" + ("" if cl["failures"] == 1 else "s")
    spot, reclaims = cl.get("spot_interruptions", 0), cl.get("spot_reclaims", 0)
    detail = [f"{reclaims} spot reclaim{'' if reclaims == 1 else 's'}"] if reclaims else []
    detail += [f"{cl['replacements']} replaced"] if cl.get("replacements") else []
    return (
        f"fleet: {sr['min']}–{sr['max']} replicas serving (mean {sr['mean']:.1f}) · scaled {cl['scale_ups']} up, "
        f"{cl['scale_downs']} down · {fail}"
        + (f" ({', '.join(detail)})" if detail else "")
        + (f" · {spot} spot notice{'' if spot == 1 else 's'}" if spot else "")
    )


def overload_note(summary: Summary) -> str | None:
    """A line when the run served less than was offered and its drain weighs (over a quarter of the
    run): overloaded if the requests in the system grew over the second half of the arrivals by more
    than a steady system's fluctuation (three standard deviations of the difference of two Poisson
    counts of that size), else only the drain: the configuration kept up, the run was short."""
    s, th, win = summary["scenario"], summary["throughput"], summary.get("window", {})
    end, last = win.get("end_s"), win.get("last_arrival_s")
    offered = s.get("rate_rps") or 0.0
    if s.get("arrival") == "closed_loop" or not end or last is None or offered <= 0:
        return None
    drain = (end - last) / end
    served = th["requests_per_s"]
    if drain <= 0.25 or offered <= 1.1 * served:
        return None
    mid, at_last = win.get("in_system_midway"), win.get("in_system_at_last_arrival")
    advice = "lower workload.rate, add replicas or GPUs (servesim-plan max-rate finds the rate this configuration sustains)"
    if mid is None or at_last is None:  # (a summary written before these counts)
        return (
            f"note: overloaded: {offered:.3g} req/s offered, {served:.2f} req/s served; draining the backlog took "
            f"{drain:.0%} of the run, so latencies grow with the run's length; {advice}"
        )
    if at_last - mid > max(0.25 * mid, 3 * math.sqrt(2 * mid + 1)):
        e2e = summary["latency_s"]["e2e"]["p50"]
        short = (
            f" (its arrivals last {last:.3g} s, less than the median e2e of {e2e:.3g} s: a longer run tells overload "
            f"from the system filling up)"
            if e2e is not None and last < e2e
            else ""
        )
        return (
            f"note: overloaded: {offered:.3g} req/s offered, {served:.2f} req/s served; requests in the system grew from "
            f"{mid:,} midway through the arrivals to {at_last:,} at the last, and draining them took {drain:.0%} of the "
            f"run, so latencies grow with the run's length{short}; {advice}"
        )
    return (
        f"note: the drain after the last arrival is {drain:.0%} of the run: requests in the system held steady "
        f"({mid:,} midway through the arrivals, {at_last:,} at the last), so the configuration kept up, and throughput, "
        f"which counts the drain, understates what it sustains; more requests (workload.num_requests) shrink the drain"
    )


#: |mean log error| of a GPU family in the published suite above which a run says so (5%)
BIAS_NOTE = 0.05


def bias_note(summary: Summary) -> str | None:
    """A line when the run's roofline prices a GPU family the published suite finds biased by more than
    :data:`BIAS_NOTE` (held-out mean log error, ``simulator.latency.uncertainty.MODEL_ERROR``), unless the
    run already draws that error (``uncertainty=on``) or uses another latency model."""
    from simulator.latency.uncertainty import MODEL_ERROR, gpu_family

    if summary.get("uncertainty"):
        return None
    hardware = dict.fromkeys(p["hardware"] for p in summary["pools"] if str(p["latency_model"]).startswith("roofline"))
    lines = []
    for hw in hardware:
        family = gpu_family(str(hw))
        mean, _, cases = MODEL_ERROR[family]
        if family == "pooled" or abs(mean) < BIAS_NOTE:
            continue
        way = "longer" if mean > 0 else "shorter"
        lines.append(f"{abs(math.expm1(mean)):.0%} {way} on {hw} ({cases} held-out cases)")
    if not lines:
        return None
    return (
        f"note: published real-engine runs took a step {', '.join(lines)} than servesim prices it "
        "(mean error, docs/fidelity.md); uncertainty=on carries that error into the run"
    )


def replication_line(block: dict) -> str:
    """Key figures over the replications (mean ± the 95% CI half-width), in three lines."""
    f, seeds = block["figures"], block["seeds"]

    def pm(name: str, scale: float, unit: str, digits: int) -> str:
        d = f[name]
        if d["mean"] is None:
            return "-"
        half = "" if d["ci95_high"] is None else f" ± {(d['ci95_high'] - d['mean']) * scale:,.{digits}f}"
        return f"{d['mean'] * scale:,.{digits}f}{half}{unit}"

    def span(name: str, scale: float, unit: str, digits: int) -> str:
        d = f[name]
        if d.get("interval_low") is None:
            return "-"
        return f"{d['interval_low'] * scale:,.{digits}f}–{d['interval_high'] * scale:,.{digits}f}{unit}"

    lines = (
        f"replications: {block['n']} seeds ({seeds[0]}–{seeds[-1]}), above: seed {seeds[0]} · mean ± 95% CI:\n"
        f"  p99 TTFT {pm('ttft_p99_s', 1e3, ' ms', 0)} · p99 TPOT {pm('tpot_p99_s', 1e3, ' ms', 1)} · "
        f"goodput {pm('goodput_rps', 1, ' req/s', 2)}\n"
        f"  SLO met {pm('slo_attainment', 100, '%', 1)} · throughput {pm('throughput_rps', 1, ' req/s', 2)}"
    )
    if f["ttft_p99_s"].get("interval_low") is not None:  # enough replications for the central interval
        lines += (
            f"\n  {block['interval']:.0%} of runs within: p99 TTFT {span('ttft_p99_s', 1e3, ' ms', 0)} · "
            f"p99 TPOT {span('tpot_p99_s', 1e3, ' ms', 1)} · goodput {span('goodput_rps', 1, ' req/s', 2)}"
        )
    return lines


def _fleet_size(summary: Summary) -> str:
    """Replica count, or its range when the fleet changed size during the run."""
    sr = (summary.get("cluster") or {}).get("serving_replicas") or {}
    lo, hi = sr.get("min"), sr.get("max")
    return f"{lo}–{hi}" if lo is not None and lo != hi else str(summary["scenario"]["replicas"])


def _workload_words(summary: Summary) -> str:
    """How requests arrive, in words: process and rate, a schedule's mean, or the closed-loop users."""
    s = summary["scenario"]
    if s["arrival"] == "closed_loop":
        think = _secs(s["think_s"]) if s["think_s"] else "0 s"
        return f"closed loop, {s['users']:,} users thinking {think} on average · {s['rate_rps']:.3g} req/s sent"
    if s.get("rate_schedule"):
        rates = "→".join(f"{r:g}" for _, r in s["rate_schedule"])
        return f"{s['arrival']} at {rates} req/s (schedule; mean {s['rate_rps']:.3g})"
    ps = summary.get("parallel_sampling")
    if ps:
        return f"{s['arrival']} {s['rate_rps'] / ps['n']:.3g} prompts/s ({s['rate_rps']:.3g} req/s)"
    return f"{s['arrival']} {s['rate_rps']:.3g} req/s"


def _n(v: int) -> str:
    return f"{v:,}"


def replay_line(summary: Summary) -> str | None:
    """What trace replay did to the trace, in one line (None when the run replayed no trace).

    Every change is named: rows sorted, the window, sampling, the time scale,
    clipping to the max length, looping, and the cap (``num_requests`` or
    ``duration_s``); with none, that the whole trace was replayed.
    """
    w = summary.get("workload") or {}
    if "trace" not in w:
        return None
    name = w["trace"].replace("\\", "/").rsplit("/", 1)[-1]
    rows, n = w["rows_read"], w["requests"]
    changes = []
    if w.get("rows_sorted"):
        changes.append(f"{_n(w['rows_sorted'])} rows sorted by time")
    if w.get("window_s"):
        lo, hi = w["window_s"]
        span = f"[{lo or 0:g} s, {'end' if hi is None else f'{hi:g} s'})"
        changes.append(f"window {span} kept {_n(w['kept_after_window'])} rows")
    if w.get("sample", 1.0) < 1.0:
        changes.append(f"sampled {w['sample']:.0%}: kept {_n(w['kept_after_sample'])}")
    if w.get("time_scale", 1.0) != 1.0:
        changes.append(f"gaps scaled x{w['time_scale']:.4g}")
    if w.get("clipped_requests"):
        changes.append(
            f"{_n(w['clipped_requests'])} requests clipped to {_n(w['max_len'])} tokens (the max length)"
            if w.get("max_len")
            else f"{_n(w['clipped_requests'])} requests clipped to the max length"
        )
    if w.get("loops", 1) > 1:
        changes.append(f"looped {w['loops']} times")
    if w.get("capped_by") == "num_requests":
        whole = "" if w.get("loops", 1) > 1 else " (null replays the whole trace)"
        changes.append(f"capped at workload.num_requests={w['num_requests']}{whole}")
    elif w.get("capped_by") == "duration_s":
        changes.append(f"cut at workload.duration_s={w['duration_s']:g}")
    if not changes:
        return f"replay: all {_n(rows)} rows of {name} ({w['trace_format']}), unchanged"
    head = f"replay: {_n(n)} requests from {_n(rows)} rows of {name} ({w['trace_format']})"
    return head + " · " + " · ".join(changes)


#: why a request could never run, and what to change (reasons a scenario's limits cause, not a policy's choice)
REJECTION_HINTS = {
    "prompt_exceeds_max_batch_tokens": lambda w: (
        "prompts longer than scheduler.max_batch_tokens"
        + (f"={w['max_batch_tokens']}" if w.get("max_batch_tokens") else "")
        + "; raise it or use scheduler=chunked_prefill"
    ),
    "kv_capacity": lambda w: (
        "prompt + output larger than one replica's whole KV cache; give each replica more memory "
        "(cluster.tp, hardware) or lower memory.max_model_len"
    ),
}


def rejection_lines(summary: Summary) -> list[str]:
    """One line per rejection reason that a scenario setting causes, with the setting to change."""
    w = summary.get("workload") or {}
    total = summary["requests"]["total"]
    out = []
    for reason, count in summary["requests"]["rejected_by_reason"].items():
        if count and reason in REJECTION_HINTS:
            share = f" ({count / total:.0%} of requests)" if total else ""
            out.append(f"note: {count:,} rejected{share}: {reason} ({REJECTION_HINTS[reason](w)})")
    return out


def render_summary(summary: Summary, outdir: str | None = None, console: Console | None = None) -> None:
    """Print a run's summary (``summary.json`` as a dict) compactly: scenario, requests, throughput,
    latency table, SLO, tiers, KV cache, cost, and where the outputs went."""
    console = console or Console(highlight=False, soft_wrap=True)
    p = console.print
    _print_scenario(p, summary)
    _print_traffic(p, summary)
    p(_latency_table(summary["latency_s"]))
    slo_line = _slo_line(summary)
    if slo_line:
        p(slo_line)
    if summary.get("replications"):
        p(replication_line(summary["replications"]))
    if summary.get("tiers"):
        p(tier_table(summary["tiers"]))
    if "speculative" in summary:
        p(speculative_line(summary["speculative"]))
    if "beam_search" in summary:
        b = summary["beam_search"]
        saving = f"{b['memory_saving']:.0%}" if b["memory_saving"] is not None else "—"
        p(f"beam search: {b['width']} beams per request sharing their common history's KV blocks: {saving} less KV than separate copies")
    if "parallel_sampling" in summary:
        ps = summary["parallel_sampling"]
        e2e = ps["prompt_e2e_s"]
        secs = lambda v: "—" if v is None else f"{v:,.2f} s"  # noqa: E731
        p(
            f"parallel sampling: {ps['n']} samples per prompt · later samples reused {ps['shared_prompt_blocks']:,} "
            f"cached prompt blocks instead of computing and storing them · all samples of a prompt done in "
            f"{secs(e2e['p50'])} p50, {secs(e2e['p99'])} p99"
        )
    for line in lever_lines(summary):
        p(line)
    if summary["scenario"]["scheduler"] == "static":
        p("note: static batching returns responses when the batch ends, so TPOT and e2e include waiting for its longest request")
    _print_memory(p, summary)
    _print_cost(p, summary)
    energy = energy_line(summary)
    if energy:
        p(energy)
    if outdir:
        _print_outputs(p, summary, outdir)


def speculative_line(sp: SpeculativeSection) -> str:
    """What the verification steps kept against what the acceptance model expects."""
    by = f"draft {sp['draft_model']}" if sp["method"] == "draft" else sp["method"]
    kept = f"{sp['tokens_per_step']:.2f}" if sp["tokens_per_step"] is not None else "no"
    return (
        f"speculative decoding: {by}, k={sp['num_tokens']}, acceptance {sp['acceptance_rate']:g} · "
        f"{kept} tokens kept per verification step (expected {sp['expected_tokens_per_step']:.2f})"
    )


def lever_lines(summary: Summary) -> list[str]:
    """One line per lever in front of the GPUs that is on: the response cache, the model cascade."""
    out = []
    if "response_cache" in summary:
        rc = summary["response_cache"]
        usd = f" · {_usd(rc['usd'])} of hits in the cost" if rc["usd"] else ""
        out.append(
            f"response cache: {rc['hits']:,} of {rc['requests']:,} requests answered ({_pct(rc['measured_hit_rate'])}) "
            f"in {rc['latency_s'] * 1e3:g} ms, never reaching a GPU{usd}"
        )
    if "cascade" in summary:
        c = summary["cascade"]
        out.append(
            f"cascade {c['small']} -> {c['large']}: {c['sent_to_small']:,} sent to {c['small']}, {c['escalated']:,} escalated "
            f"({_pct(c['measured_escalation_rate'])}), {c['by_overload']:,} by overload, {c['straight_to_large']:,} straight "
            f"to {c['large']} · answered by {c['small']} {c['answered_by_small']:,}, by {c['large']} {c['answered_by_large']:,}"
        )
    return out


def _parallel(tp: int, pp: int) -> str:
    """TP2, or TP2xPP2 (4 GPUs) for a pipeline."""
    return f"TP{tp}" if pp <= 1 else f"TP{tp}xPP{pp} ({tp * pp} GPUs)"


def _print_scenario(p, summary: Summary) -> None:
    """The model, fleet and batching; the latency model; the workload; what replay did to a trace."""
    s, rq = summary["scenario"], summary["requests"]
    pools = summary["pools"]
    p(
        f"[bold]servesim[/bold] · {s['model']} · "
        + (
            " + ".join(
                f"{p['replicas']}x {p['hardware']} {_parallel(p['tp'], p.get('pp', 1))} {p['name']}"
                + (f" ({p['model']})" if p.get("model", s["model"]) != s["model"] else "")
                for p in pools
            )
            if len(pools) > 1
            else f"{_fleet_size(summary)}x {s['hardware']} {_parallel(s['tp'], s.get('pp', 1))}"
        )
        + " · "
        + (f"{s['scheduler']}" if len(pools) > 1 else f"{s['scheduler']} batching")
        + "".join(dict.fromkeys(f" (multi-step {p['multi_step']})" for p in pools if p.get("multi_step")))
        + (f" · engine {s['engine']}" if s.get("engine", "generic") != "generic" else "")
    )
    models = dict.fromkeys(f"{p['name']}: {p['latency_model']}" if len(pools) > 1 else p["latency_model"] for p in pools)
    p(f"latency model: {' · '.join(models)}")
    bias = bias_note(summary)
    if bias:
        p(bias)
    ps = summary.get("parallel_sampling")
    count = f"{ps['prompts']:,} prompts x {ps['n']} samples" if ps else f"{rq['total']:,} requests"
    p(f"workload: {_workload_words(summary)} · {count} · seed {s['seed']} · {summary['window']['end_s']:,.1f} s simulated")
    replay = replay_line(summary)
    if replay:
        p(replay)


def _print_traffic(p, summary: Summary) -> None:
    """Requests completed and rejected (with notes on why), throughput, and an overload note."""
    s, rq, th = summary["scenario"], summary["requests"], summary["throughput"]
    reasons = ", ".join(f"{k} {v}" for k, v in rq["rejected_by_reason"].items())
    p(
        f"requests: {rq['completed']:,} completed · {rq['rejected']:,} rejected"
        + (f" ({reasons})" if reasons else "")
        + f" · {rq['preemptions']:,} preemptions"
        + (f" · {rq['retries']:,} retries" if rq.get("retries") else "")
    )
    for line in rejection_lines(summary):
        p(line)
    offered = f"closed loop, {s.get('users', 0):,} users" if s.get("arrival") == "closed_loop" else f"offered {s['rate_rps']:.3g}"
    p(
        f"throughput: {th['requests_per_s']:.2f} req/s ({offered}; whole run incl. drain) · "
        f"{th['output_tokens_per_s']:,.0f} output tok/s · {th['total_tokens_per_s']:,.0f} tok/s"
    )
    note = overload_note(summary)
    if note:
        p(note)


def _latency_table(lat: LatencySection) -> Table:
    """Mean, p50, p90, p99 and max of TTFT, TPOT, ITL, e2e and queueing."""
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("latency")
    for col in STAT_KEYS:
        table.add_column(col, justify="right", min_width=7)
    for key in LATENCY_KEYS:
        d = lat[key]
        unit, scale = _unit(d)
        table.add_row(f"{_LATENCY_LABELS[key]} ({unit})", *(_cell(d[c], scale) for c in STAT_KEYS))
    return table


def _slo_line(summary: Summary) -> str | None:
    """The SLO targets (``per tier`` when tiers set their own), how many requests met them, goodput."""
    slo, rq = summary["slo"], summary["requests"]
    tiers = summary.get("tiers") or {}
    targets = []
    for k, name, target in (("ttft_s", "TTFT", slo["ttft_s"]), ("tpot_s", "TPOT", slo["tpot_s"]), ("e2e_s", "e2e", slo["e2e_s"])):
        per_tier = {d.get(k, target) for d in tiers.values()} if k != "e2e_s" else set()
        if per_tier - {target}:
            targets.append(f"{name} per tier")
        elif target is not None:
            targets.append(f"{name} <= {_secs(target)}")
    if slo["attainment"] is None:
        return None
    met = round(slo["attainment"] * rq["total"])
    pct = f"{slo['attainment'] * 100:.2f}".rstrip("0").rstrip(".")
    return (
        f"SLO {', '.join(targets) or '(none)'}: {met:,} of {rq['total']:,} requests met it ({pct}%) · "
        f"goodput {slo['goodput_rps']:.2f} req/s"
    )


def _print_memory(p, summary: Summary) -> None:
    """KV-cache size and usage, the prefix cache, and KV transfers when disaggregated."""
    s, kv, pools = summary["scenario"], summary["kv_cache"], summary["pools"]
    usage = f"peak {kv['peak_usage'] * 100:.0f}% · mean {kv['mean_usage'] * 100:.0f}%"
    if len(pools) > 1 and not s.get("disaggregated"):  # groups: each its own capacity, usage over all
        sizes = " · ".join(f"{p['name']} {p['kv_tokens_per_replica']:,}" for p in pools)
        p(f"KV cache: tokens/replica {sizes} · {usage}")
    else:
        p(
            ("KV cache (decode pool)" if s.get("disaggregated") else "KV cache")
            + f": {kv['tokens_per_replica']:,} tokens/replica ({kv['blocks_per_replica']:,} blocks, "
            f"{kv['gb_per_replica']:.1f} GB) · {usage}"
        )
    if "contiguous" in kv:
        c = kv["contiguous"]
        pool = f" · {c['pool_token_share'] * 100:.0f}% of the pool holds tokens" if c["pool_token_share"] is not None else ""
        p(
            f"contiguous placement ({c['allocator']}): {c['requests_delayed_by_fragmentation']:,} requests waited for a free "
            f"range · external fragmentation {c['external_fragmentation_mean'] * 100:.0f}% mean{pool}"
        )
    if "prefix_cache" in summary:
        pc = summary["prefix_cache"]
        p(
            f"prefix cache: {pc['token_hit_rate'] * 100:.1f}% of prompt tokens found cached "
            f"({pc['saved_prefill_tokens']:,} tokens not recomputed) · {pc['evictions']:,} cached blocks evicted to make room"
        )
        if "offload" in pc:
            off = pc["offload"]
            tiers = " · ".join(f"{name} {t['hit_blocks']:,}" for name, t in off.items() if isinstance(t, dict))
            p(f"KV offload: blocks hit in lower tiers: {tiers} · {off['loaded_gb']:,.1f} GB loaded back")
    if "kv_transfer" in summary:
        t = summary["kv_transfer"]
        if t["transfers"] and t["mean_s"] is not None:
            exposed = t.get("mean_exposed_s")
            lw = f" · layer-wise: {exposed * 1e3:.2f} ms exposed after prefill" if t.get("layerwise") and exposed is not None else ""
            p(f"KV transfer: {t['transfers']:,} copies, {t['gb']:,.1f} GB, {t['mean_s'] * 1e3:.2f} ms mean copy{lw}")


def _print_cost(p, summary: Summary) -> None:
    """GPU-hours and dollars; with a changing fleet, the fleet line and the GPUs billed."""
    cost = summary["cost"]
    usd = ""
    if cost["usd"] is not None:
        price = cost.get("price_per_gpu_hour")
        rate = f" at ${price:g}/GPU-h" if price is not None else " (priced per group)"
        cache = cost.get("response_cache_usd")
        if cache:  # the bill is GPUs + the response cache's hits: say which is which
            usd = f" · ${cost['usd']:,.2f} (GPUs ${cost['usd'] - cache:,.2f}{rate} + cache hits ${cache:,.2f})"
        else:
            usd = f" · ${cost['usd']:,.2f}{rate}"
        usd += _tier_mix(cost)
    line = cluster_line(summary)
    if line:
        billed = summary["cluster"]["billed_gpus"]
        p(line)
        p(f"cost: {cost['gpu_hours']:.3f} GPU-h{usd} · GPUs billed: mean {billed['mean']:.1f}, peak {billed['max']}")
    else:
        p(f"cost: {cost['gpus']} GPU{'' if cost['gpus'] == 1 else 's'} · {cost['gpu_hours']:.3f} GPU-h{usd}")
    per_token = _per_token_line(cost)
    if per_token:
        p(per_token)


def energy_line(summary: Summary) -> str:
    """``energy: kWh GPU · kWh facility (PUE) · mean W/GPU · J/token · $``; "" without power data."""
    e = summary.get("energy")
    if not e or e.get("gpu_kwh") is None:
        return ""
    parts = [f"energy: {e['gpu_kwh']:,.3g} kWh GPU", f"{e['facility_kwh']:,.3g} kWh facility (PUE {e['pue']:g})"]
    if e.get("mean_power_w_per_gpu") is not None:
        parts.append(f"mean {e['mean_power_w_per_gpu']:,.0f} W/GPU")
    if e.get("joules_per_token") is not None:
        out = e.get("joules_per_output_token")
        parts.append(f"{e['joules_per_token']:.3g} J/token" + (f" ({out:.3g} J/output token)" if out is not None else ""))
    usd = e.get("usd")
    if usd is not None:
        parts.append(f"{_usd(usd)} at ${e['usd_per_kwh']:g}/kWh")
    return " · ".join(parts)


def _tier_mix(cost: CostSection) -> str:
    """`` · $X/h · spot 75%, on_demand 25% of GPU-h`` when not every GPU-hour is on-demand (pricing tiers), else ""."""
    mix = cost.get("by_tier") or {}
    hours = sum(t["gpu_hours"] for t in mix.values())
    if set(mix) <= {"on_demand"} or hours <= 0:
        return ""
    per_hour = cost.get("mean_usd_per_hour")
    rate = f" · {_usd(per_hour)}/h" if per_hour is not None else ""
    shares = sorted(((t["gpu_hours"] / hours, name) for name, t in mix.items()), reverse=True)
    return rate + " · " + ", ".join(f"{name} {share * 100:.0f}%" for share, name in shares) + " of GPU-h"


def _usd(v: float) -> str:
    """A dollar amount, small ones to three significant figures, no exponent (``$0.000082``, ``$0.215``, ``$1.25``, ``$1,234``)."""
    if v >= 100 or v <= 0 or v != v:
        return f"${v:,.0f}"
    digits = max(2, 2 - math.floor(math.log10(v)))
    text = f"{v:.{digits}f}"
    return "$" + (text.rstrip("0").rstrip(".") if digits > 2 else text)


def _per_token_line(cost: CostSection) -> str:
    """``$/1M input · $/1M output tokens · $/request``, the figures known; "" when none is."""
    figures = (
        (cost.get("usd_per_million_input_tokens"), "/1M input"),
        (cost.get("usd_per_million_output_tokens"), "/1M output tokens"),
        (cost.get("usd_per_request"), "/request"),
    )
    parts = [f"{_usd(v)}{label}" for v, label in figures if v is not None]
    return "unit cost: " + " · ".join(parts) if parts else ""


def _print_outputs(p, summary: Summary, outdir: str) -> None:
    """Where the run's files went, and the Perfetto timeline when one was written."""
    from pathlib import Path

    from simulator.files import PERFETTO_FILE

    p(f"outputs: {outdir}")
    if (Path(outdir) / PERFETTO_FILE).is_file():
        from simulator.report.perfetto import MAX_REQUESTS

        capped = f"; request slices: the first {MAX_REQUESTS:,} requests" if summary["requests"]["total"] > MAX_REQUESTS else ""
        p(f"timeline: {Path(outdir) / PERFETTO_FILE} (open it at ui.perfetto.dev{capped})")
