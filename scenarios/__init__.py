"""The hydra scenario tree, shipped in the wheel as ``simulator.scenarios``.

Hydra imports this package before it reads ``config.yaml`` from it, and that file's defaults
list starts with ``base_config``, the schema: it is registered here, so every way of composing
the tree (the command line, :func:`simulator.compose`, hydra's own ``compose`` API) finds it,
while a run that composes nothing (its composition read back from the cache) never builds it.
"""

from simulator.config.schema import register

register()
