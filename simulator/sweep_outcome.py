"""How a sweep (``servesim -m ...``) ended: which of its points left no summary.

A point whose scenario is invalid logs its error and the sweep goes on
(simulator/cli.py). :class:`SweepOutcome`, a hydra callback named in the
primary config, looks at the sweep directory when the last point is done;
``servesim`` then names the points that failed and exits with status 1, so a
script or CI job running a sweep sees that one point did not run. It works for
every launcher, since it reads what the points wrote (each point's
``.hydra/overrides.yaml``, and its ``summary.json`` when it ran), not the
launcher's return values.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from simulator.files import SUMMARY_FILE

#: written by hydra's sweeper into the sweep directory before the first point starts
SWEEP_FILE = "multirun.yaml"
#: without SWEEP_FILE (another sweeper), files this much older than the sweep's start still count as its own
CLOCK_SLACK_S = 1.0


@dataclass
class Outcome:
    """The points of one sweep (their folder names, in job order) and those of them that failed."""

    points: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    directory: str = ""


#: the outcome of the last sweep run in this process (read by simulator.cli.main)
LAST = Outcome()


def sweep_points(directory: str | Path, started: float) -> Outcome:
    """The job folders under ``directory`` that this sweep wrote, and those of them without a
    summary.json of their own.

    This sweep's folders are those whose ``.hydra/overrides.yaml`` is no older than the sweep's
    ``multirun.yaml`` (``started``, the local clock, only where there is none); a point ran when its
    summary.json is no older than its own overrides.yaml. Comparing file times with file times keeps
    a shared filesystem's clock on both sides; a folder reused from an earlier sweep neither counts nor
    passes for this sweep's."""
    from simulator.report.sweep_table import OVERRIDES_FILE, job_folders  # pandas: only once a sweep ends

    root = Path(directory)
    out = Outcome(directory=str(directory))
    if not root.is_dir():
        return out
    marker = root / SWEEP_FILE
    since = marker.stat().st_mtime if marker.is_file() else started - CLOCK_SLACK_S
    for name, folder in job_folders(root):
        written = (folder / OVERRIDES_FILE).stat().st_mtime
        if written < since:
            continue
        out.points.append(name)
        summary = folder / SUMMARY_FILE
        if not summary.is_file() or summary.stat().st_mtime < written:
            out.failed.append(name)
    return out


class SweepOutcome(Callback):
    """Records, at the end of a sweep, which of its points failed (see :data:`LAST`)."""

    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self.started = time.time()
        LAST.points, LAST.failed, LAST.directory = [], [], str(config.hydra.sweep.dir)

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        found = sweep_points(config.hydra.sweep.dir, self.started)
        LAST.points, LAST.failed, LAST.directory = found.points, found.failed, found.directory


def failure_line(outcome: Outcome) -> str:
    """One line naming the failed points, for stderr."""
    n, m = len(outcome.failed), len(outcome.points)
    where = f" in {outcome.directory}" if outcome.directory else ""
    jobs = ", ".join(outcome.failed[:20]) + (", ..." if n > 20 else "")
    return (
        f"servesim: {n} of {m} point{'s' if m != 1 else ''} failed{where}: job{'s' if n > 1 else ''} {jobs} "
        "(each one's cli.log says why; servesim-report lists them)"
    )
