"""One replica's event loop and the request state it advances.

:class:`~simulator.engine.replica.Replica` runs a scheduler's plans on the
latency model's clock; :mod:`simulator.engine.request` holds a request's
progress. The whole run's wiring is :mod:`simulator.simulation`.
"""
