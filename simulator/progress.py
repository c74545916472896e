"""A progress bar for long runs: simulated time against the trace's end,
requests done, and simulation events per wall-second.

``output.progress`` decides whether it shows:

- ``auto`` (default): only when stderr is a terminal and neither ``CI`` nor
  ``SERVESIM_NO_PROGRESS`` is set (so never in CI, in a pipe, in a notebook,
  or in joblib sweep workers);
- ``on``: always, on stderr;
- ``off``: never.

With the bar off the event loop is the plain ``env.run(until=done)``: no
cost at all. With it on, :func:`run_until_done` steps the same event queue
itself, the way ``env.run`` does, and looks at the clock every few thousand
events (adapted so the bar redraws about ten times per wall-second). It adds
no SimPy events and no processes, so the run is the same event for event:
results are byte-identical with the bar on or off.

Off a terminal (a pipe, a log file, a batch job) ``auto`` prints plain lines
instead, and only for long runs: one line on stderr every :data:`LINE_EVERY_S`
seconds of wall time, the first after that long, so a short run (and every
test) prints nothing. A daemon thread wakes on that period and reads the
clock and the count of ended requests; the event loop is still the plain
``env.run``, so the results are the same and the loop pays nothing.
``SERVESIM_NO_PROGRESS`` turns the lines off too; ``off`` prints nothing.

Open-loop traffic measures progress in simulated seconds up to the last
arrival (then the run drains its queues: the bar says so); closed-loop
traffic, whose arrival times are not known in advance, counts requests
ended instead (or simulated seconds up to ``workload.duration_s`` when set).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: values of ``output.progress``
MODES = ("auto", "on", "off")
_ALIASES = {"true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}
#: environment variables that turn ``auto`` off
QUIET_ENV = ("CI", "SERVESIM_NO_PROGRESS")
#: wanted wall time between redraws, seconds
REFRESH_S = 0.1
#: off a terminal: wall seconds between plain progress lines (and before the first)
LINE_EVERY_S = 30.0

_console: Any = None  # a rich Console that bars are drawn on instead of stderr (tests, notebooks)
_bars: list | None = None  # bars made while capturing


def mode(value) -> str:
    """``output.progress`` as one of :data:`MODES` (booleans read as on/off);
    raises :class:`simulator.ConfigError` for anything else."""
    text = str(value).strip().lower()
    text = _ALIASES.get(text, text)
    if text not in MODES:
        from simulator.errors import ConfigError

        raise ConfigError(f"output.progress={value!r} is invalid; choose one of: {', '.join(MODES)}.")
    return text


def enabled(value, *, stream=None, environ=None) -> bool:
    """Whether ``output.progress=value`` shows a bar, given ``stream`` (stderr)
    and ``environ`` (os.environ)."""
    m = mode(value)
    if m != "auto":
        return m == "on"
    if _console is not None:
        return True
    stream = sys.stderr if stream is None else stream
    environ = os.environ if environ is None else environ
    if any(environ.get(name) for name in QUIET_ENV):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed or odd stream
        return False


@contextmanager
def use_console(console) -> Iterator[list]:
    """Draw bars on ``console`` (a :class:`rich.console.Console`) inside the
    block, and collect them in the list it yields (``output.progress=auto``
    then shows them too)."""
    global _console, _bars
    saved = _console, _bars
    _console, _bars = console, []
    try:
        yield _bars
    finally:
        _console, _bars = saved


class SimProgress:
    """One run's bar. ``total_s``: simulated seconds to the last arrival
    (``None``: count requests instead); ``total_requests``: requests in the workload."""

    def __init__(self, total_s: float | None, total_requests: int, *, console=None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self.total_s = total_s if total_s is not None and math.isfinite(total_s) and total_s > 0 else None
        self.total_requests = int(total_requests)
        self.now = 0.0
        self.done = 0
        self.events = 0
        self.rate = 0.0  # events per wall-second
        self.finished = False
        self.console = console if console is not None else (_console or Console(stderr=True))
        self.progress = Progress(
            BarColumn(bar_width=20),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=self.console,
            auto_refresh=False,  # redrawn from the loop: no thread competing with it
        )
        total = self.total_s if self.total_s is not None else max(self.total_requests, 1)
        self.task = self.progress.add_task("", total=total, detail="")
        self._t0 = time.perf_counter()

    # -- what the bar shows -----------------------------------------------------
    @property
    def completed(self) -> float:
        return self.progress.tasks[0].completed

    @property
    def total(self) -> float:
        total = self.progress.tasks[0].total
        assert total is not None  # given when the task was added
        return total

    @property
    def fraction(self) -> float:
        return self.completed / self.total if self.total else 1.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self.progress.start()

    def update(self, now: float, done: int, events: int) -> None:
        self.now, self.done, self.events = now, done, events
        wall = time.perf_counter() - self._t0
        self.rate = events / wall if wall > 0 else 0.0
        if self.total_s is not None:
            completed = min(now, self.total_s)
        else:
            completed = min(done, self.total)
        if self.finished:
            completed = self.total
        if self.total_s is None or now <= self.total_s:
            clock = f"{now:,.0f}/{self.total_s:,.0f} s" if self.total_s is not None else f"{now:,.0f} s"
        else:  # past the last arrival: the queues drain
            clock = f"{now:,.0f} s, {'drained' if self.finished else 'draining'}"
        rate = f"{self.rate / 1e3:,.0f}k" if self.rate >= 1e4 else f"{self.rate:,.0f}"
        detail = f"{clock} · {done:,}/{self.total_requests:,} req · {rate} events/s"
        self.progress.update(self.task, completed=completed, detail=detail)
        self.progress.refresh()

    def finish(self, now: float, done: int, events: int) -> None:
        """The run ended: fill the bar (100%) and stop drawing."""
        self.finished = True
        self.update(now, done, events)
        self.stop()

    def stop(self) -> None:
        self.progress.stop()


def _totals(cfg: ScenarioConfig, workload) -> tuple[float | None, int]:
    import numpy as np

    n = len(workload)
    arrivals = np.asarray(workload.arrival_s, dtype=np.float64)
    finite = arrivals[np.isfinite(arrivals)]
    if len(finite):
        return float(finite.max()), n
    duration = getattr(cfg.workload, "duration_s", None)  # closed loop: arrivals are made as it runs
    return (float(duration) if duration else None), n


def lines_enabled(value, *, environ=None) -> bool:
    """Whether ``output.progress=value`` prints plain lines where it shows no bar:
    ``auto`` unless ``SERVESIM_NO_PROGRESS`` is set (CI logs get them: that is
    where long runs without a terminal are)."""
    environ = os.environ if environ is None else environ
    return mode(value) == "auto" and not environ.get("SERVESIM_NO_PROGRESS")


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class ProgressLines:
    """Plain progress lines on stderr while a run goes, every ``every`` wall seconds.

    A daemon thread waits on an event with a timeout and reads ``env.now`` and
    ``gateway.ended``: it never touches the event queue, so the run is the same."""

    def __init__(self, env, gateway, total_s: float | None, total_requests: int, *, every: float | None = None, stream=None) -> None:
        import threading

        self.env, self.gateway = env, gateway
        self.total_s = total_s if total_s is not None and math.isfinite(total_s) and total_s > 0 else None
        self.total_requests = int(total_requests)
        self.every = LINE_EVERY_S if every is None else float(every)
        self.stream = stream
        self.printed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="servesim-progress", daemon=True)
        self._t0 = time.perf_counter()

    def line(self) -> str:
        now, done = float(self.env.now), int(self.gateway.ended)
        n = self.total_requests
        if self.total_s is not None and now <= self.total_s:
            clock = f"{now:,.0f}/{self.total_s:,.0f} s simulated ({now / self.total_s:.0%})"
        elif self.total_s is not None:
            clock = f"{now:,.0f} s simulated, draining after the last arrival"
        else:
            clock = f"{now:,.0f} s simulated"
        share = f" ({done / n:.0%})" if n else ""
        elapsed = time.perf_counter() - self._t0
        return f"servesim: progress: {clock}, {done:,}/{n:,} requests ended{share}, {_duration(elapsed)} elapsed"

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            try:
                print(self.line(), file=self.stream if self.stream is not None else sys.stderr, flush=True)
            except (OSError, ValueError):  # stderr closed or gone: stop quietly, the run goes on
                return
            self.printed += 1

    def __enter__(self) -> ProgressLines:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run_until_done(env, gateway, cfg: ScenarioConfig, workload, *, console=None) -> SimProgress | None:
    """Run ``env`` until ``gateway.done``, with a bar when ``cfg.output.progress``
    asks for one (then the bar is returned); off a terminal, with plain lines
    in long runs (:class:`ProgressLines`)."""
    if console is None and not enabled(cfg.output.progress):
        if lines_enabled(cfg.output.progress):
            with ProgressLines(env, gateway, *_totals(cfg, workload)):
                env.run(until=gateway.done)
        else:
            env.run(until=gateway.done)
        return None
    from simpy.core import EmptySchedule, StopSimulation

    total_s, n = _totals(cfg, workload)
    bar = SimProgress(total_s, n, console=console)
    if _bars is not None:
        _bars.append(bar)
    done = gateway.done
    # What env.run(until=done) does, with a look at the clock every `chunk` events:
    # the same events in the same order, and none added.
    done.callbacks.append(StopSimulation.callback)
    step = env.step
    events = 0
    chunk = 2000
    i = -1
    bar.start()
    try:
        last = time.perf_counter()
        while True:
            for i in range(chunk):  # noqa: B007 (read after the loop when done stops it)
                step()
            events += chunk
            now_wall = time.perf_counter()
            elapsed = now_wall - last
            last = now_wall
            # aim for REFRESH_S of simulation between redraws
            chunk = int(min(max(chunk * REFRESH_S / max(elapsed, 1e-6), 200), chunk * 4, 2_000_000))
            bar.update(env.now, gateway.ended, events)
    except StopSimulation:
        events += i + 1
    except EmptySchedule:
        bar.stop()
        raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {done}') from None
    except BaseException:
        bar.stop()
        raise
    bar.finish(env.now, gateway.ended, events)
    return bar
