"""Prefill/decode disaggregation: the KV-transfer stage between two pools.

A prefill replica computes a prompt and produces the first token; instead of
decoding, it hands the request here. The stage picks a decode replica
(``cluster.disaggregation.decode_router``), allocates the request's KV there
*before* the copy starts (waiting, in hand-off order per decode replica,
until blocks are free, the decode batch has room and no swapped-out request
is waiting for that memory), then copies
``prompt tokens x KV bytes per token`` over the prefill replica's link
(``link.bandwidth_gbps``, one transfer at a time per link, plus
``link.latency_s``). The prefill replica keeps its copy until the transfer
completes; the request then joins the decode replica's running set.

TTFT choice: the first token reaches the user when the KV transfer completes
(the decode instance streams the response, as with vLLM's disaggregated
prefill proxy), so TTFT = queueing + prefill + waiting for decode memory +
transfer. ``prefill_done_s`` in requests.parquet keeps the time the prefill
itself ended.

Layer-wise transfer (``link.layerwise=true``, docs/levers/kv_transfer.md): the
copy overlaps the request's final prefill step, layer by layer. With L layers,
that step's compute time P, the copy's data time B = bytes / bandwidth and the
link free from the step's start, layer i is ready at P*(i+1)/L into the step
and the link sends the layers in order, B/L each, so the copy ends
``latency_s + max(B/L, B - P*(L-1)/L)`` after the prefill ends instead of
``latency_s + B``. Earlier chunks of a chunked prefill are not sent ahead.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections import deque

import simpy

from simulator.config.schema import ScenarioConfig
from simulator.engine.replica import Replica
from simulator.engine.request import Request
from simulator.registry import Component, Registry
from simulator.specs import ModelSpec


class DecodeRouter(Component, ABC):
    """Which decode replica receives a finished prefill (``cluster.disaggregation.decode_router``)."""

    def __init__(self, decode: list[Replica]):
        self.decode = decode

    @abstractmethod
    def choose(self, req: Request) -> Replica:
        """The decode replica for ``req``."""


DECODE_ROUTERS: Registry[type[DecodeRouter]] = Registry("cluster.disaggregation.decode_router", "decode router")


@DECODE_ROUTERS.register("least_loaded")
class LeastLoaded(DecodeRouter):
    """The decode replica with the fewest requests running, incoming or queued for it."""

    def choose(self, req):
        return min(self.decode, key=lambda d: (d.load + d.inbound + d.landed, d.index))


@DECODE_ROUTERS.register("round_robin")
class RoundRobin(DecodeRouter):
    """Each decode replica in turn."""

    def __init__(self, decode):
        super().__init__(decode)
        self._turns = itertools.cycle(decode)

    def choose(self, req):
        return next(self._turns)


class KVTransfer:
    def __init__(self, env: simpy.Environment, cfg: ScenarioConfig, prefill: list[Replica], decode: list[Replica], decode_spec: ModelSpec):
        dis = cfg.cluster.disaggregation
        self.env = env
        self.decode = decode
        self.router = DECODE_ROUTERS.get(dis.decode_router)(decode)
        self.bytes_per_token = decode_spec.kv_bytes_per_token
        self.bandwidth = float(dis.link.bandwidth_gbps) * 1e9
        self.latency_s = float(dis.link.latency_s)
        self.links = {p.index: simpy.Resource(env, capacity=1) for p in prefill}
        self.layerwise = bool(dis.link.layerwise)
        self.layers = int(decode_spec.num_layers)
        self._link_free_s = {p.index: 0.0 for p in prefill}  # when each link's last copy ended
        #: layer-wise: request id -> (when its prefill ended, the compute time of its final prefill step)
        self._window: dict[int, tuple[float, float]] = {}
        self.pending: dict[int, deque[tuple[Replica, Request]]] = {d.index: deque() for d in decode}
        self.incoming: dict[int, int] = {d.index: 0 for d in decode}
        self.transfers = 0
        self.bytes = 0.0
        self.busy_s = 0.0
        self.exposed_s = 0.0  # seconds each copy added after its prefill (the whole copy unless layer-wise)
        for p in prefill:
            p.on_prefilled = self.handoff
        for d in decode:
            d.on_step_end = self._retry

    def reject_reason(self, req: Request) -> str | None:
        """Decode replicas must be able to hold the request's KV at its longest
        (their token budget does not apply: they never prefill a new prompt)."""
        from simulator.scheduling.base import Scheduler

        return Scheduler.reject_reason(self.decode[0].scheduler, req)

    # -- the stage ----------------------------------------------------------
    def handoff(self, src: Replica, req: Request) -> None:
        if self.layerwise:
            self._window[req.id] = (self.env.now, src.compute_s)
        dst = self.router.choose(req)
        self.pending[dst.index].append((src, req))
        dst.inbound += 1
        self._start(dst)

    def _retry(self, dst: Replica) -> None:
        if self.pending[dst.index]:
            self._start(dst)

    def _start(self, dst: Replica) -> None:
        queue = self.pending[dst.index]
        kv = dst.kv
        while queue:
            src, req = queue[0]
            if dst.swapped or dst.waiting:  # requests preempted on this replica get its memory first
                return
            joining = len(dst.running) + len(dst.prefilling) + dst.arriving
            if joining >= dst.scheduler.max_batch_size:
                return
            blocks = kv.blocks_for(max(req.target, kv.reservation(req)))
            idle = not dst.running and not dst.arriving
            if not kv.can_admit(blocks) and not (idle and blocks <= kv.free):
                return
            queue.popleft()
            kv.allocate(blocks)
            req.dst_blocks = blocks
            dst.arriving += 1
            self.incoming[dst.index] += 1
            self.env.process(self._copy(src, dst, req))

    def _copy(self, src: Replica, dst: Replica, req: Request):
        size = req.target * self.bytes_per_token
        with self.links[src.index].request() as slot:
            yield slot
            duration = self.latency_s + size / self.bandwidth
            exposed = self.latency_s + self._exposed_s(src, req, size / self.bandwidth) if self.layerwise else duration
            # layer-wise, only the tail is exposed; busy_s still counts the whole duration
            yield self.env.timeout(exposed)
            self.exposed_s += exposed
            self._link_free_s[src.index] = self.env.now
        self.transfers += 1
        self.bytes += size
        self.busy_s += duration
        src.release_transferred(req)
        req.blocks = req.dst_blocks
        req.dst_blocks = 0
        now = self.env.now
        req.first_token_s = now
        req.last_token_s = now
        self.incoming[dst.index] -= 1
        dst.inbound -= 1
        dst.receive(req, req.target)

    def _exposed_s(self, src: Replica, req: Request, data_s: float) -> float:
        """Layer-wise: seconds from now until the last layer's KV has crossed the link.

        The link may carry layer 0 from ``start``, the later of the final
        prefill step's start and the end of the link's previous copy; layer i
        is ready at ``step_start + P*(i+1)/L`` and takes ``data_s / L``. Layers
        go in order, so the last one ends at the latest of ``start + data_s``
        (the link the bottleneck throughout), ``step_start + P/L + data_s``
        (the link waiting only for layer 0) and ``prefill_end + data_s/L``
        (every layer but the last already sent). A copy that gets its decode
        memory or its link only after the prefill ended finds every layer ready.
        """
        end, step = self._window.pop(req.id)
        now = self.env.now
        if now > end:
            return data_s
        start = max(end - step, self._link_free_s[src.index])
        n = self.layers
        return max(start - now + data_s, data_s - step * (n - 1) / n, data_s / n)
