"""Recorded traces: read them, check them, replay them as a :class:`Workload`.

Two layers, each usable on its own:

* :func:`read` parses one file into a :class:`Trace` (columns as numpy
  arrays, on the trace's own clock, in file order). Every bad cell is a
  :class:`ConfigError` naming the file, the row (and, for CSV and JSONL, the
  file line) and the column; nothing is returned half-loaded.
* :func:`replay` applies the ``workload.trace.*`` controls to a :class:`Trace`
  and returns the :class:`Workload` the simulator feeds, with what each step
  kept in ``Workload.notes``.

:func:`load` is both in one call for a whole scenario (``workload.arrival=trace``).

The package, one concern a module (each imports only those above it):

``model``    the :class:`Trace` dataclass, flat prefix-id lists, time order, error wording
``files``    opening files: CSV / JSONL / Parquet, gzip, UTF-8, read errors
``formats``  the format registry (azure, burstgpt, mooncake, servesim) and :func:`detect`
``cells``    batch conversion and checking of cells by kind
``readers``  :func:`read`: CSV, Parquet and JSONL into a :class:`Trace`
``replay``   :func:`replay` (window, sample, time scale, clip, loop, caps) and :func:`load`
``convert``  :func:`write`: servesim's schema, Parquet or CSV
``stats``    :func:`describe` and :func:`prefix_reuse` (the chart lives in
             :mod:`simulator.report.trace_charts`)
"""

from __future__ import annotations

from simulator.workload.traces.convert import write
from simulator.workload.traces.formats import FORMATS, REGISTRY, TraceFormat, detect
from simulator.workload.traces.model import DEFAULT_BLOCK_TOKENS, Trace, order
from simulator.workload.traces.readers import read
from simulator.workload.traces.replay import check_config, check_tiers, load, max_length, replay
from simulator.workload.traces.stats import describe, prefix_reuse

__all__ = [
    "DEFAULT_BLOCK_TOKENS",
    "FORMATS",
    "REGISTRY",
    "Trace",
    "TraceFormat",
    "check_config",
    "check_tiers",
    "describe",
    "detect",
    "load",
    "max_length",
    "order",
    "prefix_reuse",
    "read",
    "replay",
    "write",
]
