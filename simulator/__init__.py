"""servesim: a discrete-event simulator of LLM serving clusters.

    >>> import simulator
    >>> result = simulator.run(["workload.rate=8", "workload.num_requests=200"])
    >>> result.summary["latency_s"]["ttft"]["p99"]          # doctest: +SKIP

See README.md for the command line and docs/ for the model behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Importing the package is cheap: the API imports pandas, hydra and the simulation where it
# uses them, and ``compose`` is loaded on first use (tests/test_startup.py keeps it so).
import simulator.report.artifacts  # noqa: F401  (registers the charts and Perfetto writers with Result.save)
from simulator.api import Result, load_config, run
from simulator.errors import ConfigError, ServesimError
from simulator.version import __version__

if TYPE_CHECKING:
    from simulator.config import compose

__all__ = ["run", "Result", "load_config", "compose", "ConfigError", "ServesimError", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "compose":  # simulator.config imports hydra: only when asked for
        from simulator.config import compose

        return compose
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
