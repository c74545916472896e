"""Pricing tiers: what a pool's GPUs cost per hour, and how often spot capacity is taken back.

The pricing catalog (``pricing=``, one snapshot per file in ``scenarios/pricing/``)
holds, per hardware catalog name, an on-demand, a reserved and a spot price in
USD per GPU-hour, each with its source and date (docs/pricing.md). Each pool
pays one tier: ``cluster.groups.<name>.tier`` for a group, else ``cluster.tier``
(default ``on_demand``); :func:`simulator.config.pools.pool_configs` hands each
pool its tier as ``cluster.tier`` of the scenario as that pool sees it.

Which figure is the on-demand price, first that applies:

1. ``hardware.price_per_gpu_hour`` when it differs from the hardware catalog's
   shipped figure (an explicit override, ``null`` included, as before the
   pricing catalog existed);
2. the pricing catalog's ``on_demand`` (``pricing.hardware.<gpu>.on_demand``);
3. the hardware catalog's ``price_per_gpu_hour``.

The shipped snapshot's ``on_demand`` figures are the hardware catalog's (a
test holds them equal), so every existing scenario's cost is unchanged.
Reserved and spot come from the pricing catalog only.

Spot replicas are interrupted at ``spot_interruptions_per_hour`` of their GPU
type's entry, else ``pricing.spot.interruptions_per_hour`` (per replica-hour
serving), each after ``pricing.spot.notice_s`` of notice
(:meth:`simulator.cluster.fleet.Fleet.interrupt`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.config.checks import need
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.config.schema import GpuPriceConfig, ScenarioConfig

TIERS = ("on_demand", "reserved", "spot")


def _entry(cfg: ScenarioConfig) -> GpuPriceConfig | None:
    return cfg.pricing.hardware.get(cfg.hardware.name)


def tier_price(cfg: ScenarioConfig) -> float | None:
    """USD per GPU-hour of a pool (``cfg`` as the pool sees it) at its tier; None when unpriced."""
    entry, tier = _entry(cfg), cfg.cluster.tier
    if tier == "on_demand":
        own = cfg.hardware.price_per_gpu_hour
        listed = None if entry is None else entry.on_demand
        if listed is None:  # the pricing catalog has no on-demand figure: the hardware's (or none)
            return None if own is None else float(own)
        if own == listed:  # the same figure: no need to ask which wins
            return float(listed)
        shipped = _shipped_price(cfg.hardware.name)
        price: float | None
        if shipped is _UNKNOWN:  # a GPU the hardware catalog does not hold
            price = own if own is not None else listed
        elif own != shipped:  # hardware.price_per_gpu_hour=... (or null) was given: it wins
            price = own
        else:  # the hardware catalog's own figure, untouched: the pricing catalog's wins
            price = listed
        return None if price is None else float(price)
    tiered = None if entry is None else getattr(entry, tier)
    return None if tiered is None else float(tiered)


_UNKNOWN = object()


def _shipped_price(name: str) -> object:
    """The hardware catalog's own price_per_gpu_hour for ``name`` (None when it has none; a marker, equal to
    no price, when ``name`` is not in the catalog: a custom GPU's price is then its own or the pricing catalog's)."""
    from simulator.config.catalog import load_hardware

    try:
        return load_hardware(name).price_per_gpu_hour
    except ConfigError:
        return _UNKNOWN


def spot_rate_per_hour(cfg: ScenarioConfig) -> float:
    """Spot interruptions per replica-hour of a pool (``cfg`` as the pool sees it); 0 unless it pays spot."""
    if cfg.cluster.tier != "spot":
        return 0.0
    entry = _entry(cfg)
    if entry is not None and entry.spot_interruptions_per_hour is not None:
        return float(entry.spot_interruptions_per_hour)
    return float(cfg.pricing.spot.interruptions_per_hour)


def _rate(value: float | None, key: str, what: str = "a price or rate") -> None:
    need(
        value is None or (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0),
        f"{key}={value} must be {what} >= 0 (null: none).",
    )


def _hardware_names() -> set[str]:
    """The hardware catalog's names, read from the scenario tree's folder without importing the
    ``simulator.scenarios`` package (whose import registers and builds the whole schema)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("simulator.scenarios")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    return {p.stem for root in roots for p in (Path(root) / "hardware").glob("*.yaml")}


def check_pricing(cfg: ScenarioConfig) -> None:
    """The catalog's entries and every pool's tier: known names, prices >= 0, a price for each tier in use."""
    from simulator.config.pools import pool_configs

    pr = cfg.pricing
    known = _hardware_names() | {cfg.hardware.name}
    for hw, entry in pr.hardware.items():
        need(
            hw in known,
            f"pricing.hardware.{hw} names no hardware; the pricing catalog prices hardware catalog entries: "
            f"{', '.join(sorted(known))}.",
        )
        for field in ("on_demand", "reserved", "spot", "spot_interruptions_per_hour"):
            _rate(getattr(entry, field), f"pricing.hardware.{hw}.{field}")
    _rate(pr.spot.interruptions_per_hour, "pricing.spot.interruptions_per_hour")
    _rate(pr.spot.notice_s, "pricing.spot.notice_s", "a duration in seconds")
    _tier(cfg.cluster.tier, "cluster.tier")
    for name, group in cfg.cluster.groups.items():
        if group.tier is not None:
            _tier(group.tier, f"cluster.groups.{name}.tier")
    spot = False
    for name, pcfg in pool_configs(cfg):
        tier = pcfg.cluster.tier
        key = (
            f"cluster.groups.{name}.tier"
            if name in cfg.cluster.groups and cfg.cluster.groups[name].tier
            else "cluster.tier"
        )
        if tier != "on_demand" and tier_price(pcfg) is None:
            hw = pcfg.hardware.name
            how = (
                f"pricing.hardware.{hw}.{tier}=..."
                if hw in pr.hardware
                else f"'++pricing.hardware={{{hw}: {{{tier}: ...}}}}'"
            )
            raise ConfigError(
                f"{key}={tier} but the pricing catalog ({pr.name}) has no {tier} price for {hw}: give one with {how}, "
                "or choose another tier."
            )
        spot = spot or spot_rate_per_hour(pcfg) > 0
    need(
        not (spot and cfg.cluster.disaggregation.enabled),
        "spot interruptions work on colocated replicas (like cluster.failures), not with cluster.disaggregation.enabled=true; "
        "set pricing.spot.interruptions_per_hour=0 (and the hardware's spot_interruptions_per_hour) to pay spot prices without them.",
    )


def _tier(tier: str, key: str) -> None:
    need(tier in TIERS, f"{key}={tier!r} is not a pricing tier; choose one of: {', '.join(TIERS)}.")


__all__ = ["TIERS", "check_pricing", "spot_rate_per_hour", "tier_price"]
