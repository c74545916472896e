"""Headroom: size a fleet for a day of traffic, and for losing replicas at its worst moment.

``cheapest(..., rate_schedule=..., survive_failures=N)`` simulates every
candidate over a rate schedule (``workload.rate_schedule``: a diurnal day, a
spike) instead of one rate, and, with N > 0, fails N replicas (the busiest,
``cluster.failures.replica`` empty) at the worst moment: the start of the
schedule's peak, when its queue is about to build. A failed replica comes back
after ``cluster.failures.repair_s`` and a cold start, as the failure model
has it (docs/cluster.md). The scenario's own overrides still apply, so
``cluster.autoscaler.enabled=true`` plans with autoscaling on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from simulator.errors import ConfigError


def parse_schedule(text: str) -> list[tuple[float, float]]:
    """``"0:10,600:40,1200:10,1800:0"`` (seconds:requests per second, a rate of 0 to end) as pairs."""
    pairs = []
    for item in text.split(","):
        t, sep, rate = item.strip().partition(":")
        try:
            pairs.append((float(t), float(rate)))
        except ValueError:
            raise ConfigError(f"--schedule {text!r}: each step is SECONDS:RATE, e.g. 0:10,600:40,1200:0 (got {item!r}).") from None
        if not sep:
            raise ConfigError(f"--schedule {text!r}: each step is SECONDS:RATE, e.g. 0:10,600:40,1200:0 (got {item!r}).")
    return pairs


def check_schedule(schedule: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """The schedule as (start s, rate) pairs: from 0, increasing times, rates >= 0, the last rate 0 (its end)."""
    pairs = [(float(t), float(r)) for t, r in schedule]
    if len(pairs) < 2 or pairs[0][0] != 0 or pairs[-1][1] != 0:
        raise ConfigError(
            "a rate schedule starts at time 0 and ends with a rate of 0 at the time the traffic ends, "
            f"e.g. [[0, 10], [600, 40], [1200, 10], [1800, 0]] (got {pairs})."
        )
    if any(b[0] <= a[0] for a, b in zip(pairs, pairs[1:])) or any(r < 0 for _, r in pairs):
        raise ConfigError(f"a rate schedule's times increase and its rates are >= 0 (got {pairs}).")
    if max(r for _, r in pairs) <= 0:
        raise ConfigError(f"a rate schedule needs a positive rate somewhere (got {pairs}).")
    return pairs


def peak(schedule: list[tuple[float, float]]) -> tuple[float, float]:
    """(start s, rate) of the schedule's highest-rate step (the first, if several tie)."""
    return max(schedule[:-1], key=lambda p: (p[1], -p[0]))


def expected_requests(schedule: list[tuple[float, float]]) -> float:
    """Arrivals the schedule expects: the integral of its rate."""
    return sum(r * (b[0] - a[0]) for (a, b), r in zip(zip(schedule, schedule[1:]), (p[1] for p in schedule)))


def headroom_overrides(schedule: list[tuple[float, float]] | None, survive_failures: int, constant_window_s: float) -> list[str]:
    """The overrides every candidate run gets: the schedule and its end, and the failures at the worst moment
    (the schedule's peak start; at a constant rate, a third into the ``constant_window_s`` of arrivals)."""
    if not (isinstance(survive_failures, int) and survive_failures >= 0):
        raise ConfigError(f"survive_failures={survive_failures} must be a whole number of replicas, 0 or more.")
    out = []
    if schedule is not None:
        steps = ",".join(f"[{t:g},{r:g}]" for t, r in schedule)
        out += [f"workload.rate_schedule=[{steps}]", f"workload.duration_s={schedule[-1][0]:g}"]
        worst = peak(schedule)[0]
    else:
        worst = constant_window_s / 3
    if survive_failures:
        at = ",".join([f"{worst:g}"] * survive_failures)
        out += [f"cluster.failures.at_s=[{at}]", "cluster.failures.replica=[]"]
    return out


def schedule_requests(schedule: list[tuple[float, float]]) -> int:
    """A request cap that never binds before the schedule ends (its end, a rate of 0, ends the run)."""
    return math.ceil(2 * expected_requests(schedule) + 100)
