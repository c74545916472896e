"""Latency models: constant (test oracle), roofline (analytical), profile (calibrated).

Importing this package registers every implementation in ``LATENCY_MODELS``.
"""

from simulator.latency import constant, profile, roofline  # noqa: F401  (register)
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape, build_latency_model

__all__ = ["LATENCY_MODELS", "LatencyModel", "StepShape", "build_latency_model"]
