"""Wire one scenario into a SimPy environment and run it to the end.

    Workload -> arrival process -> router -> Replica x N -> Recorder
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import simpy

from simulator.engine.replica import Replica
from simulator.engine.request import Request
from simulator.latency import build_latency_model
from simulator.memory import ALLOCATIONS
from simulator.metrics.recorder import Recorder
from simulator.specs import MemoryBudget, ModelSpec, memory_budget
from simulator.workload import Workload, generate


@dataclass
class SimulationOutput:
    recorder: Recorder
    workload: Workload
    budget: MemoryBudget
    spec: ModelSpec
    latency_description: str
    end_s: float
    replicas: int
    steps: int
    kv_blocks_in_use_at_end: int


def simulate(cfg, workload: Workload | None = None) -> SimulationOutput:
    """Run the scenario ``cfg`` (a validated ``ScenarioConfig``) on ``workload``."""
    spec = ModelSpec.from_config(cfg.model, cfg.cluster.tp)
    budget = memory_budget(cfg.hardware, cfg.memory, spec)
    if workload is None:
        workload = generate(cfg)
    env = simpy.Environment()
    rec = Recorder()
    latency = build_latency_model(cfg, spec)
    kv_cls = ALLOCATIONS.get(cfg.memory.allocation)
    replicas = [
        Replica(
            env,
            i,
            cfg,
            kv_cls(budget.kv_blocks, cfg.memory.block_size, cfg.memory.watermark),
            latency,
            rec,
        )
        for i in range(cfg.cluster.replicas)
    ]
    env.process(_arrivals(env, workload, replicas))
    env.run()
    return SimulationOutput(
        recorder=rec,
        workload=workload,
        budget=budget,
        spec=spec,
        latency_description=latency.describe(),
        end_s=env.now,
        replicas=len(replicas),
        steps=sum(r.steps for r in replicas),
        kv_blocks_in_use_at_end=sum(r.kv.used for r in replicas),
    )


def _arrivals(env: simpy.Environment, workload: Workload, replicas: list[Replica]):
    """Feed requests one at a time (round-robin across replicas)."""
    targets = itertools.cycle(replicas)
    arrival = workload.arrival_s.tolist()
    prompt = workload.prompt_tokens.tolist()
    output = workload.output_tokens.tolist()
    for i, t in enumerate(arrival):
        delay = t - env.now
        if delay > 0:
            yield env.timeout(delay)
        next(targets).submit(Request(i, t, prompt[i], output[i]))
