"""servesim's hydra launcher for Dask distributed: ``servesim -m ... hydra/launcher=dask``.

Each sweep point is one task on a Dask cluster: a ``LocalCluster`` started for
the sweep (the default), or a running scheduler named by
``hydra.launcher.address`` or ``hydra.launcher.scheduler_file``. Hydra finds
the plugin because it lives in the ``hydra_plugins`` namespace package (which
therefore has no ``__init__.py``). dask is imported only when a sweep launches,
so plugin discovery stays fast and works without the ``dask`` extra.
"""

__version__ = "0.1.0"
