"""A replica's waiting queue, with the figures admission control reads.

Schedulers use a queue as a deque: ``queue[0]`` is the next request to
admit, ``popleft()`` takes it, ``appendleft()`` puts a preempted request back
at the head, ``append()`` queues an arrival. Both queues below also keep the
*prefill work* they hold (the seconds its prompts would take to prefill, as
the replica's latency model prices them), so the gateway can predict a new
request's wait without scanning the queue.

``FifoQueue``
    One first-come first-served line (no tiers). A ``deque`` subclass, so
    the scheduler's reads (``q[0]``, ``len(q)``, ``bool(q)``) stay at C speed.
    ``LazyFifoQueue`` is the same line where nothing reads the work as it
    goes: it sums it when asked.
``TieredQueue``
    One line per priority; the head is the oldest request of the highest
    priority that has any. Within a tier the order is first come, first
    served; a preempted request returns to the head of its own tier.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator

from simulator.engine.request import Request


class FifoQueue(deque):
    def __init__(self, cost: Callable[[Request], float]):
        super().__init__()
        self.cost = cost  # request -> seconds of prefill work
        self.work_s = 0.0

    def append(self, req: Request) -> None:
        self.work_s += self.cost(req)
        super().append(req)

    def appendleft(self, req: Request) -> None:
        self.work_s += self.cost(req)
        super().appendleft(req)

    def popleft(self) -> Request:
        req = super().popleft()
        self.work_s -= self.cost(req)
        if not self:
            self.work_s = 0.0  # no drift from float sums
        return req

    def work_ahead(self, priority: int) -> float:
        """Prefill seconds queued ahead of a new request of ``priority``."""
        return self.work_s

    def count_ahead(self, priority: int) -> int:
        """Requests queued ahead of a new request of ``priority``."""
        return len(self)

    def drain(self) -> list[Request]:
        out = list(self)
        self.clear()
        self.work_s = 0.0
        return out


class LazyFifoQueue(FifoQueue):
    """A :class:`FifoQueue` that prices its prefill work only when asked, for replicas whose
    admission control never asks (no ``max_wait_s``, not SLO-aware): appending and taking
    stay ``deque``'s own, and a new prompt length is not priced on arrival."""

    append = deque.append  # type: ignore[assignment]  # (deque's own: the same signature, at C speed)
    appendleft = deque.appendleft  # type: ignore[assignment]
    popleft = deque.popleft

    def __init__(self, cost: Callable[[Request], float]):
        deque.__init__(self)
        self.cost = cost

    @property
    def work_s(self) -> float:  # type: ignore[override]
        return sum(self.cost(r) for r in self)

    def drain(self) -> list[Request]:
        out = list(self)
        self.clear()
        return out


class TieredQueue:
    def __init__(self, cost: Callable[[Request], float], priorities: list[int]):
        self.cost = cost
        self.order = sorted(set(priorities), reverse=True)  # highest first
        self.lines: dict[int, deque[Request]] = {p: deque() for p in self.order}
        self.work: dict[int, float] = dict.fromkeys(self.order, 0.0)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def __iter__(self) -> Iterator[Request]:
        for p in self.order:
            yield from self.lines[p]

    def __getitem__(self, i: int) -> Request:
        if i != 0:
            raise IndexError("a tiered queue only exposes its head")
        for p in self.order:
            line = self.lines[p]
            if line:
                return line[0]
        raise IndexError("the queue is empty")

    def append(self, req: Request) -> None:
        self.lines[req.priority].append(req)
        self.work[req.priority] += self.cost(req)
        self._n += 1

    def appendleft(self, req: Request) -> None:
        self.lines[req.priority].appendleft(req)
        self.work[req.priority] += self.cost(req)
        self._n += 1

    def popleft(self) -> Request:
        for p in self.order:
            line = self.lines[p]
            if line:
                req = line.popleft()
                self.work[p] = self.work[p] - self.cost(req) if line else 0.0
                self._n -= 1
                return req
        raise IndexError("pop from an empty queue")

    @property
    def work_s(self) -> float:
        return sum(self.work.values())

    def work_ahead(self, priority: int) -> float:
        """Prefill seconds queued at ``priority`` or above (served before a new request)."""
        return sum(w for p, w in self.work.items() if p >= priority)

    def count_ahead(self, priority: int) -> int:
        """Requests queued at ``priority`` or above (served before a new request)."""
        return sum(len(line) for p, line in self.lines.items() if p >= priority)

    def drain(self) -> list[Request]:
        out = list(self)
        for p in self.order:
            self.lines[p].clear()
            self.work[p] = 0.0
        self._n = 0
        return out
