"""A replica's FIFO queue keeps its prefill work as it goes only where admission reads it."""

from __future__ import annotations

import math

import pytest

import simulator.simulation as simulation
from simulator.api import load_config
from simulator.engine.queue import FifoQueue, LazyFifoQueue
from simulator.engine.request import Request


def _requests() -> list[Request]:
    return [Request(i, 0.0, 100 * (i + 1), 8) for i in range(6)]


def test_the_lazy_queue_is_the_same_line_and_sums_its_work_when_asked():
    cost = lambda r: r.prompt / 1000.0  # noqa: E731
    kept, lazy = FifoQueue(cost), LazyFifoQueue(cost)
    reqs = _requests()
    for q in (kept, lazy):
        for r in reqs[:4]:
            q.append(r)
        q.appendleft(reqs[4])
        assert q.popleft() is reqs[4] and q.popleft() is reqs[0]
        q.append(reqs[5])
    assert list(kept) == list(lazy) == [reqs[1], reqs[2], reqs[3], reqs[5]]
    assert math.isclose(lazy.work_ahead(0), kept.work_ahead(0), rel_tol=1e-12)
    assert lazy.count_ahead(0) == kept.count_ahead(0) == 4
    assert lazy.drain() == [reqs[1], reqs[2], reqs[3], reqs[5]] and not lazy and lazy.work_ahead(0) == 0


@pytest.mark.parametrize(("overrides", "kept"), [
    ([], False), (["admission.max_wait_s=2"], True), (["admission.slo_aware=true"], True),
])  # fmt: skip
def test_replicas_keep_their_queued_work_only_where_admission_reads_it(overrides, kept):
    cfg = load_config([*overrides, "workload.num_requests=5"])
    out = simulation.simulate(cfg)
    queues = [rep.sched_state.waiting for p in out.pools for rep in p.replicas]
    assert queues and all(type(q) is (FifoQueue if kept else LazyFifoQueue) for q in queues)
