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


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"servesim: warning: {message}", file=sys.stderr)


def _preflight(argv: list[str]) -> None:
    """Compose a single run's overrides first, so mistakes read as one sentence.

    Sweeps and hydra flags (``-m``, ``--cfg``, ``--help``...) go straight to hydra.
    """
    if any(a.startswith("-") for a in argv):
        return
    from simulator.api import load_config
    from simulator.config import compose

    overrides = [a for a in argv if not a.lstrip("+~").startswith("hydra.")]
    try:
        load_config(config=compose(overrides))
    except ServesimError as exc:
        print(f"servesim: error: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    warnings.showwarning = _warning_line  # user-facing warnings as one line, not a source excerpt
    _preflight(sys.argv[1:])
    _app()


if __name__ == "__main__":
    main()
