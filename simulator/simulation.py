"""Wire one scenario into a SimPy environment and run it to the end.

    Workload -> Gateway (rate limits, router, admission, retries) -> Replica x N -> Recorder

The replicas form pools: one colocated pool (``mixed``), one per
``cluster.groups`` entry (a heterogeneous cluster), or with
``cluster.disaggregation.enabled`` a prefill pool whose finished prefills
cross a link to a decode pool (see :mod:`simulator.cluster.disaggregation`).
The fleet (:mod:`simulator.cluster.fleet`) owns the replicas' lifecycle;
the autoscaler and failure injector (replica failures and spot
interruptions) act on it. The run ends when every
request issued has ended.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass

import simpy

from simulator.cluster.admission import reads_queue_work
from simulator.cluster.fleet import Fleet, Pool
from simulator.config.pools import pool_configs
from simulator.config.pricing import spot_rate_per_hour
from simulator.config.schema import ScenarioConfig
from simulator.engine.replica import Replica
from simulator.latency import build_latency_model
from simulator.latency.speculative import proposer_spec
from simulator.latency.uncertainty import ScaledLatency, error_factor, uncertainty_section
from simulator.memory import build_kv_manager, kv_allocation
from simulator.metrics.recorder import Recorder
from simulator.scheduling import SCHEDULERS
from simulator.specs import ModelSpec, memory_budget
from simulator.workload import Workload, generate


@dataclass
class SimulationOutput:
    recorder: Recorder
    workload: Workload
    pools: list[Pool]
    end_s: float
    steps: int
    kv_blocks_in_use_at_end: int
    transfers: object | None = None  # the KV-transfer stage, when disaggregated
    gateway: object | None = None
    autoscaler: object | None = None
    failures: object | None = None
    uncertainty: dict | None = None  # uncertainty=on: the run's draw of the model error (summary.json's section)


def _build_pool(env, name, pcfg, rec: Recorder, counter: list[int], queue_work: bool = True) -> Pool:
    spec = ModelSpec.from_config(pcfg.model, pcfg.cluster.tp, pcfg.cluster.ep, pcfg.cluster.pp)
    budget = memory_budget(pcfg.hardware, pcfg.memory, spec, int(pcfg.scheduler.max_batch_size), proposer_spec(pcfg, spec))
    latency = build_latency_model(pcfg, spec)
    if pcfg.uncertainty.enabled:  # uncertainty=on: this run's draw of the model error scales every step
        latency = ScaledLatency(latency, error_factor(pcfg))
    allocation = kv_allocation(pcfg, name, SCHEDULERS.get(pcfg.scheduler.policy).requires_reservation)
    mem = pcfg.memory
    swap_blocks = int(mem.swap_space_gb * 1e9 * spec.gpus // (mem.block_size * spec.kv_bytes_per_token))

    def kv_factory():
        return build_kv_manager(pcfg, name, allocation, budget.kv_blocks, mem.block_size * spec.kv_bytes_per_token, spec.gpus)

    def make() -> Replica:
        rep = Replica(
            env,
            counter[0],
            pcfg,
            kv_factory(),
            latency,
            rec,
            pool=name,
            kv_bytes_per_token=spec.kv_bytes_per_token,
            host_link_bps=float(pcfg.hardware.host_link_gbps) * 1e9 * spec.gpus,
            swap_blocks=swap_blocks,
            queue_work=queue_work,
        )
        rep._kv_factory = kv_factory
        rec.pools.append(name)
        counter[0] += 1
        return rep

    cold = pcfg.cluster.cold_start
    load_s = spec.weight_bytes / spec.gpus / (float(cold.storage_gbps) * 1e9)
    return Pool(name, pcfg, allocation, spec, budget, latency.describe(), make, float(cold.provision_s) + load_s)


#: objects allocated (net) between two collections of the cyclic collector's youngest generation
#: while the event loop runs (Python's default is 700)
GC_GEN0_THRESHOLD = 50_000


@contextlib.contextmanager
def few_collections() -> Iterator[None]:
    """The event loop makes and drops millions of small containers (step rows, plans, SimPy events)
    that reference counting frees at once; cycles are few (a SimPy process and its events). With the
    default threshold the cyclic collector runs every 700 allocations, and its older generations
    walk every object the process holds that is not frozen: from ``servesim``, which freezes what
    start-up made, 2-3% of a run's CPU time (the Mooncake replay 5.93 s against 6.05 s, a 64-replica
    fleet of 100,000 requests 5.50 s against 5.64 s, best of three); called from Python, as a
    notebook does, about 10% (the Mooncake replay's event loop 4.50-4.65 s against 4.91-5.43 s,
    four runs each). A threshold of 50,000 lets at most that many objects of cyclic garbage wait
    for their collection (a few MB). The previous thresholds come back afterwards."""
    old = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def simulate(cfg: ScenarioConfig, workload: Workload | None = None) -> SimulationOutput:
    """Run the scenario ``cfg`` (a validated ``ScenarioConfig``) on ``workload``."""
    from simulator.cluster.gateway import Gateway

    if workload is None:
        workload = generate(cfg)
    env = simpy.Environment()
    rec = Recorder(block_size=int(cfg.memory.block_size))
    counter = [0]
    queue_work = reads_queue_work(cfg)
    pools = [_build_pool(env, name, pcfg, rec, counter, queue_work) for name, pcfg in pool_configs(cfg)]
    entry = [p for p in pools if p.name != "decode"]
    fleet = Fleet(env, rec, pools, entry, float(cfg.cluster.failures.repair_s))

    transfers = None
    if cfg.cluster.disaggregation.enabled:
        from simulator.cluster.disaggregation import KVTransfer

        transfers = KVTransfer(env, cfg, pools[0].replicas, pools[1].replicas, pools[1].spec)
    gateway = Gateway(env, cfg, workload, fleet, rec, transfers)
    autoscaler = failures = None
    if cfg.cluster.autoscaler.enabled:
        from simulator.cluster.autoscaler import Autoscaler

        group = cfg.cluster.autoscaler.group
        pool = next(p for p in pools if p.name == group) if group else pools[0]
        autoscaler = Autoscaler(env, cfg, fleet, pool)
    f = cfg.cluster.failures
    if f.at_s or f.mtbf_gpu_hours is not None or any(spot_rate_per_hour(p.cfg) > 0 for p in pools):
        from simulator.cluster.failures import FailureInjector

        failures = FailureInjector(env, cfg, fleet)
    with few_collections():
        gateway.start(steady=autoscaler is None and failures is None and transfers is None)
        if not gateway.done.triggered:
            from simulator.progress import run_until_done

            run_until_done(env, gateway, cfg, workload)  # env.run(until=gateway.done), with a bar if output.progress says so
    every = fleet.all_replicas
    for rep in every:  # a fast-forwarded run in progress when the simulation stopped
        rep.catch_up()
    return SimulationOutput(
        recorder=rec,
        workload=workload,
        pools=pools,
        end_s=env.now,
        steps=sum(r.steps for r in every),
        kv_blocks_in_use_at_end=sum(r.kv.used for r in every),
        transfers=transfers,
        gateway=gateway,
        autoscaler=autoscaler,
        failures=failures,
        uncertainty=uncertainty_section(cfg) if cfg.uncertainty.enabled else None,
    )
