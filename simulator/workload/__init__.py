"""Workload: when requests arrive, how long their prompts and outputs are, and who sends them.

:func:`generate` turns ``cfg.workload`` into aligned arrays. Arrival gaps,
prompt lengths and output lengths each come from their own named random
stream (see :mod:`simulator.workload.rng`). Requests are *fed* to the event
loop one at a time by a single arrival process; nothing is pre-scheduled.

Arrivals are open (``poisson``, ``gamma``, ``constant``, at ``workload.rate``
or along ``workload.rate_schedule``; see :mod:`simulator.workload.arrivals`),
replayed (``trace``), or closed (``closed_loop``): ``workload.users`` users
each send a request, wait for its answer, think for an exponential time of
mean ``workload.think_s``, then send the next. Closed-loop arrival times
depend on the simulation, so the workload leaves them NaN and carries each
request's think time (before it is sent) in ``think_s``; the engine issues
the requests. Tier and tenant labels: :mod:`simulator.workload.labels`.
"""

from __future__ import annotations

import contextlib

from simulator.config.schema import ScenarioConfig
from simulator.workload.arrivals import ARRIVALS, RateSchedule
from simulator.workload.base import Workload
from simulator.workload.lengths import LENGTHS
from simulator.workload.sampling import fan_out


def generate(cfg: ScenarioConfig) -> Workload:
    """The requests of ``cfg.workload``, drawn by its source (:data:`ARRIVALS`); with
    ``workload.n`` > 1, each prompt's samples (:func:`~simulator.workload.sampling.fan_out`)."""
    return fan_out(cfg, ARRIVALS.get(cfg.workload.arrival).generate(cfg))


# -- how much memory a run needs ----------------------------------------------
# A run keeps every request and every engine step until it writes its tables, so
# its peak memory grows with the request count. Measured on the default scenario
# (chat workload at workload.rate=12, about 80% of one H100's capacity for
# Llama-3.1-8B, 3.9 steps per request), peak RSS of the whole CLI run, outputs
# written, charts off:
#
#   /usr/bin/time -v servesim workload.num_requests=N output.charts=false output.console=false
#   N=20,000: 255,484 kB;  N=200,000: 1,054,336 kB  ->  4,545 bytes per request, 171 MB fixed
#
# The same at workload.rate=0.5 (an idle engine decoding one request at a time,
# 127 steps per request) takes 113,586 bytes per request: about 1,070 bytes per
# request plus 884 per step (the step tuple, its DataFrame row and parquet
# buffers). A loaded engine, with large batches, takes the fewest steps per
# request, so the figure below is near the least a realistic run needs: the
# memory check refuses only runs that cannot fit, and lightly loaded runs need
# more than it says.
#: peak bytes per request of one run, near capacity (see above)
BYTES_PER_REQUEST = 4_545
#: the share of the available memory a run may be estimated to need; the rest is
#: headroom for the estimate's spread across loads and for the machine's other processes
MEMORY_SHARE = 0.8
#: fixed peak bytes of a run: the interpreter, numpy, pandas, simpy, pyarrow
BASE_BYTES = 171_000_000
#: bytes per request the results keep once a run ends (requests + steps tables,
#: 185 + 3.9 x 181 bytes at the same load): each extra replication keeps its results
RESULT_BYTES_PER_REQUEST = 900


def expected_requests(cfg: ScenarioConfig) -> tuple[float, str] | None:
    """How many requests ``cfg`` will generate (expected, for a ``workload.duration_s``
    stop) and which keys set that, or ``None`` when it is not known before the
    workload is read (a trace, unless it loops up to ``workload.num_requests``)."""
    found = ARRIVALS.get(cfg.workload.arrival).expected_requests(cfg)
    if found is None or int(cfg.workload.n) <= 1:
        return found
    return found[0] * int(cfg.workload.n), f"{found[1]} x workload.n"


def memory_needed(cfg: ScenarioConfig, n: float) -> float:
    """Estimated peak bytes of a run of ``n`` requests (see :data:`BYTES_PER_REQUEST`),
    with the results every extra replication keeps."""
    return BASE_BYTES + n * BYTES_PER_REQUEST + (int(cfg.replications) - 1) * n * RESULT_BYTES_PER_REQUEST


def available_memory() -> float | None:
    """Bytes this process can still allocate: ``MemAvailable`` from /proc/meminfo,
    lowered to the room left under a cgroup memory limit (containers); ``None``
    where neither can be read (not Linux)."""
    found: list[float] = []
    with contextlib.suppress(OSError, ValueError, IndexError):  # no /proc/meminfo (not Linux): no figure from it
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(float(line.split()[1]) * 1024)  # kB
                    break
    for limit_path, used_path, stat_path, cache_key in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current", "/sys/fs/cgroup/memory.stat", "inactive_file"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            "/sys/fs/cgroup/memory/memory.stat",
            "total_inactive_file",
        ),
    ):
        try:
            with open(limit_path) as f:
                limit = f.read().strip()
            with open(used_path) as f:
                used = float(f.read().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and float(limit) < 2**60:  # "max" or a huge number: no limit
            try:  # page cache the kernel can drop counts as free, as the kubelet's working set does
                with open(stat_path) as f:
                    cache = next((float(x.split()[1]) for x in f if x.startswith(cache_key + " ")), 0.0)
            except (OSError, ValueError, IndexError):
                cache = 0.0
            found.append(max(float(limit) - used + cache, 0.0))
        break
    return min(found) if found else None


__all__ = ["Workload", "generate", "ARRIVALS", "LENGTHS", "RateSchedule"]
