"""Latency models: constant (test oracle), roofline (analytical), profile (calibrated).

Importing this package registers every implementation in ``LATENCY_MODELS``.
:func:`build_latency_model` builds the scenario's, wrapped by
:class:`~simulator.latency.pipeline.PipelineLatency` when ``cluster.pp`` > 1
by :class:`~simulator.latency.speculative.SpeculativeLatency` when
``scheduler.speculative.method`` is set, and by
:class:`~simulator.latency.overlap.OverlappedLatency` when
``scheduler.async_scheduling`` overlaps the engine's CPU work with the GPU's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.latency import base, constant, profile, roofline  # noqa: F401  (register)
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape
from simulator.latency.overlap import with_overlap
from simulator.latency.pipeline import PipelineLatency
from simulator.latency.roofline import RooflineLatency
from simulator.latency.speculative import SpeculativeLatency
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def build_latency_model(cfg: ScenarioConfig, spec: ModelSpec) -> LatencyModel:
    """The scenario's latency model; with speculative decoding, wrapped to verify k + 1 positions and add the proposal;
    with async scheduling, wrapped to overlap the engine's CPU work."""
    model = base.build_latency_model(cfg, spec)
    if spec.pp > 1:
        assert isinstance(model, RooflineLatency), "validation allows cluster.pp > 1 with latency.model=roofline only"
        model = PipelineLatency(cfg, spec, model)
    if cfg.scheduler.speculative.method != "none":
        model = SpeculativeLatency(cfg, spec, model)
    return with_overlap(cfg, model)


__all__ = ["LATENCY_MODELS", "LatencyModel", "StepShape", "build_latency_model"]
