"""The searches' defaults, their error, and the checks of their arguments and scenarios."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

from simulator.errors import ConfigError, ServesimError

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: a probe simulates at least this many seconds of arrivals (see docs/plan.md)
MIN_DURATION_S = 600.0
#: a probe fails when more than this share of its requests were rejected
MAX_REJECTION = 0.01
#: bracketing gives up after this many doublings (or halvings) of the rate
MAX_STEPS = 12
#: the replica search of :func:`cheapest` tries at most this many replicas per configuration
MAX_REPLICAS = 64


class SearchError(ServesimError):
    """A search found no answer in its range (nothing passes, or nothing fails)."""


def _check_args(
    *,
    lo=None,
    hi=None,
    rel_tol=0.02,
    replications=1,
    requests=None,
    min_duration_s=1.0,
    max_rejection=0.0,
    target_rate=None,
    max_steps=1,
) -> None:
    def positive(name, flag, v):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(f"{name}={v} ({flag}) must be a positive number.")

    positive("lo", "--lo", lo)
    positive("hi", "--hi", hi)
    positive("target_rate", "--rate", target_rate)
    positive("min_duration_s", "--duration", min_duration_s)
    if not (0 < rel_tol < 1):
        raise ConfigError(f"rel_tol={rel_tol} (--tol) must lie between 0 and 1 (e.g. 0.02).")
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ConfigError(f"max_steps={max_steps} must be a whole number of at least 1.")
    if not (isinstance(replications, int) and replications >= 1):
        raise ConfigError(f"replications={replications} (--replications) must be a whole number of at least 1.")
    if requests is not None and not (isinstance(requests, int) and requests >= 1):
        raise ConfigError(f"requests={requests} (--requests) must be a whole number of at least 1.")
    if not (0 <= max_rejection <= 1):
        raise ConfigError(f"max_rejection={max_rejection} (--max-rejection) must lie between 0 and 1.")


def _check_rate_driven(cfg: ScenarioConfig) -> None:
    w = cfg.workload
    if w.arrival in ("trace", "closed_loop"):
        raise ConfigError(
            f"the capacity search varies workload.rate, which workload.arrival={w.arrival} does not use; "
            "choose poisson, gamma or constant arrivals."
        )
    if w.rate_schedule:
        raise ConfigError(
            "the capacity search varies workload.rate, which workload.rate_schedule replaces; "
            "set workload.rate_schedule=null."
        )


def _ints(name: str, values: Iterable) -> list[int]:
    vals = [values] if isinstance(values, (int, str)) else list(values)
    out = []
    for v in vals:
        try:
            iv = int(v)
        except (TypeError, ValueError):
            iv = 0
        if iv < 1 or str(iv) != str(v).strip():
            raise ConfigError(f"{name}={v} must be a whole number of at least 1.")
        out.append(iv)
    if not out:
        raise ConfigError(f"give at least one value for {name}.")
    return list(dict.fromkeys(out))


def _names(name: str, values: Iterable[str], known: list[str]) -> list[str]:
    vals = [values] if isinstance(values, str) else list(values)
    if not vals:
        raise ConfigError(f"give at least one value for {name}.")
    for v in vals:
        if v not in known:
            raise ConfigError(f"{name}={v} is not known; choose one of: {', '.join(known)}.")
    return list(dict.fromkeys(vals))


def _check_confidence(confidence: float | None, replications: int) -> None:
    """``confidence`` is a share of replications, and there are replications to share."""
    if confidence is None:
        return
    if not 0 < confidence <= 1:
        raise ConfigError(f"confidence={confidence:g} must be a share of replications, above 0 and at most 1.")
    if replications < 2:
        raise ConfigError("confidence needs replications of 2 or more (10 or more for a meaningful share); add --replications N.")

