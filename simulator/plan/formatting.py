"""How the capacity searches print: figures, rate pairs, scenarios, one line per probe or candidate."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from simulator.plan.requirements import Requirement, _fmt

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def _fmt_pair(a: float, b: float | None) -> tuple[str, str]:
    """Format two close rates with just enough digits to tell them apart."""
    if b is None:
        return f"{a:.3g}", ""
    for digits in (3, 4, 5, 6):
        sa, sb = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if sa != sb:
            return sa, sb
    return f"{a:.6g}", f"{b:.6g}"


def describe(cfg: ScenarioConfig) -> str:
    """'1x h100-sxm llama-3.1-8b, continuous' (TP shown when above 1)."""
    c = cfg.cluster
    if c.disaggregation.enabled:
        return f"disaggregated prefill/decode, {cfg.model.name}"
    if c.groups:
        return f"groups {', '.join(c.groups)}, {cfg.model.name}, {cfg.scheduler.policy}"
    tp = f" TP{c.tp}" if c.tp > 1 else ""
    return f"{c.replicas}x {cfg.hardware.name}{tp} {cfg.model.name}, {cfg.scheduler.policy}"


def _progress(progress: Callable[[str], None] | None, line: str) -> None:
    if progress is not None:
        progress(line)


def _joined(reqs: list[Requirement]) -> str:
    return " and ".join(str(r) for r in reqs)


def _key_figures(reqs: list[Requirement]) -> list[str]:
    keys = [r.figure for r in reqs]
    return keys + [k for k in ("throughput_rps", "slo_attainment") if k not in keys]


def _shown_figures(figs: dict, reqs: list[Requirement]) -> str:
    """The figures a progress line shows: those the requirements name, then throughput and SLO attainment."""
    return "  ".join(f"{k} {_fmt(figs.get(k))}" for k in _key_figures(reqs))


def _verdict(ok: bool, why: str) -> str:
    return "pass" if ok else f"FAIL ({why})"


def _probe_line(i: int, rate: float, figs: dict, reqs: list[Requirement], ok: bool, why: str) -> str:
    shown = _shown_figures(figs, reqs)
    if figs.get("rejection_rate", 0) and figs["rejection_rate"] > 0:
        shown += f"  rejection_rate {_fmt(figs['rejection_rate'])}"
    return f"probe {i:>2}  rate {rate:8.4g} req/s  {shown}  {_verdict(ok, why)}"


def _candidate_line(row: dict, figs: dict, reqs: list[Requirement], ok: bool, why: str) -> str:
    """One simulated configuration of :func:`cheapest`: its name, its cost, its figures, pass or FAIL."""
    shown = _shown_figures(figs, reqs)
    return f"{row['config']:<34} ${row['usd_per_hour']:7.2f}/h  {shown}  {_verdict(ok, why)}"


def _skipped_line(row: dict, reason: str) -> str:
    """A configuration of :func:`cheapest` the run itself refused."""
    return f"{row['config']:<34} ${row['usd_per_hour']:7.2f}/h  skipped: {reason}"
