"""Scenario configuration: the typed schema, composition and validation."""

from simulator.config.compose import apply_overrides, compose, to_scenario
from simulator.config.schema import ScenarioConfig
from simulator.config.validate import validate

__all__ = ["ScenarioConfig", "compose", "to_scenario", "apply_overrides", "validate"]
