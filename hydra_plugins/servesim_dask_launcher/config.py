"""``hydra/launcher=dask``: the launcher's settings (``hydra.launcher.<field>=...`` on the command line).

No ``from __future__ import annotations`` here: hydra's plugin scan executes this module before it is
in ``sys.modules``, and a dataclass with string annotations then cannot resolve them.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore


@dataclass
class DaskLauncherConf:
    _target_: str = "hydra_plugins.servesim_dask_launcher.dask_launcher.DaskLauncher"

    # scheduler of a running cluster, e.g. tcp://10.0.0.5:8786 (`dask scheduler` prints it);
    # with neither address nor scheduler_file, a LocalCluster is started for the sweep
    address: str | None = None
    # the JSON file a scheduler started with `dask scheduler --scheduler-file PATH` writes (shared filesystem)
    scheduler_file: str | None = None
    # LocalCluster only: worker processes, one thread each (null: one per core)
    n_workers: int | None = None
    # LocalCluster only: the dashboard's address, e.g. ":8787" (needs bokeh); null: no dashboard
    dashboard_address: str | None = None
    # seconds to wait for the scheduler (connecting) or the local cluster (starting)
    timeout: float = 30.0


ConfigStore.instance().store(
    group="hydra/launcher",
    name="dask",
    node=DaskLauncherConf,
    provider="servesim_dask_launcher",
)
