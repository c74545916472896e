"""Shared helpers for the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import simulator

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _config_cache_of_our_own(tmp_path_factory):
    """The CLI caches composed configs under the user's cache directory; the tests
    (and the servesim processes they start) use a directory of their own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SERVESIM_CACHE_DIR", str(tmp_path_factory.mktemp("servesim-cache")))
        yield

#: A small, fast scenario on the default model and GPU (roofline latency).
SMALL = ["workload.num_requests=300", "output.charts=false", "output.console=false"]

#: The queueing oracle: fixed step time, one request at a time, short prompts.
ORACLE = [
    "latency=constant",
    "latency.step_s=0.01",
    "scheduler.max_batch_size=1",
    "workload.arrival=poisson",
    "workload.prompt_tokens.dist=fixed",
    "workload.prompt_tokens.value=16",
    "output.charts=false",
]

#: A changing fleet: an autoscaler, a failure at 3 s and its repair, quick cold starts.
FLEET = [
    "cluster.replicas=2",
    "workload.rate=20",
    "cluster.failures.at_s=[3]",
    "cluster.failures.repair_s=2",
    "cluster.cold_start.provision_s=1",
    "cluster.autoscaler.enabled=true",
    "cluster.autoscaler.interval_s=2",
]


def run(*overrides: str, base: list[str] | None = None) -> simulator.Result:
    return simulator.run(list(base if base is not None else SMALL) + list(overrides))


@pytest.fixture(scope="session")
def default_result() -> simulator.Result:
    """The default scenario, shortened; shared by tests that only read it."""
    return run("workload.num_requests=600")


def servesim_cli(*args: str, cwd: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """``servesim ARGS`` as a user runs it, in ``cwd``, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "simulator.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
