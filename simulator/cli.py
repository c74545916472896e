"""``servesim [hydra overrides]``: run one scenario (or a sweep with ``-m``).

Each run writes requests.parquet, steps.parquet, summary.json, scenario.yaml
and latency_cdf.png into hydra's run directory and prints a summary.

A single run is composed once (and a command line seen before is read back
from :mod:`simulator.config.cache`), then handed to hydra's own run path,
which makes the run directory, ``.hydra/`` and ``cli.log`` as ``@hydra.main``
does. Sweeps (``-m``), hydra's flags (``--cfg``, ``--help``...) and anything
the single-run path does not recognise go through ``@hydra.main`` unchanged.
The scenario is validated once, before the run directory exists, and the job
runs what was validated when nothing between the two can change it.

Start-up makes objects (modules, classes, the config) that live as long as the
process: the cyclic garbage collector leaves them alone (``gc.freeze``) and
only starts collecting when the job begins, instead of walking them again and
again while the libraries load.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import warnings
from typing import TYPE_CHECKING

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from simulator.errors import ServesimError
from simulator.files import discard_empty_run_dir, discard_stale_outputs

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

log = logging.getLogger("servesim")


CONFIG_PATH = "pkg://simulator.scenarios"
CONFIG_NAME = "config"
#: hydra callbacks the primary config names that change nothing a run reads (see _job_sees_what_was_checked)
OWN_CALLBACKS = frozenset({"simulator.sweep_outcome.SweepOutcome"})


@hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    from simulator.api import run, run_checked

    _collect_garbage()
    hc = HydraConfig.get()
    outdir = hc.runtime.output_dir
    checked = _take_checked()
    try:
        result = run(config=cfg) if checked is None else run_checked(checked)
    except ServesimError as exc:
        if hc.mode == RunMode.MULTIRUN:  # one bad point must not end the sweep
            log.error("servesim: error: %s", exc)
            discard_stale_outputs(outdir)  # a sweep re-run into these folders: no earlier summary passes for this point's
            return None
        discard_empty_run_dir(outdir, {".hydra", "cli.log"}, hc.runtime.cwd)  # a failed run leaves nothing behind
        print(f"servesim: error: {exc}", file=sys.stderr)
        sys.exit(2)
    result.save(outdir)
    if result.config.output.console:
        from simulator.report.console import render_summary  # rich: only when it prints

        render_summary(result.summary, outdir)
    return result.summary["slo"]["goodput_rps"]


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"servesim: warning: {message}", file=sys.stderr)


def _preflight(argv: list[str]) -> None:
    """Compose the overrides first, so mistakes read as one sentence.

    A single run is composed and validated. A sweep (``-m``) composes its
    first point only, which catches unknown keys and config groups; values
    are checked point by point (a bad point logs its error and the sweep
    goes on). Other hydra flags (``--cfg``, ``--help``...) go straight to hydra.
    """
    sweep = [a for a in argv if a in ("-m", "--multirun")]
    rest = [a for a in argv if a not in sweep]
    if any(a.startswith("-") for a in rest):
        return
    from simulator.api import load_config
    from simulator.config import compose

    _import_the_run()
    overrides = [a for a in rest if not a.lstrip("+~").startswith(("hydra.", "hydra/"))]
    try:
        if sweep:
            for point in _probe_points(overrides):
                compose(point)
        else:
            load_config(config=compose(overrides))
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        sys.exit(2)


def _import_the_run() -> None:
    """Import what the run uses before the preflight checks it. Importing pandas resets
    Python's record of the warnings already shown, so a warning the check prints (a scenario
    that is valid but odd) would print again where the job checks it again (a sweep's point,
    or see :func:`_job_sees_what_was_checked`)."""
    import simulator.metrics  # noqa: F401  (pandas)
    import simulator.simulation  # noqa: F401


def _probe_points(overrides: list[str], limit: int = 64) -> list[list[str]]:
    """Points that try every value of a sweep once: the first point, then each
    other value of each swept key on top of it (``a=1,2 b=x,y`` -> a=1 b=x, a=2 b=x, a=1 b=y)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from simulator.config.compose import describe_hydra_error
    from simulator.errors import ConfigError

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as exc:  # hydra's grammar errors
        raise ConfigError(describe_hydra_error(exc)) from exc
    values = [list(o.sweep_string_iterator()) if o.is_sweep_override() else None for o in parsed]
    texts = [o.input_line for o in parsed]  # parse_overrides keeps each override's own text
    assert all(t is not None for t in texts)
    first = [f"{o.get_key_element()}={v[0]}" if v else str(t) for o, v, t in zip(parsed, values, texts)]
    points = [first]
    for i, (o, v) in enumerate(zip(parsed, values)):
        for other in (v or [])[1:]:
            points.append([*first[:i], f"{o.get_key_element()}={other}", *first[i + 1 :]])
    return points[:limit]


def _run_single(overrides: list[str]) -> bool:
    """Run one scenario with one composition instead of three; False (having done nothing
    visible) when this path does not apply and ``@hydra.main`` should run it instead.

    ``@hydra.main`` composes twice (once to read ``hydra.mode``, once to run) and the
    preflight once more. Here the overrides are composed once, as hydra's run path
    does, or read back from :mod:`simulator.config.cache`; the scenario is validated
    (a mistake reads as one sentence and leaves no run directory, as in the
    preflight); then hydra's own ``_run_app`` runs it, its config loader handing
    back this composition, with the ``hydra.mode=RUN`` override that ``_run_app``
    adds applied to it. A command line that fails to compose, or whose config sets
    ``hydra.mode``, returns False: ``@hydra.main`` then reports or runs it as ever.
    """
    if not hydra.__version__.startswith("1.3."):  # the run path below is hydra 1.3's own, step by step
        return False
    try:
        from hydra._internal.hydra import Hydra
        from hydra._internal.utils import (
            _run_app,
            create_automatic_config_search_path,
            detect_calling_file_or_module_from_task_function,
            detect_task_name,
        )
        from hydra.core.global_hydra import GlobalHydra
    except ImportError:  # another hydra layout: the decorator's path
        return False
    task_function = getattr(_app, "__wrapped__", None)
    calling_file, calling_module = detect_calling_file_or_module_from_task_function(_app)
    if task_function is None or (calling_file is None and calling_module is None):
        return False
    task_name = detect_task_name(calling_file, calling_module)
    search_path = create_automatic_config_search_path(calling_file, calling_module, CONFIG_PATH)
    app = Hydra.create_main_hydra2(task_name=task_name, config_search_path=search_path)
    try:
        cfg = _compose_run(app.config_loader, overrides, task_name, [(e.provider, e.path) for e in search_path.get_path()])
        if cfg is None or cfg.hydra.mode is not None:
            return False
        scenario = _validate(cfg)
        if _job_sees_what_was_checked(cfg, scenario):
            _checked.append((scenario, os.getcwd()))
        run_overrides = [*overrides, "hydra.mode=RUN"]  # what _run_app adds when the config leaves hydra.mode unset
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.hydra.append(run_overrides[-1])
            cfg.hydra.mode = RunMode.RUN
        _hand_back(app.config_loader, run_overrides, cfg)
        _run_app(
            run=True,
            multirun=False,
            mode=None,
            hydra=app,
            config_name=CONFIG_NAME,
            task_function=task_function,
            overrides=list(overrides),
        )
        return True
    finally:
        _checked.clear()
        GlobalHydra.instance().clear()


def _compose_run(loader, overrides: list[str], task_name: str, search_path: list[tuple[str, str]]) -> DictConfig | None:
    """``overrides`` composed for a run (hydra node included), from the cache when it has them;
    None when they do not compose."""
    from simulator.config import cache

    digest = cache.key(CONFIG_NAME, overrides, task_name, search_path) if cache.enabled() else ""
    cfg = cache.load(digest) if digest else None
    if isinstance(cfg, DictConfig) and "hydra" in cfg:
        return cfg
    from simulator.config.schema import register

    register()  # (hydra registers it too, as it imports the scenario package)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            cfg = loader.load_configuration(config_name=CONFIG_NAME, overrides=list(overrides), run_mode=RunMode.RUN)
        except Exception:
            return None
    for w in caught:  # hydra's own warnings, shown as they would have been; such a composition is not kept
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if digest and not caught and not cfg.hydra.job.env_copy:  # env_copy reads the environment: compose each time
        cache.store(digest, cfg)
    return cfg


def _validate(cfg: DictConfig) -> ScenarioConfig:
    """The preflight's check of a single run: a mistake reads as one sentence, before any run directory."""
    from simulator.api import load_config

    _import_the_run()
    try:
        return load_config(config=cfg)
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        sys.exit(2)


#: (scenario, working directory): what :func:`_run_single` validated, for the job it starts
_checked: list[tuple[ScenarioConfig, str]] = []


def _job_sees_what_was_checked(cfg: DictConfig, scenario: ScenarioConfig) -> bool:
    """The job's own check of ``cfg`` (``load_config`` on hydra's copy of it) would give ``scenario``
    again: it reads the same values, unless hydra changes the environment the job runs in
    (``hydra.job.env_set``; callbacks other than servesim's own, which may change anything;
    ``hydra.job.chdir``, which :func:`_take_checked` sees) or the scenario replays a trace (whose
    default length the job reads off hydra's node, see ``simulator.api._replay_whole_trace``).
    Then the job checks again."""
    foreign = [k for k, v in (cfg.hydra.callbacks or {}).items() if v.get("_target_") not in OWN_CALLBACKS]
    return scenario.workload.arrival != "trace" and not cfg.hydra.job.env_set and not foreign


def _take_checked() -> ScenarioConfig | None:
    """The scenario :func:`_run_single` validated for this job, if the job runs where it was checked."""
    if not _checked:
        return None
    scenario, cwd = _checked.pop()
    return scenario if os.getcwd() == cwd else None


def _hand_back(loader, expected: list[str], cfg: DictConfig) -> None:
    """Make ``loader`` return ``cfg`` the first time hydra's run path asks it to compose ``expected``
    for a run; it composes any other request (``hydra.verbose``'s listing, say) as before."""
    compose = loader.load_configuration
    pending = [cfg]

    def load_configuration(config_name, overrides, run_mode, from_shell=True, validate_sweep_overrides=True):
        if pending and config_name == CONFIG_NAME and list(overrides) == expected and run_mode == RunMode.RUN:
            return pending.pop()
        return compose(config_name, overrides, run_mode, from_shell, validate_sweep_overrides)

    loader.load_configuration = load_configuration


#: main() holds the garbage collector back until the first job starts (:func:`_collect_garbage`)
_gc_held = False


def _collect_garbage() -> None:
    """The job begins: what start-up made (modules, classes, the config: some 140,000 objects in a
    plain run, nearly all of them alive until the process ends) goes to the collector's permanent
    generation, which it never walks, and collection starts. Otherwise each full collection while
    the libraries load and the results are written walks them all again (tens of ms in a small run;
    the cyclic garbage start-up leaves, a few thousand objects, stays)."""
    global _gc_held
    if _gc_held:
        _gc_held = False
        gc.freeze()
        gc.enable()


def main() -> None:
    global _gc_held
    warnings.showwarning = _warning_line  # user-facing warnings as one line, not a source excerpt
    argv = sys.argv[1:]
    _gc_held = gc.isenabled()
    gc.disable()  # start-up allocates much and frees little: see _collect_garbage
    try:
        if not any(a.startswith("-") for a in argv) and _run_single(argv):
            return
        from simulator.config.schema import register

        register()
        _preflight(argv)
        _collect_garbage()  # hydra's own path: a sweep may run long in this process, its jobs elsewhere
        _app()
        from simulator.sweep_outcome import LAST, failure_line

        if LAST.failed:  # a sweep ran and some of its points did not (each logged why)
            print(failure_line(LAST), file=sys.stderr)
            sys.exit(1)
    finally:
        if _gc_held:  # no job ran (a mistake, --help...)
            _gc_held = False
            gc.enable()


if __name__ == "__main__":
    main()
