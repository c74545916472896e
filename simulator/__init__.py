"""servesim: a discrete-event simulator of LLM serving clusters.

    >>> import simulator
    >>> result = simulator.run(["workload.rate=8", "workload.num_requests=200"])
    >>> result.summary["latency_s"]["ttft"]["p99"]          # doctest: +SKIP

See README.md for the command line and docs/ for the model behind it.
"""

import simulator.report.artifacts  # noqa: F401  (registers the charts and Perfetto writers with Result.save)
from simulator.api import Result, load_config, run
from simulator.config import compose
from simulator.errors import ConfigError, ServesimError
from simulator.version import __version__

__all__ = ["run", "Result", "load_config", "compose", "ConfigError", "ServesimError", "__version__"]
