"""``latency.model=constant``: every step takes exactly ``latency.step_s``.

Useless for capacity planning, invaluable as an oracle: with a fixed step time
the engine reduces to a textbook queue whose answers are known in closed form.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape

if TYPE_CHECKING:
    from simulator.config.schema import LatencyConfig, ScenarioConfig
    from simulator.specs import ModelSpec


@LATENCY_MODELS.register("constant")
class ConstantLatency(LatencyModel):
    @classmethod
    def check(cls, lat: LatencyConfig, key: str) -> None:
        if not (lat.step_s is not None and lat.step_s > 0 and math.isfinite(lat.step_s)):
            raise ConfigError(f"{key}.step_s must be a finite number > 0 (got {lat.step_s!r}).")

    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec):
        super().__init__(cfg, spec)
        self.step_s = float(cfg.latency.step_s)

    def step_time(self, shape: StepShape) -> float:
        return self.step_s

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        return {"step_overhead": self.step_s}

    def describe(self) -> str:
        return f"constant {self.step_s * 1e3:g} ms/step"
