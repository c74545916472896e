"""The launcher class hydra instantiates for ``hydra/launcher=dask``; the work is in ``_core``."""

from __future__ import annotations

from collections.abc import Sequence

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class DaskLauncher(Launcher):
    """Runs each sweep point as a task on a Dask distributed cluster.

    Without ``address`` or ``scheduler_file`` it starts a ``LocalCluster`` of
    ``n_workers`` processes with one thread each and closes it after the sweep.
    """

    def __init__(
        self,
        address: str | None = None,
        scheduler_file: str | None = None,
        n_workers: int | None = None,
        dashboard_address: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.scheduler_file = scheduler_file
        self.n_workers = n_workers
        self.dashboard_address = dashboard_address
        self.timeout = float(timeout)
        self.config: DictConfig | None = None
        self.task_function: TaskFunction | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.task_function = task_function
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from . import _core  # dask is imported here, not when hydra scans its plugins

        return _core.launch(self, job_overrides, initial_job_idx)
