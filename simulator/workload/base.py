"""A drawn workload: one entry per request, as arrays (what :func:`simulator.workload.generate`
returns and trace replay builds)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Workload:
    arrival_s: np.ndarray  # float64, non-decreasing, seconds from t=0 (all NaN for closed_loop)
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    #: Optional prefix identity: for request i, ``prefix_ids[i]`` is a sequence
    #: of ints, one per ``prefix_block_tokens`` tokens of its prompt, chained
    #: (equal ids at position k mean equal prompts up to the end of block k).
    prefix_ids: list | None = None
    prefix_block_tokens: int = 512
    #: Optional labels carried to requests.parquet (trace columns; tenants may be drawn, see labels).
    tenant: np.ndarray | None = None
    session: np.ndarray | None = None
    #: Optional tier name of each request (a key of ``cfg.tiers``).
    tier: np.ndarray | None = None
    #: closed_loop only: the think time (s) its user spends before sending request i.
    think_s: np.ndarray | None = None
    #: workload.n > 1 (parallel sampling): for request i, the index of the first sample of its prompt
    #: (itself for the first); the samples of one prompt are consecutive and share its prefix ids.
    leader: np.ndarray | None = None
    #: What replay changed, for the summary (e.g. clipped requests).
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrival_s)
