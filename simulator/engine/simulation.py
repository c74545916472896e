"""Wire one scenario into a SimPy environment and run it to the end.

    Workload -> arrival process -> router -> Replica x N -> Recorder

With ``cluster.disaggregation.enabled`` the replicas form two pools: arrivals
go to the prefill pool; each finished prefill's KV cache crosses a link to a
decode replica (see :mod:`simulator.engine.disaggregation`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

import simpy

from simulator.engine.replica import Replica
from simulator.engine.request import Request
from simulator.latency import build_latency_model
from simulator.memory import ALLOCATIONS, PrefixCachingBlockManager
from simulator.metrics.recorder import Recorder
from simulator.scheduling import SCHEDULERS
from simulator.specs import MemoryBudget, ModelSpec, memory_budget
from simulator.workload import Workload, generate


@dataclass
class Pool:
    """A group of identical replicas."""

    name: str  # "mixed" (colocated), "prefill" or "decode"
    cfg: object  # the scenario as this pool sees it (its hardware, tp, scheduler)
    allocation: str  # the KV allocation mode in effect
    spec: ModelSpec
    budget: MemoryBudget
    latency_description: str
    replicas: list[Replica]

    @property
    def gpus(self) -> int:
        return len(self.replicas) * self.spec.tp


@dataclass
class SimulationOutput:
    recorder: Recorder
    workload: Workload
    pools: list[Pool]
    end_s: float
    steps: int
    kv_blocks_in_use_at_end: int
    transfers: object | None = None  # the KV-transfer stage, when disaggregated

    @property
    def replicas(self) -> int:
        return sum(len(p.replicas) for p in self.pools)


def pool_configs(cfg) -> list[tuple[str, object]]:
    """(pool name, the scenario as that pool sees it), in replica-index order."""
    dis = cfg.cluster.disaggregation
    if not dis.enabled:
        return [("mixed", cfg)]
    from simulator.config.catalog import load_hardware

    out = []
    for name, pool in (("prefill", dis.prefill), ("decode", dis.decode)):
        sched = replace(cfg.scheduler, **{k: v for k, v in vars(pool.scheduler).items() if v is not None})
        key = f"cluster.disaggregation.{name}.hardware"
        hw = load_hardware(pool.hardware, key) if pool.hardware else cfg.hardware
        cluster = replace(cfg.cluster, replicas=pool.replicas, tp=pool.tp)
        out.append((name, replace(cfg, hardware=hw, scheduler=sched, cluster=cluster)))
    return out


def simulate(cfg, workload: Workload | None = None) -> SimulationOutput:
    """Run the scenario ``cfg`` (a validated ``ScenarioConfig``) on ``workload``."""
    if workload is None:
        workload = generate(cfg)
    env = simpy.Environment()
    rec = Recorder(block_size=int(cfg.memory.block_size))
    pools: list[Pool] = []
    index = 0
    for name, pcfg in pool_configs(cfg):
        spec = ModelSpec.from_config(pcfg.model, pcfg.cluster.tp)
        budget = memory_budget(pcfg.hardware, pcfg.memory, spec)
        latency = build_latency_model(pcfg, spec)
        allocation = pcfg.memory.allocation
        if name == "prefill":
            allocation = "paged"  # a prefill replica only ever holds prompts, until their transfer
        elif SCHEDULERS.get(pcfg.scheduler.policy).requires_reservation and ALLOCATIONS.get(allocation).grows:
            allocation = "reserve_max"  # request-level batching reserves up front
        kv_cls = ALLOCATIONS.get(allocation)
        if pcfg.memory.prefix_caching and allocation == "paged" and name != "decode":
            kv_cls = PrefixCachingBlockManager  # a decode pool receives KV and never prefills prompts
        max_len = pcfg.memory.max_model_len or pcfg.model.max_context
        swap_blocks = int(pcfg.memory.swap_space_gb * 1e9 * spec.tp // (pcfg.memory.block_size * spec.kv_bytes_per_token))
        replicas = []
        for _ in range(pcfg.cluster.replicas):
            kv = kv_cls(budget.kv_blocks, pcfg.memory.block_size, pcfg.memory.watermark, max_len)
            replicas.append(
                Replica(
                    env,
                    index,
                    pcfg,
                    kv,
                    latency,
                    rec,
                    pool=name,
                    kv_bytes_per_token=spec.kv_bytes_per_token,
                    host_link_bps=float(pcfg.hardware.host_link_gbps) * 1e9 * spec.tp,
                    swap_blocks=swap_blocks,
                )
            )
            rec.pools.append(name)
            index += 1
        pools.append(Pool(name, pcfg, allocation, spec, budget, latency.describe(), replicas))

    transfers = None
    if len(pools) == 2:
        from simulator.engine.disaggregation import KVTransfer

        transfers = KVTransfer(env, cfg, pools[0].replicas, pools[1].replicas, pools[1].spec)
    prefix = None
    if cfg.memory.prefix_caching and workload.prefix_ids is not None:
        prefix = (workload.prefix_ids, int(workload.prefix_block_tokens), int(cfg.memory.block_size))
    env.process(_arrivals(env, workload, pools[0].replicas, transfers, prefix))
    env.run()
    every = [r for p in pools for r in p.replicas]
    return SimulationOutput(
        recorder=rec,
        workload=workload,
        pools=pools,
        end_s=env.now,
        steps=sum(r.steps for r in every),
        kv_blocks_in_use_at_end=sum(r.kv.used for r in every),
        transfers=transfers,
    )


def _arrivals(env: simpy.Environment, workload: Workload, replicas: list[Replica], transfers, prefix=None):
    """Feed requests one at a time (round-robin across the entry replicas)."""
    targets = itertools.cycle(replicas)
    arrival = workload.arrival_s.tolist()
    prompt = workload.prompt_tokens.tolist()
    output = workload.output_tokens.tolist()
    tenant = workload.tenant.tolist() if workload.tenant is not None else None
    session = workload.session.tolist() if workload.session is not None else None
    for i, t in enumerate(arrival):
        delay = t - env.now
        if delay > 0:
            yield env.timeout(delay)
        req = Request(i, t, prompt[i], output[i])
        if tenant is not None:
            req.tenant = str(tenant[i])
        if session is not None:
            req.session = str(session[i])
        if prefix is not None:
            ids, granularity, block_size = prefix
            req.set_prefix(ids[i], granularity, block_size)
        target = next(targets)
        if transfers is not None:
            reason = transfers.reject_reason(req)
            if reason is not None:
                req.pool = "decode"
                target.reject(req, reason)
                continue
        target.submit(req)
