"""Build a scenario from the packaged hydra tree, without a command line.

Used by :func:`simulator.run`, notebooks and tests. Hydra's global state is
entered and left inside each call, so compositions never leak into each
other.
"""

from __future__ import annotations

from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf

from simulator.config.schema import ScenarioConfig, register
from simulator.errors import ConfigError

CONFIG_MODULE = "simulator.scenarios"


def compose(overrides: Iterable[str] | None = None) -> DictConfig:
    """Compose ``scenarios/config.yaml`` with hydra ``overrides`` (e.g. ``["workload.rate=4"]``)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    register()
    overrides = list(overrides or [])
    if GlobalHydra.instance().is_initialized():  # e.g. called from inside a hydra app
        return _wrap(lambda: hydra_compose("config", overrides=overrides))
    with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
        return _wrap(lambda: hydra_compose("config", overrides=overrides))


def _wrap(fn):
    try:
        return fn()
    except ConfigError:
        raise
    except Exception as exc:  # hydra / omegaconf composition errors
        raise ConfigError(describe_hydra_error(exc)) from exc


def describe_hydra_error(exc: BaseException) -> str:
    """Hydra's message, trimmed to its informative lines."""
    text = str(exc).strip()
    cause = exc.__cause__
    if cause is not None and str(cause).strip() and str(cause).strip() not in text:
        text = f"{text}: {str(cause).strip()}"
    keep = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith(("reference_type", "object_type"))
    ]
    return " ".join(keep)


def to_scenario(config: Any) -> ScenarioConfig:
    """Merge ``config`` (DictConfig, dict or ScenarioConfig) onto the schema and resolve it."""
    if isinstance(config, ScenarioConfig):
        return config
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ScenarioConfig), config)
        if "hydra" in merged:
            del merged["hydra"]
        return OmegaConf.to_object(merged)
    except Exception as exc:
        raise ConfigError(describe_hydra_error(exc)) from exc


def apply_overrides(config: Any, overrides: Iterable[str]) -> ScenarioConfig:
    """Apply ``key=value`` overrides to an existing config (no group switches)."""
    base = OmegaConf.structured(to_scenario(config))
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value.")
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(overrides))
    except Exception as exc:
        raise ConfigError(describe_hydra_error(exc)) from exc
    return to_scenario(merged)
