"""``servesim [hydra overrides]``: run one scenario (or a sweep with ``-m``).

Each run writes requests.parquet, steps.parquet, summary.json, scenario.yaml
and latency_cdf.png into hydra's run directory and prints a summary.
"""

from __future__ import annotations

import logging
import shutil
import sys
import warnings
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from simulator.config.schema import register
from simulator.errors import ServesimError

log = logging.getLogger("servesim")

register()


@hydra.main(config_path="pkg://simulator.scenarios", config_name="config", version_base="1.3")
def _app(cfg: DictConfig) -> float | None:
    from simulator.api import run
    from simulator.report.console import render_summary

    hc = HydraConfig.get()
    outdir = hc.runtime.output_dir
    try:
        result = run(config=cfg)
    except ServesimError as exc:
        if hc.mode == RunMode.MULTIRUN:  # one bad point must not end the sweep
            log.error("servesim: error: %s", exc)
            return None
        _discard_empty_run_dir(outdir)
        print(f"servesim: error: {exc}", file=sys.stderr)
        sys.exit(2)
    result.save(outdir)
    if result.config.output.console:
        render_summary(result.summary, outdir)
    return result.summary["slo"]["goodput_rps"]


def _discard_empty_run_dir(outdir: str) -> None:
    """A run that failed before writing results leaves no directory behind."""
    d = Path(outdir)
    if d.is_dir() and {p.name for p in d.iterdir()} <= {".hydra", "cli.log"}:
        shutil.rmtree(d, ignore_errors=True)
        # and the date folders above it that held nothing else (outputs/<date>/), up to the working directory
        cwd = Path.cwd().resolve()
        for parent in d.resolve().parents:
            if parent == cwd or cwd not in parent.parents:
                break
            try:
                parent.rmdir()  # only succeeds when empty
            except OSError:
                break


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


def main() -> None:
    warnings.showwarning = _warning_line  # user-facing warnings as one line, not a source excerpt
    _preflight(sys.argv[1:])
    _app()


if __name__ == "__main__":
    main()
