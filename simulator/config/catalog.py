"""Look up catalog entries (hardware, model) by name outside hydra composition.

Used where one scenario needs a second entry of a group, e.g. a
disaggregated pool on another GPU type.
"""

from __future__ import annotations

from importlib import resources
from typing import cast

from omegaconf import OmegaConf

from simulator.config.schema import HardwareConfig, ModelConfig
from simulator.errors import ConfigError

_SCHEMAS = {"hardware": HardwareConfig, "model": ModelConfig}


def names(group: str) -> list[str]:
    root = resources.files("simulator.scenarios").joinpath(group)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load(group: str, name: str, key: str) -> HardwareConfig | ModelConfig:
    path = resources.files("simulator.scenarios").joinpath(group, f"{name}.yaml")
    if not path.is_file():
        raise ConfigError(f"{key}={name!r} is not a known {group}; choose one of: {', '.join(names(group))}.")
    node = OmegaConf.merge(OmegaConf.structured(_SCHEMAS[group]), OmegaConf.load(str(path)))
    return cast("HardwareConfig | ModelConfig", OmegaConf.to_object(node))  # merged onto the group's schema


def load_hardware(name: str, key: str = "hardware") -> HardwareConfig:
    return cast(HardwareConfig, load("hardware", name, key))


def load_model(name: str, key: str = "model") -> ModelConfig:
    return cast(ModelConfig, load("model", name, key))
