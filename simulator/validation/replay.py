"""A recording as a servesim workload: its exact lengths, and its arrivals as well as it recorded them.

The completed requests are replayed, in the client's order, with their
recorded input and output lengths (failed ones are left out and counted in
the report). The arrivals come from the best the file has:

``recorded``     per-request send times (``start_s``): replayed exactly, and
                 simulated request i is recorded request i (per-request errors);
``concurrency``  an all-at-once rate with ``max_concurrency`` (vLLM's
                 ``--max-concurrency``, a closed loop of that many clients):
                 ``workload.arrival=closed_loop`` with that many users, no think
                 time, requests sent in the recorded order (paired too);
``rate``         the client's ``request_rate`` and ``burstiness`` (a gamma
                 process of shape ``burstiness``, as vLLM draws it): the same
                 process drawn with servesim's seed (not paired: other times);
``duration``     neither: a Poisson process at completed / duration.

:class:`Replay` carries the scenario and the workload, and says which
arrivals were used so the report can state it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from simulator.api import load_config
from simulator.config.schema import ScenarioConfig
from simulator.validation.recording import Recording, RecordingError
from simulator.workload import ARRIVALS
from simulator.workload.base import Workload


@dataclass
class Replay:
    recorded: pd.DataFrame  # the completed recorded requests in replay order (a DataFrame): row i is simulated request i
    cfg: ScenarioConfig
    workload: Workload
    arrivals: str  # recorded | concurrency | rate | duration
    described: str  # one sentence for the report
    paired: bool  # simulated request i is recorded completed request i
    failed: int  # recorded requests left out (failed)


def replay(rec: Recording, overrides: list[str] | None = None) -> Replay:
    """The scenario (``overrides`` on the defaults) with the recording's completed requests as its workload."""
    ok = rec.ok.reset_index(drop=True)
    if ok["start_s"].notna().all():  # replayed in send order; a client may list requests as they finished
        ok = ok.sort_values("start_s", kind="stable").reset_index(drop=True)
    n, failed = len(ok), int((~rec.requests["ok"]).sum())
    prompt = ok["prompt_tokens"].to_numpy(dtype=np.int64)
    output = ok["output_tokens"].to_numpy(dtype=np.int64)
    base = [*(overrides or []), f"workload.num_requests={n}", "workload.duration_s=null"]
    meta = rec.meta
    rate, conc, burst = meta.get("request_rate"), meta.get("max_concurrency"), meta.get("burstiness")
    if ok["start_s"].notna().all():
        start = ok["start_s"].to_numpy(dtype=np.float64)
        start = start - start.min()
        cfg = load_config([*base, "workload.arrival=constant", f"workload.rate={max(n - 1, 1) / max(start.max(), 1e-9)}"])
        w = Workload(start, prompt, output)
        return Replay(ok, cfg, w, "recorded", f"the {n} recorded send times, exactly", True, failed)
    if conc and (rate is None or math.isinf(float(rate))):
        cfg = load_config([*base, "workload.arrival=closed_loop", f"workload.users={int(conc)}", "workload.think_s=0"])
        w = Workload(np.full(n, np.nan), prompt, output, think_s=np.zeros(n))
        return Replay(ok, cfg, w, "concurrency", f"{int(conc)} concurrent clients, each sending its next request at once", True, failed)
    if rate is not None and math.isfinite(float(rate)) and float(rate) > 0:
        b = float(burst) if burst else 1.0
        cv = 1.0 / math.sqrt(b)
        arrival = "poisson" if b == 1.0 else "gamma"
        cfg = load_config([*base, f"workload.arrival={arrival}", f"workload.rate={float(rate)}", f"workload.cv={cv}"])
        what = f"a {'Poisson' if b == 1.0 else f'gamma (burstiness {b:g})'} process at the recorded {float(rate):g} req/s"
        if conc:
            what += f" (the client's cap of {int(conc)} concurrent requests is not replayed)"
        return Replay(ok, cfg, _with_lengths(cfg, prompt, output), "rate", what, False, failed)
    duration = meta.get("duration_s")
    if not duration or not float(duration) > 0:
        raise RecordingError(
            f"{rec.path}: records neither send times, nor a request rate or concurrency, nor a duration: "
            "servesim cannot tell when the requests arrived."
        )
    r = n / float(duration)
    cfg = load_config([*base, "workload.arrival=poisson", f"workload.rate={r}"])
    return Replay(ok, cfg, _with_lengths(cfg, prompt, output), "duration", f"a Poisson process at {r:.3g} req/s (completed / duration)", False, failed)


def _with_lengths(cfg: ScenarioConfig, prompt: np.ndarray, output: np.ndarray) -> Workload:
    """The arrivals ``cfg`` draws, with the recorded lengths in the recorded order."""
    drawn = ARRIVALS.get(cfg.workload.arrival).generate(cfg)
    return replace(drawn, prompt_tokens=prompt, output_tokens=output, prefix_ids=None)
