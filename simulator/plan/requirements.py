"""Requirements on headline figures (``ttft_p99_s<=2``): parsing them, and judging a run by them."""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from simulator.errors import ConfigError
from simulator.metrics.headline import FIGURES as HEADLINE_FIGURES


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{v:.4g}"


#: every figure a requirement may name (the flat names of :func:`simulator.metrics.headline.headline`)
FIGURES: tuple[str, ...] = HEADLINE_FIGURES

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
}
_REQ_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class Requirement:
    """A bound on one headline figure: ``ttft_p99_s<=2``, ``slo_attainment>=0.99``.

    A NaN figure (e.g. TPOT when every output is one token) never meets a requirement.
    """

    figure: str
    op: str
    threshold: float

    @classmethod
    def parse(cls, text: str | Requirement) -> Requirement:
        if isinstance(text, Requirement):
            return text
        m = _REQ_RE.match(str(text))
        if not m:
            raise ConfigError(
                f"requirement {str(text)!r} is not of the form FIGURE OP NUMBER (e.g. ttft_p99_s<=2) "
                f"with OP one of <=, <, >=, >."
            )
        name, op, value = m.groups()
        if name not in FIGURES:
            raise ConfigError(
                f"requirement {str(text)!r} names an unknown figure {name!r}; choose one of: {', '.join(FIGURES)}."
            )
        return cls(name, op, float(value))

    def met(self, figures: dict[str, float]) -> bool:
        v = figures.get(self.figure, float("nan"))
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return False
        return bool(_OPS[self.op](float(v), self.threshold))

    def __str__(self) -> str:
        return f"{self.figure}{self.op}{self.threshold:g}"


def _requirements(reqs: str | Requirement | Iterable[str | Requirement]) -> list[Requirement]:
    if isinstance(reqs, (str, Requirement)):
        reqs = [reqs]
    out = []
    for r in reqs:
        if isinstance(r, Requirement):
            out.append(r)
        else:  # "ttft_p99_s<=2,tpot_p99_s<=0.1": a comma separates requirements as a second --require would
            out += [Requirement.parse(part) for part in str(r).split(",") if part.strip()]
    if not out:
        raise ConfigError("give at least one requirement, e.g. ttft_p99_s<=2.")
    return out


def _judge(figures: dict, reqs: list[Requirement], max_rejection: float) -> tuple[bool, str]:
    """(met, the reasons it failed, '' when met)."""
    failed = [
        f"{r.figure}={_fmt(figures.get(r.figure))}, not {r.op}{r.threshold:g}" for r in reqs if not r.met(figures)
    ]
    rej = figures.get("rejection_rate", 0.0)
    if rej is not None and not math.isnan(rej) and rej > max_rejection:
        failed.append(f"rejection_rate={_fmt(rej)}, over {max_rejection:g}")
    return not failed, "; ".join(failed)


def _judge_point(out: dict, reqs: list[Requirement], max_rejection: float, confidence: float | None) -> tuple[bool, str, float | None]:
    """A simulated point's verdict: (met, why not, share of replications that met it on their own).

    Without ``confidence`` the replications' mean figures are judged (the share is None); with it, each
    replication on its own, and the point passes when at least that share of them meets every requirement.
    """
    if confidence is None:
        ok, why = _judge(out["figures"], reqs, max_rejection)
        return ok, why, None
    verdicts = [_judge(f, reqs, max_rejection) for f in out["per_seed"]]
    share = sum(v[0] for v in verdicts) / len(verdicts)
    if share >= confidence:
        return True, "", share
    first = next(v[1] for v in verdicts if not v[0])
    return False, f"{share:.0%} of {len(verdicts)} replications met it, under {confidence:.0%}: {first}", share

