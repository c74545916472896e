"""The one-sentence checks every validator uses: a condition, a positive number, a fraction.

Each raises :class:`~simulator.errors.ConfigError` with a message naming the
key, the value and what is allowed.
"""

from __future__ import annotations

import math

from omegaconf import ListConfig, OmegaConf

from simulator.errors import ConfigError


def need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def positive(value, key: str, *, allow_zero: bool = False) -> None:
    ok = value is not None and (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    bound = ">= 0" if allow_zero else "> 0"
    need(ok, f"{key} must be a finite number {bound} (got {value!r}).")


def fraction(value, key: str, *, allow_zero: bool = False, allow_one: bool = True) -> None:
    lo_ok = value >= 0 if allow_zero else value > 0
    hi_ok = value <= 1 if allow_one else value < 1
    lo = "[0" if allow_zero else "(0"
    hi = "1]" if allow_one else "1)"
    need(lo_ok and hi_ok, f"{key} must lie in {lo}, {hi} (got {value!r}).")


def plain(value):
    """A config node as plain Python, for messages."""
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value
