"""Look up catalog entries (hardware, model) by name outside hydra composition.

Used where one scenario needs a second entry of a group, e.g. a
disaggregated pool on another GPU type.
"""

from __future__ import annotations

import copy
import functools
import os
from importlib import resources
from typing import Any, cast

from omegaconf import OmegaConf

from simulator.config.schema import HardwareConfig, ModelConfig
from simulator.errors import ConfigError

_SCHEMAS = {"hardware": HardwareConfig, "model": ModelConfig}


def names(group: str) -> list[str]:
    root = resources.files("simulator.scenarios").joinpath(group)
    return sorted(p.name.removesuffix(".yaml") for p in root.iterdir() if p.name.endswith(".yaml"))


def load(group: str, name: str, key: str) -> HardwareConfig | ModelConfig:
    """The entry as a fresh object (the caller may change it); each file is parsed once per process."""
    path = resources.files("simulator.scenarios").joinpath(group, f"{name}.yaml")
    entry = _parsed(group, name, _stamp(path)) if path.is_file() else None
    if entry is None:
        raise ConfigError(f"{key}={name!r} is not a known {group}; choose one of: {', '.join(names(group))}.")
    return cast("HardwareConfig | ModelConfig", copy.deepcopy(entry))


def _stamp(path: Any) -> tuple[int, int] | None:
    """(mtime, size) of a catalog file, so an edited file is parsed again."""
    try:
        st = os.stat(str(path))
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.cache
def _parsed(group: str, name: str, stamp: tuple[int, int] | None) -> Any:
    """``group/name.yaml`` merged onto the group's schema (``stamp`` keys the cache)."""
    path = resources.files("simulator.scenarios").joinpath(group, f"{name}.yaml")
    node = OmegaConf.merge(OmegaConf.structured(_SCHEMAS[group]), OmegaConf.load(str(path)))
    return OmegaConf.to_object(node)  # merged onto the group's schema


def load_hardware(name: str, key: str = "hardware") -> HardwareConfig:
    return cast(HardwareConfig, load("hardware", name, key))


def load_model(name: str, key: str = "model") -> ModelConfig:
    return cast(ModelConfig, load("model", name, key))
