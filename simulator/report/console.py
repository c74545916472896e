"""The compact summary a run prints to the terminal (fits 80 columns)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _ms(v) -> str:
    if v is None:
        return "-"
    return f"{v * 1e3:,.1f}" if v < 10 else f"{v * 1e3:,.0f}"


def _secs(v: float) -> str:
    return f"{v:g} s" if v >= 1 else f"{v * 1e3:g} ms"


def render_summary(summary: dict, outdir: str | None = None, console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    s, rq, th, lat = summary["scenario"], summary["requests"], summary["throughput"], summary["latency_s"]
    slo, kv, cost = summary["slo"], summary["kv_cache"], summary["cost"]
    p = console.print
    p(
        f"[bold]servesim[/bold] · {s['model']} · "
        + (
            " + ".join(f"{p['replicas']}x {p['hardware']} TP{p['tp']} {p['name']}" for p in summary["pools"])
            if s.get("disaggregated")
            else f"{s['replicas']}x {s['hardware']} TP{s['tp']}"
        )
        + " · "
        + (f"{s['scheduler']}" if s.get("disaggregated") else f"{s['scheduler']} batching")
    )
    p(f"latency model: {s['latency_model']}")
    p(
        f"workload: {s['arrival']} {s['rate_rps']:.3g} req/s · {rq['total']:,} requests · seed {s['seed']} · "
        f"{summary['window']['end_s']:,.1f} s simulated"
    )
    reasons = ", ".join(f"{k} {v}" for k, v in rq["rejected_by_reason"].items())
    p(
        f"requests: {rq['completed']:,} completed · {rq['rejected']:,} rejected"
        + (f" ({reasons})" if reasons else "")
        + f" · {rq['preemptions']:,} preemptions"
    )
    p(
        f"throughput: {th['requests_per_s']:.2f} req/s (offered {s['rate_rps']:.3g}; whole run incl. drain) · "
        f"{th['output_tokens_per_s']:,.0f} output tok/s · {th['total_tokens_per_s']:,.0f} tok/s"
    )
    table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 1))
    table.add_column("latency (ms)")
    for col in ("mean", "p50", "p90", "p99", "max"):
        table.add_column(col, justify="right", min_width=7)
    for key, label in (("ttft", "TTFT"), ("tpot", "TPOT"), ("itl", "ITL"), ("e2e", "e2e"), ("queue", "queue")):
        d = lat[key]
        table.add_row(label, *(_ms(d[c]) for c in ("mean", "p50", "p90", "p99", "max")))
    p(table)
    targets = [
        f"{name} <= {_secs(slo[k])}" for k, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "e2e")) if slo[k] is not None
    ]
    if slo["attainment"] is not None:
        met = round(slo["attainment"] * rq["total"])
        pct = f"{slo['attainment'] * 100:.2f}".rstrip("0").rstrip(".")
        p(
            f"SLO {', '.join(targets) or '(none)'}: {met:,} of {rq['total']:,} requests met it ({pct}%) · "
            f"goodput {slo['goodput_rps']:.2f} req/s"
        )
    if s["scheduler"] == "static":
        p("note: static batching returns responses when the batch ends, so TPOT and e2e include waiting for its longest request")
    p(
        ("KV cache (decode pool)" if s.get("disaggregated") else "KV cache")
        + f": {kv['tokens_per_replica']:,} tokens/replica ({kv['blocks_per_replica']:,} blocks, "
        f"{kv['gb_per_replica']:.1f} GB) · peak {kv['peak_usage'] * 100:.0f}% · mean {kv['mean_usage'] * 100:.0f}%"
    )
    if "prefix_cache" in summary:
        pc = summary["prefix_cache"]
        p(
            f"prefix cache: {pc['token_hit_rate'] * 100:.1f}% of prompt tokens found cached "
            f"({pc['saved_prefill_tokens']:,} tokens not recomputed) · {pc['evictions']:,} cached blocks evicted to make room"
        )
    if "kv_transfer" in summary:
        t = summary["kv_transfer"]
        if t["transfers"]:
            p(f"KV transfer: {t['transfers']:,} copies, {t['gb']:,.1f} GB, {t['mean_s'] * 1e3:.2f} ms mean copy")
    usd = f" · ${cost['usd']:,.2f} at ${cost['price_per_gpu_hour']:g}/GPU-h" if cost["usd"] is not None else ""
    p(f"cost: {cost['gpus']} GPU · {cost['gpu_hours']:.3f} GPU-h{usd}")
    if outdir:
        p(f"outputs: {outdir}")
