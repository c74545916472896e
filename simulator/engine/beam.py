"""Beam search with shared KV blocks (vLLM's v0 engine; the vLLM paper, Kwon et al., SOSP 2023, section 4.4).

A request of ``workload.beam_width`` = w decodes w beams in lock-step: every
step each beam's next token is computed (w sequences in the batch) and the w
best continuations become the next beams. A continuation extends one of the
current beams, its *parent*; beams with a common ancestor share the KV blocks
of their common history, and a beam that inherits a partly filled block from
a parent with several children writes to a copy of it (copy-on-write). The
answer is the best final beam: the request's output length is its tokens.

Which beams survive depends on the model's probabilities, which servesim does
not have. It takes the *neutral* genealogy: each new beam's parent is drawn
uniformly from the current beams (the Wright-Fisher model of population
genetics). Its histories coalesce fast - all w beams share an ancestor about
2(w - 1) tokens back (Kingman's coalescent) - so they share all but their
last few blocks. Against the vLLM paper's measured savings (section 6.3,
Fig. 15; tests/test_beam_search.py and docs/levers/parallel_sampling.md) it
lands within 3 points on Alpaca's short answers and over-predicts sharing on
ShareGPT's long ones at width 6 (80% against 66%): real beams keep distinct
hypotheses alive longer than neutral drift does.

Blocks held by a group = the prompt's blocks (once) + the distinct full
blocks of the beams' histories + one partly filled block per beam.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.request import Request
from simulator.engine.running import RunningSet
from simulator.memory import BlockManager


class Genealogy:
    """The w beams of one request at block granularity: each beam's full blocks (ids) and partial fill."""

    def __init__(self, width: int, prompt_tokens: int, block_size: int, rng: np.random.Generator):
        self.w = width
        self.bs = block_size
        self.rng = rng
        self._next_id = 0
        # every beam starts from the prompt: its full blocks are the prompt's (shared by all, counted once)
        self.prompt_blocks = prompt_tokens // block_size
        self.fill = prompt_tokens % block_size  # tokens in each beam's current (partial) block
        self.history: list[tuple[int, ...]] = [()] * width  # full generated blocks of each beam (ids)
        self.full = 0  # distinct full generated blocks over all beams (shared ones once)
        self.shared_partial = True  # every beam still points at the prompt's one partial block

    def blocks(self) -> int:
        """Blocks the group holds now."""
        partial = 0 if self.fill == 0 else (1 if self.shared_partial else self.w)
        return self.prompt_blocks + self.full + partial

    def unshared_blocks(self) -> int:
        """Blocks w separate copies would hold (the prompt and each beam's history, each on its own)."""
        per_beam = self.prompt_blocks + len(self.history[0]) + (1 if self.fill else 0)
        return self.w * per_beam

    def step(self) -> int:
        """Select the next beams and append a token to each; returns the change in blocks held."""
        before = self.blocks()
        parents = self.rng.integers(0, self.w, size=self.w)
        self.history = [self.history[int(p)] for p in parents]
        self.fill += 1
        self.shared_partial = False  # each beam's new token differs: its partial block is its own
        if self.fill == self.bs:  # every beam's partial block is full: it becomes one of its history's blocks
            self.history = [h + (self._new_id(),) for h in self.history]
            self.fill = 0
        self.full = len({i for h in set(self.history) for i in h})
        return self.blocks() - before

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def tokens(self) -> int:
        """KV entries stored (distinct tokens)."""
        partial = 0 if self.fill == 0 else (self.fill if self.shared_partial else self.w * self.fill)
        return (self.prompt_blocks + self.full) * self.bs + partial


class BeamRunningSet(RunningSet):
    """Decoding beam groups: each member is one request decoding ``width`` beams (see the module docstring)."""

    counts_blocks = False  # members are listed per block they need (block_needers)

    def __init__(self, block_size: int, width: int, rng: np.random.Generator, kv: BlockManager):
        super().__init__(block_size, grows=True)
        self.kv = kv  # blocks a genealogy drops go straight back to the pool
        self.width = width
        self.rng = rng
        self.groups: dict[int, Genealogy] = {}
        self.shared_block_steps = 0  # sum over steps of blocks held, and of what unshared copies would hold
        self.unshared_block_steps = 0

    def add(self, req: Request, kv_entries: int) -> None:
        req.join_step = self.clock
        req.status = "running"
        self.members[req.id] = req
        if req.id not in self.groups:  # a recomputed (preempted) request keeps its genealogy's shape anew
            self.groups[req.id] = Genealogy(self.width, kv_entries, self.block_size, self.rng)
        self.fresh.append((req, req.epoch))

    def remove(self, req: Request) -> int:
        del self.members[req.id]
        g = self.groups.pop(req.id)
        req.epoch += 1
        return g.tokens()

    def kv_entries(self) -> int:
        return sum(self.groups[r].tokens() for r in self.members)

    def decode_ctx_tokens(self) -> int:
        """Every beam reads its own context: w x (prompt + generated + 1) per group."""
        return sum(self.width * (r.prompt + r.generated + 1) for r in self.members.values())

    def block_needers(self) -> list[Request]:
        """Each member once per block it needs for the next step (its genealogy is advanced here)."""
        out: list[Request] = []
        for rid, req in self.members.items():
            g = self.groups[rid]
            delta = g.step()
            self.shared_block_steps += g.blocks()
            self.unshared_block_steps += g.unshared_blocks()
            if delta > 0:
                out += [req] * delta
            elif delta < 0:  # lineages died out: their blocks are free again
                self.kv.release(-delta)
                req.blocks += delta
        return out

    def newest(self) -> Request:
        return max(self.members.values(), key=lambda r: (r.arrival_s, r.id))

    def decode_done(self, now: float) -> tuple[list[Request], float]:
        self.clock += 1
        done = []
        for req in self.members.values():
            req.generated += 1
            if req.generated >= req.output:
                done.append(req)
        gap = now - self.last_decode_end
        self.last_decode_end = now
        return done, gap
