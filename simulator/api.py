"""The public Python API: ``simulator.run(overrides) -> Result``."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulator.files import (  # noqa: F401  (re-exported: the public contract's file names)
    CDF_CHART,
    CONFIG_FILE,
    PERFETTO_FILE,
    REPLICAS_FILE,
    REPLICATION_DIR,
    REQUESTS_FILE,
    STEPS_FILE,
    SUMMARY_FILE,
    TIMELINE_CHART,
    json_safe,
)

if TYPE_CHECKING:  # imported where used, so ``import simulator`` loads neither pandas nor hydra
    import pandas as pd

    from simulator.config import ScenarioConfig
    from simulator.metrics.sections import Summary
    from simulator.metrics.steps import StepRows
    from simulator.workload.base import Workload

#: Writers of a run's derived files, called by :meth:`Result.save` as
#: ``write(result, directory, charts, perfetto)``. The report layer registers
#: its own (:mod:`simulator.report.artifacts`) when the package is imported,
#: so the API never imports the report layer.
ARTIFACT_WRITERS: list[Callable[[Result, Path, bool, bool], None]] = []


@dataclass
class Result:
    """What one simulated scenario produced."""

    config: ScenarioConfig
    requests: pd.DataFrame  # one row per request
    #: one row per engine iteration (steps.parquet's table); may be given as the recorder's packed rows
    #: (:class:`simulator.metrics.steps.StepRows`), and is then made on first read (see ``_steps_get``)
    steps: pd.DataFrame = field(repr=False)
    summary: Summary  # summary.json; its sections are typed in simulator.metrics.sections
    itl: tuple[Any, Any] | None = None  # (gaps, counts): inter-token gaps over all tokens
    replicas: pd.DataFrame | None = None  # one row per replica lifecycle event
    replications: list[Result] = field(default_factory=list)  # with replications=N: runs 2..N (seed + 1 ..)

    @property
    def packed_steps(self) -> StepRows | None:
        """The recorder's packed step rows while the steps table has not been made (else None)."""
        from simulator.metrics.steps import StepRows

        rows = self.__dict__["_steps"]
        return rows if isinstance(rows, StepRows) else None

    def save(self, directory: str | Path, *, charts: bool | None = None, perfetto: bool | None = None) -> Path:
        """Write requests.parquet, steps.parquet, replicas.parquet (unless ``output.tables``
        is false), summary.json, scenario.yaml, and the charts (the latency CDFs; the cluster timeline
        when the scenario has tiers, autoscaling or failures); with
        ``output.perfetto`` (or ``perfetto=True``) also timeline.perfetto.json.
        Other replications go to ``replication-k/`` (data only)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        if self.config.output.tables:  # output.tables=false: the summary only (large sweeps)
            self.requests.to_parquet(out / REQUESTS_FILE, index=False)
            self._save_steps(out / STEPS_FILE)
            if self.replicas is not None:
                self.replicas.to_parquet(out / REPLICAS_FILE, index=False)
        (out / SUMMARY_FILE).write_text(json.dumps(json_safe(self.summary), indent=2) + "\n")
        (out / CONFIG_FILE).write_text(scenario_yaml(self.config))
        for k, other in enumerate(self.replications, start=1):  # replication k (seed + k): data, no charts
            other.save(out / f"{REPLICATION_DIR}-{k}", charts=False, perfetto=False)
        charts = self.config.output.charts if charts is None else charts
        perfetto = self.config.output.perfetto if perfetto is None else perfetto
        for write in ARTIFACT_WRITERS:  # simulator.report.artifacts: the charts, the Perfetto trace
            write(self, out, charts, perfetto)
        return out


    def _save_steps(self, path: Path) -> None:
        from simulator.metrics.steps import ROW_GROUP

        packed = self.packed_steps
        if packed is not None:  # a row group at a time, from the packed rows
            packed.to_parquet(path)
        else:
            self.steps.to_parquet(path, index=False, row_group_size=ROW_GROUP)


def _steps_get(self: Result) -> pd.DataFrame:
    """``Result.steps``: the table, made from the packed rows on first read (a million-request fleet
    run has over 5 million steps: a run whose steps are only summarised and saved never holds them twice)."""
    from simulator.metrics.steps import StepRows

    rows = self.__dict__["_steps"]
    return rows.table() if isinstance(rows, StepRows) else rows


def _steps_set(self: Result, value: Any) -> None:
    self.__dict__["_steps"] = value


# a property under the dataclass field's name: Result(..., steps=...) and dataclasses.replace still work
setattr(Result, "steps", property(_steps_get, _steps_set, doc=_steps_get.__doc__))  # noqa: B010


def scenario_yaml(cfg: ScenarioConfig) -> str:
    """scenario.yaml's text: ``OmegaConf.to_yaml(OmegaConf.structured(cfg))``.

    Building the structured config costs about 30 ms. When every value already has
    its field's exact type (what a composed and validated scenario holds), OmegaConf
    would change nothing, so the dataclasses' own dict is dumped the way
    ``OmegaConf.to_yaml`` dumps (the same text; tests/test_startup.py compares them);
    any other value (an int in a float field, a tuple, an enum...) goes through OmegaConf.
    """
    from omegaconf import OmegaConf

    if not _exact(cfg, type(cfg)):
        return OmegaConf.to_yaml(OmegaConf.structured(cfg))
    data = dataclasses.asdict(cfg)
    try:
        import yaml
        from omegaconf._utils import get_omega_conf_dumper
    except ImportError:  # another omegaconf layout: its public path, from the same dict
        return OmegaConf.to_yaml(data)
    return str(yaml.dump(data, default_flow_style=False, allow_unicode=True, sort_keys=False, Dumper=get_omega_conf_dumper()))


_SCALARS = (bool, int, float, str, type(None))


def _exact(value: Any, annotation: Any) -> bool:
    """``value`` has exactly the type ``annotation`` declares, all the way down."""
    if annotation is Any:
        return _plain(value)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        if type(value) is not annotation:
            return False
        hints = _hints(annotation)
        return all(_exact(getattr(value, f.name), hints[f.name]) for f in dataclasses.fields(annotation))
    if annotation in _SCALARS:
        return type(value) is annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return any(_exact(value, a) for a in args)
    if origin is list and len(args) == 1:
        return type(value) is list and all(_exact(v, args[0]) for v in value)
    if origin is dict and len(args) == 2 and args[0] is str:
        return type(value) is dict and all(type(k) is str and _exact(v, args[1]) for k, v in value.items())
    return False


def _plain(value: Any) -> bool:
    """An untyped value OmegaConf keeps as it is: scalars, lists and str-keyed dicts of them."""
    if type(value) in _SCALARS:
        return True
    if type(value) is list:
        return all(_plain(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and _plain(v) for k, v in value.items())
    return False


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, evaluated once."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def load_config(overrides: Iterable[str] | None = None, *, config: Any = None) -> ScenarioConfig:
    """Compose (or take) a scenario, apply overrides, validate it."""
    from simulator.config import apply_overrides, compose, to_scenario, validate

    overrides = list(overrides or [])
    if config is None:
        cfg = to_scenario(compose(overrides))
        _replay_whole_trace(cfg, overrides, _group_choice(overrides, "workload"))
    else:
        cfg = apply_overrides(config, overrides) if overrides else to_scenario(config)
        hydra_job = _hydra_job_overrides(config)
        if hydra_job is not None:  # the servesim command line: hydra composed ``config`` from these
            task, choice = hydra_job
            _replay_whole_trace(cfg, [*task, *overrides], choice)
    if cfg.model.hf_config:  # the model's shape from its config.json
        from simulator.config.hf import model_from_hf

        cfg = replace(cfg, model=model_from_hf(cfg.model, cfg.model.hf_config))
    validate(cfg)
    return cfg


def _override_key(item: str) -> str:
    return item.split("=", 1)[0].lstrip("+~").strip()


def _group_choice(overrides: list[str], group: str) -> str | None:
    choice = None
    for item in overrides:
        if "=" in item and _override_key(item) == group:
            choice = item.split("=", 1)[1].strip()
    return choice


def _hydra_job_overrides(config) -> tuple[list[str], str | None] | None:
    """(the job's command-line overrides, its workload group) when ``config`` is the running hydra job's."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import DictConfig

    if not isinstance(config, DictConfig) or not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return list(hc.overrides.task), hc.runtime.choices.get("workload")


def _replay_whole_trace(cfg: ScenarioConfig, overrides: list[str], workload_group: str | None) -> None:
    """With ``workload.arrival=trace``, ``workload.num_requests`` caps the replay only when the user set it.

    The workload group's default (``chat``: 2,000 requests) is meant for
    synthetic traffic; a replay without a cap of its own replays the whole
    trace (``num_requests=null``; the window, ``sample`` and
    ``workload.duration_s`` still apply). A looping replay keeps the default
    as its end. Set on the command line, in overrides, or by an experiment
    file (any value other than the group's), ``num_requests`` still caps.
    """
    wl = cfg.workload
    if wl.arrival != "trace" or wl.trace.loop or wl.num_requests is None:
        return
    if any("=" in o and _override_key(o) == "workload.num_requests" for o in overrides):
        return
    if wl.num_requests == _group_default_requests(workload_group or "chat"):
        wl.num_requests = None


def _group_default_requests(group: str) -> int | None | bool:
    """``num_requests`` as the packaged workload group file sets it (False when unknown)."""
    from importlib import resources

    from omegaconf import DictConfig, OmegaConf

    from simulator.config.schema import WorkloadConfig

    try:
        text = resources.files("simulator.scenarios").joinpath("workload", f"{group}.yaml").read_text()
    except (OSError, ValueError):
        return False
    node = OmegaConf.create(text)
    return node.get("num_requests", WorkloadConfig.num_requests) if isinstance(node, DictConfig) else False


def run(overrides: list[str] | None = None, *, config: Any = None) -> Result:
    """Simulate one scenario.

    ``overrides`` are hydra overrides on the packaged scenario tree
    (``["scheduler.policy=continuous", "workload.rate=8", "hardware=h200"]``).
    ``config`` may instead be a composed DictConfig, a dict or a
    :class:`ScenarioConfig`; ``overrides`` then apply to it as ``key=value``.
    Raises :class:`simulator.errors.ConfigError` for invalid scenarios.

    With ``replications=N`` (N > 1) it runs seeds ``seed`` .. ``seed + N - 1``:
    the result is the first run, its summary gains a ``replications``
    section (mean and 95% CI of every headline figure, see
    :mod:`simulator.metrics.replications`) and ``Result.replications`` holds
    the other runs.
    """
    return run_checked(load_config(overrides, config=config))


def run_checked(cfg: ScenarioConfig) -> Result:
    """:func:`run` on a scenario :func:`load_config` has already composed and validated
    (the command line checks it before hydra makes the run directory, then runs it as it is)."""
    first = _run_once(cfg)
    if cfg.replications > 1:
        from simulator.metrics.replications import replication_block

        others = [_run_once(replace(cfg, seed=cfg.seed + k)) for k in range(1, cfg.replications)]
        runs = [first, *others]
        first.summary["replications"] = replication_block(
            [r.summary for r in runs], [r.config.seed for r in runs], cfg.uncertainty.interval
        )
        first.replications = others
    return first


def run_workload(cfg: ScenarioConfig, workload: Workload) -> Result:
    """Simulate the validated scenario ``cfg`` on a workload built by the caller (a replayed
    recording, say) instead of the one ``cfg.workload`` would draw."""
    return _run_once(cfg, workload)


def _run_once(cfg: ScenarioConfig, workload: Workload | None = None) -> Result:
    from simulator.config.validate import check_workload
    from simulator.metrics import summarize
    from simulator.simulation import simulate
    from simulator.workload import generate

    if workload is None:
        workload = generate(cfg)
    check_workload(cfg, workload)
    out = simulate(cfg, workload)
    requests = out.recorder.requests_table()
    steps = out.recorder.packed_steps()
    summary = summarize(cfg, out, requests, steps.frame)
    return Result(
        config=cfg,
        requests=requests,
        steps=steps,  # the packed rows: Result.steps makes the table on first read
        summary=summary,
        itl=out.recorder.itl(),
        replicas=out.recorder.replicas_table(),
    )
