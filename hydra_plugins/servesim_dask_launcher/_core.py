"""The Dask launcher's work: start or reach a cluster, run one task per sweep point, collect the JobReturns.

Modelled on hydra's joblib launcher: every task recomposes its point's config
from the sweep's overrides (``load_sweep_config``), restores hydra's
singletons from the launching process and calls ``run_job``, which writes the
point into ``hydra.sweep.dir/<job num>`` with its ``.hydra/overrides.yaml``.
The task function and the hydra context travel to the workers with
cloudpickle (distributed's serialisation), as they do to joblib's workers.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict, read_write

if TYPE_CHECKING:
    from distributed import Client

    from .dask_launcher import DaskLauncher

log = logging.getLogger(__name__)

# A run sets process-global state (hydra's config singleton, the logging set-up), so the points a
# worker process is given run one at a time even when the worker has several threads.
_ONE_POINT_AT_A_TIME = threading.Lock()


def execute_job(
    idx: int,
    overrides: Sequence[str],
    sweep_dir: str,
    hydra_context: HydraContext,
    config: DictConfig,
    task_function: TaskFunction,
    singleton_state: dict[Any, Any],
) -> JobReturn:
    """One sweep point, on a Dask worker."""
    with _ONE_POINT_AT_A_TIME:
        setup_globals()
        Singleton.set_state(singleton_state)
        sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
            sweep_config.hydra.job.num = idx
        with read_write(sweep_config.hydra.sweep):
            # resolved by the launching process, so that a worker started in another directory writes to the same place
            sweep_config.hydra.sweep.dir = sweep_dir
        HydraConfig.instance().set_config(sweep_config)
        return run_job(
            hydra_context=hydra_context,
            config=sweep_config,
            task_function=task_function,
            job_dir_key="hydra.sweep.dir",
            job_subdir_key="hydra.sweep.subdir",
        )


def launch(launcher: DaskLauncher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
    """Run every point on the cluster; the JobReturns come back in job order."""
    setup_globals()
    assert launcher.config is not None
    assert launcher.task_function is not None
    assert launcher.hydra_context is not None

    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if launcher.config.hydra.sweep.get("mode") is not None:
        os.chmod(sweep_dir, mode=int(str(launcher.config.hydra.sweep.mode), 8))

    with _quiet_distributed(sweep_dir), _client(launcher, sweep_dir) as (client, where):
        log.info(f"Dask: launching {len(job_overrides)} jobs on {where}")
        log.info(f"Launching jobs, sweep output dir : {sweep_dir}")
        singleton_state = Singleton.get_state()
        batch = uuid.uuid4().hex[:8]
        futures = []
        for i, overrides in enumerate(job_overrides):
            idx = initial_job_idx + i
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            futures.append(
                client.submit(
                    execute_job,
                    idx,
                    list(overrides),
                    str(sweep_dir),
                    launcher.hydra_context,
                    launcher.config,
                    launcher.task_function,
                    singleton_state,
                    key=f"servesim-point-{idx}-{batch}",
                    pure=False,
                )
            )
        runs = client.gather(futures)  # in the order submitted: job order

    assert isinstance(runs, list)
    for run in runs:
        assert isinstance(run, JobReturn)
    # a point whose scenario is invalid logged its error on its worker and in its cli.log, and returned
    # nothing: servesim names it when the sweep ends (simulator/sweep_outcome.py), as for every launcher
    return runs


@contextmanager
def _client(launcher: DaskLauncher, sweep_dir: Path) -> Iterator[tuple[Client, str]]:
    """A client of the configured cluster, and words for the log; a LocalCluster is closed afterwards."""
    from distributed import Client, LocalCluster

    scheduler_file = str(Path(launcher.scheduler_file).expanduser()) if launcher.scheduler_file else None
    if launcher.address or scheduler_file:
        hint = (
            "start one with `dask scheduler` and `dask worker --nthreads 1`, or leave out hydra.launcher.address "
            "and hydra.launcher.scheduler_file to run on a local cluster"
        )
        if launcher.address:
            where = f"the Dask scheduler at {launcher.address}"
        else:
            where = f"the Dask scheduler named in {scheduler_file}"
            # distributed waits for a missing scheduler file without end; the launcher waits `timeout`
            # (a scheduler started alongside the sweep has that long to write it)
            deadline = time.monotonic() + launcher.timeout
            while not Path(str(scheduler_file)).exists():
                if time.monotonic() > deadline:
                    _fail(f"cannot reach {where}: no such file after {launcher.timeout:g} s; {hint}", sweep_dir)
                time.sleep(0.1)
        try:
            client = Client(address=launcher.address, scheduler_file=scheduler_file, timeout=launcher.timeout)
        except (OSError, TimeoutError, ValueError) as exc:
            why = str(exc).strip() or f"{type(exc).__name__} after {launcher.timeout:g} s"
            _fail(f"cannot reach {where}: {why}; {hint}", sweep_dir)
        with client:
            info = client.scheduler_info()
            workers = len(info.get("workers", {}))
            yield client, f"the Dask cluster at {info.get('address', where)} ({workers} workers now)"
        return

    cluster = LocalCluster(
        n_workers=launcher.n_workers,
        processes=True,
        threads_per_worker=1,
        # no dashboard asked for: the scheduler's HTTP server (health, metrics) on a free port, not 8787,
        # so that two sweeps on one machine do not compete for it
        dashboard_address=launcher.dashboard_address or ":0",
        scheduler_kwargs={"dashboard": launcher.dashboard_address is not None},
        timeout=launcher.timeout,
    )
    with cluster, Client(cluster, timeout=launcher.timeout) as client:
        yield client, f"a Dask LocalCluster of {len(cluster.workers)} worker processes"
        # the sweep's results are in; a worker closed while its heartbeat is in flight logs a
        # traceback (a benign race in distributed) that the terminal need not show
        client.run(_silence_distributed)


def _silence_distributed() -> None:
    """On each worker of the sweep's own LocalCluster, just before it is closed."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL + 1)


@contextmanager
def _quiet_distributed(sweep_dir: Path) -> Iterator[None]:
    """distributed logs each scheduler, nanny and connection event at INFO; the sweep's log keeps its warnings.

    distributed is imported here first: importing it sets its loggers' levels.
    """
    try:
        import distributed  # noqa: F401
    except ImportError:
        _fail('hydra/launcher=dask needs dask distributed: pip install -e ".[dask]"', sweep_dir)
    logger = logging.getLogger("distributed")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def _fail(message: str, sweep_dir: Path) -> NoReturn:
    """One line on stderr and exit status 2, as servesim reports every mistake that is the user's to fix.

    A sweep that never launched leaves no directory behind (hydra's sweeper has written only multirun.yaml there).
    """
    from simulator.files import discard_empty_run_dir

    discard_empty_run_dir(sweep_dir, {"multirun.yaml"}, Path.cwd())
    print(f"servesim: error: {' '.join(message.split())}", file=sys.stderr)
    sys.exit(2)
