"""The running set under speculative decoding: each decode step verifies k
proposed tokens per sequence and keeps a random number of them.

A step proposes ``k = scheduler.speculative.num_tokens`` tokens for every
decoding sequence and the target model verifies the k + 1 positions at once
(vLLM, SGLang and TensorRT-LLM all verify this way). Proposed token j is
accepted if tokens 1..j-1 were and its own test passes, with probability
``alpha`` each (the standard i.i.d. acceptance model of Leviathan et al.,
ICML 2023, section 3.4), so a step emits

    A + 1 tokens,  P(A >= j) = alpha^j  (j <= k),  E[A + 1] = (1 - alpha^(k+1)) / (1 - alpha)

the accepted ones plus the target's own next token, never more than the
request has left. With ``acceptance_spread`` > 0 each request draws its own
``alpha`` from a Beta distribution of that mean and standard deviation
(prompts differ in how predictable they are).

KV: verification writes k + 1 entries per sequence; a sequence therefore
holds blocks for its context plus its look-ahead (vLLM allocates these
look-ahead slots in the same block table and reuses them after a
rejection), so a new block is taken when ``context + min(k + 1, tokens
left)`` crosses a block boundary.

Unlike :class:`~simulator.engine.running.RunningSet`, whose members advance
one token per step and so can be tracked by a clock, members here advance by
different amounts: this set touches every member every step (O(n) per step).
It keeps the same interface, so schedulers and the replica use it unchanged.
"""

from __future__ import annotations

import numpy as np

from simulator.engine.request import Request
from simulator.engine.running import RunningSet
from simulator.metrics.levers import expected_tokens


class Acceptance:
    """Draws the tokens each verification step keeps, from one seeded stream."""

    def __init__(self, num_tokens: int, rate: float, spread: float, rng: np.random.Generator):
        self.k = int(num_tokens)
        self.rate = float(rate)
        self.spread = float(spread)
        self.rng = rng
        self._rates: dict[int, float] = {}  # per request id, drawn once
        self.seq_steps = 0  # sequence-steps verified so far
        self.tokens = 0  # tokens they kept

    def rate_of(self, req: Request) -> float:
        """``req``'s acceptance rate: the configured one, or its own Beta draw (kept across preemption)."""
        if self.spread <= 0:
            return self.rate
        r = self._rates.get(req.id)
        if r is None:
            m, s = self.rate, self.spread
            common = m * (1 - m) / (s * s) - 1  # Beta(a, b) with mean m and variance s^2
            r = self._rates[req.id] = float(self.rng.beta(m * common, (1 - m) * common))
        return r

    def expected_tokens(self) -> float:
        """E[tokens per step] under the configured rate and spread (:func:`expected_tokens`)."""
        return expected_tokens(self.k, self.rate, self.spread)

    def draw(self, rates: np.ndarray) -> np.ndarray:
        """Accepted proposals (0..k) for sequences of acceptance ``rates``: the run of leading successes."""
        passed = self.rng.random((len(rates), self.k)) < rates[:, None]
        return np.cumprod(passed, axis=1).sum(axis=1)


class SpeculativeRunningSet(RunningSet):
    """Decoding members that each keep 1..k+1 tokens per step (see the module docstring)."""

    counts_blocks = False  # members are listed per block they need (block_needers)

    def __init__(self, block_size: int, grows: bool, acceptance: Acceptance):
        super().__init__(block_size, grows)
        self.acceptance = acceptance
        self.queries = acceptance.k + 1  # positions verified per sequence per step
        self._kv: dict[int, int] = {}  # KV entries per member
        self._ctx = 0  # their sum
        self._pending: list[tuple[Request, int]] = []  # (member, tokens it keeps) of the step being run

    # -- membership ------------------------------------------------------
    def add(self, req: Request, kv_entries: int) -> None:
        req.join_step = self.clock
        req.status = "running"
        self.members[req.id] = req
        self._kv[req.id] = kv_entries
        self._ctx += kv_entries
        self.fresh.append((req, req.epoch))

    def remove(self, req: Request) -> int:
        del self.members[req.id]
        entries = self._kv.pop(req.id)
        self._ctx -= entries
        req.epoch += 1
        return entries

    # -- queries ---------------------------------------------------------
    def kv_entries(self) -> int:
        return self._ctx

    def decode_ctx_tokens(self) -> int:
        return self._ctx + len(self.members)

    def block_needers(self) -> list[Request]:
        """Members whose context plus look-ahead crosses into a block they do not hold yet."""
        if not self.grows:
            return []
        bs, q, kv = self.block_size, self.queries, self._kv
        out = []
        for rid, req in self.members.items():
            need = kv[rid] + min(q, req.output - req.generated)
            if need > req.blocks * bs:
                out.append(req)
        return out

    def newest(self) -> Request:
        return max(self.members.values(), key=lambda r: (r.arrival_s, r.id))

    # -- the step --------------------------------------------------------
    def draw_step(self) -> int:
        """Decide what every member keeps in the step about to run; returns the tokens emitted in all."""
        members = list(self.members.values())
        acc = self.acceptance
        rates = np.array([acc.rate_of(r) for r in members], dtype=np.float64)
        kept = acc.draw(rates) + 1
        pending = [(r, min(int(n), r.output - r.generated)) for r, n in zip(members, kept)]
        self._pending = pending
        total = sum(n for _, n in pending)
        acc.seq_steps += len(pending)
        acc.tokens += total
        return total

    def decode_done(self, now: float) -> tuple[list[Request], float]:
        self.clock += 1
        kv = self._kv
        done = []
        for req, n in self._pending:
            if req.id not in self.members:  # preempted since the draw (not expected: draws follow planning)
                continue
            req.generated += n
            kv[req.id] += n
            self._ctx += n
            if req.generated >= req.output:
                done.append(req)
        self._pending = []
        gap = now - self.last_decode_end
        self.last_decode_end = now
        return done, gap
