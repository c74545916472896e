"""The candidate configurations of :func:`cheapest`: their prices, their rows, simulating and judging them.

Each candidate is one row (a dict) of the plan table: ``{replicas}x{hardware}-tp{tp}-{policy}``
(``-reserved`` or ``-spot`` appended at those pricing tiers), its tier, its cost per hour, its status (met, failed, skipped, not evaluated), why it
failed or was skipped, its figures and its run directory. Keys starting with
``_`` (the run's overrides, the grid rank) stay out of the table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from simulator.errors import ConfigError
from simulator.plan.formatting import _candidate_line, _progress, _skipped_line
from simulator.plan.point import _evaluate, _output_overrides
from simulator.plan.requirements import Requirement, _judge_point


def _prices(grid_hw: list[str], overrides: list[str], tiers: list[str] | None = None) -> dict:
    """Each (GPU, pricing tier)'s price as the scenario sees it: on-demand is the hardware catalog's
    price_per_gpu_hour (or the overrides'), reserved and spot the pricing catalog's (docs/pricing.md)."""
    from simulator.config import catalog, compose, to_scenario
    from simulator.config.pricing import tier_price

    prices: dict = {}
    for hw in grid_hw:
        for tier in tiers or ["on_demand"]:
            try:
                cfg = to_scenario(compose([*overrides, f"hardware={hw}", f"cluster.tier={tier}"]))
                prices[(hw, tier)] = tier_price(cfg)
            except ConfigError:
                prices[(hw, tier)] = catalog.load_hardware(hw).price_per_gpu_hour if tier == "on_demand" else None
    return prices


@dataclass
class _Candidates:
    """One :func:`cheapest` search under way: the rows made so far and how to simulate them."""

    overrides: list[str]
    target_rate: float
    num_requests: int
    prices: dict
    reqs: list[Requirement]
    max_rejection: float
    d: Path
    seeds: list[int]
    jobs: int
    progress: Callable[[str], None] | None
    t0: float
    settings: dict
    rows: list[dict] = field(default_factory=list)
    confidence: float | None = None  # a configuration passes when this share of its replications meets every requirement

    def make_row(self, r: int, t: int, hw: str, pol: str, rank: tuple, check: bool = True, tier: str = "on_demand") -> dict:
        """The row of ``r`` x ``hw`` TP ``t`` with ``pol`` at pricing ``tier``; skipped (with the reason) when it
        has no price or, when ``check``, its scenario does not load."""
        price = self.prices.get((hw, tier))
        row = _blank_row(r, t, hw, pol, price, tier)
        ov = self.overrides + [f"cluster.replicas={r}", f"cluster.tp={t}", f"hardware={hw}", f"scheduler={pol}"]
        if tier != "on_demand":
            ov.append(f"cluster.tier={tier}")
        ov += [f"workload.rate={self.target_rate!r}", f"workload.num_requests={self.num_requests}"]
        ov += _output_overrides()
        row["_overrides"] = ov
        row["_rank"] = rank
        if price is None and tier == "on_demand":
            row["skipped"] = (
                f"hardware={hw} has no price_per_gpu_hour in the catalog, so its cost cannot be compared; "
                "give one with hardware.price_per_gpu_hour=..."
            )
        elif price is None:
            row["skipped"] = (
                f"hardware={hw} has no {tier} price in the pricing catalog, so its cost cannot be compared; "
                f"give one with pricing.hardware.{hw}.{tier}=... (docs/pricing.md)"
            )
        elif check:
            from simulator import api

            try:
                api.load_config(ov)
            except ConfigError as exc:
                row["skipped"] = str(exc)
        return row

    def run_batch(self, batch: list[int]) -> None:
        """Simulate the rows at these indices (in parallel with more than one job) and record each outcome."""
        outs = _evaluate(self.rows, batch, self.d, self.seeds, self.jobs)
        for i, out in zip(batch, outs):
            self._record(self.rows[i], out)

    def _record(self, row: dict, out: dict) -> None:
        """A run's outcome into its row: skipped when the run refused it, else its figures and verdict."""
        row["wall_s"] = out["wall_s"]
        if "error" in out:
            row["skipped"] = out["error"]
            _progress(self.progress, _skipped_line(row, out["error"]))
            return
        figs = {k: v for k, v in out["figures"].items() if k not in ("gpus", "usd_per_hour")}
        ok, why, share = _judge_point(out, self.reqs, self.max_rejection, self.confidence)
        if share is not None:
            figs["met_share"] = share
        row.update(figs)
        row.update(evaluated=True, met=ok, failed=why, run_dir=str(self.d / row["config"]))
        _progress(self.progress, _candidate_line(row, out["figures"], self.reqs, ok, why))

    def refuse_common_mistake(self) -> None:
        """Raise the reason when every priced row was skipped for the same one: the overrides' mistake, not the grid's."""
        reasons = {row["skipped"] for row in self.rows if row["price_per_gpu_hour"] is not None}
        if len(reasons) == 1 and "" not in reasons and "does not fit" not in next(iter(reasons)):
            raise ConfigError(next(iter(reasons)))  # the same mistake everywhere: the overrides', not the grid's


def _blank_row(r: int, t: int, hw: str, pol: str, price: float | None, tier: str = "on_demand") -> dict:
    """A candidate's row before it is judged: its name, size, pricing tier and cost."""
    return {
        "config": f"{r}x{hw}-tp{t}-{pol}" + ("" if tier == "on_demand" else f"-{tier}"),
        "replicas": r,
        "tp": t,
        "hardware": hw,
        "policy": pol,
        "tier": tier,
        "gpus": r * t,
        "price_per_gpu_hour": price,
        "usd_per_hour": float("nan") if price is None else r * t * price,
        "status": "",
        "evaluated": False,
        "met": False,
        "failed": "",
        "skipped": "",
        "run_dir": "",
    }


def _settle_statuses(rows: list[dict]) -> None:
    """Each row's status: met, failed, skipped or not evaluated."""
    for row in rows:
        if row["evaluated"]:
            row["status"] = "met" if row["met"] else "failed"
        elif row["skipped"]:
            row["status"] = "skipped"
        else:
            row["status"] = "not evaluated"  # a cheaper configuration met the requirements (search: its count 1)


def _best(rows: list[dict]) -> dict | None:
    """Of the passing rows of the lowest cost, the one with the highest goodput (ties: grid order); None if none passed."""
    met = [row for row in rows if row["met"]]
    if not met:
        return None
    low = min(round(row["usd_per_hour"], 6) for row in met)
    winners = [row for row in met if round(row["usd_per_hour"], 6) == low]
    top = max(row["goodput_rps"] for row in winners)  # ties: grid order
    b = min((row for row in winners if row["goodput_rps"] == top), key=lambda row: row["_rank"])
    return {k: v for k, v in b.items() if not k.startswith("_")}


def _candidate_table(rows: list[dict]) -> pd.DataFrame:
    """The plan table: rows in grid order, then stably cheapest first (no price last), without ``_`` keys.

    Sorts ``rows`` itself into grid order."""
    rows.sort(key=lambda row: row["_rank"])
    table = pd.DataFrame([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    table = table.assign(_cost=table["usd_per_hour"].fillna(math.inf)).sort_values(["_cost"], kind="stable")
    return table.drop(columns="_cost").reset_index(drop=True)
