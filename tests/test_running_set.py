"""The running set counts new KV blocks by residue instead of listing members.

A member with ``e`` KV entries holds ``ceil(e / block_size)`` blocks on a paged
pool, so the blocks the next decode step needs are the members whose entries
are a multiple of the block size. The set answers that with one count
(``block_count``) and brings ``req.blocks`` up to date only when a member
leaves; these tests hold both against that per-member arithmetic through
random joins, decode steps, finishes and preemptions, with the blocks taken
as the schedulers take them.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulator.engine.request import Request
from simulator.engine.running import RunningSet


def _entries(rs: RunningSet, req: Request) -> int:
    return req.kv0 + rs.clock - req.join_step


def _join(rs: RunningSet, rid: int, prompt: int, output: int, bs: int) -> Request:
    req = Request(rid, float(rid), prompt, output)
    req.generated = 1  # the prefill's token
    req.blocks = -(-prompt // bs)
    rs.add(req, prompt)
    return req


@pytest.mark.parametrize("bs", [1, 4, 16])
def test_block_count_and_blocks_held_match_per_member_arithmetic(bs):
    rng = np.random.default_rng(bs)
    rs = RunningSet(bs)
    rid = 0
    left: list[Request] = []
    for _ in range(600):
        for _ in range(rng.integers(0, 3)):  # joins between steps
            _join(rs, rid, int(rng.integers(1, 70)), int(rng.integers(2, 40)), bs)
            rid += 1
        if not rs:
            continue
        members = list(rs.members.values())
        # the entries held and the context the next step reads (the engine records the one as the other less the size)
        assert rs.kv_entries() == sum(_entries(rs, r) for r in members) == rs.decode_ctx_tokens() - len(members)
        # before the step: whoever's next token starts a block needs one
        needers = [r for r in members if _entries(rs, r) % bs == 0]
        assert rs.block_count() == len(needers)
        nxt = rs.clock + 1
        assert rs.take_next(-1) is None and rs.grown < nxt  # (they do not fit: nothing is taken)
        assert sorted(r.id for r in rs.block_needers()) == sorted(r.id for r in needers)
        short = rng.random() < 0.1
        if short:  # the pool is short: the newest is preempted before the blocks are taken
            victim = rs.newest()
            held = rs.blocks_held(victim)
            assert held == -(-_entries(rs, victim) // bs)
            rs.remove(victim)
            assert victim.blocks == held
            left.append(victim)
            needers = [r for r in needers if r is not victim]
        if short:
            rs.blocks_taken(needers)
        else:  # as every decode step takes them when they fit
            assert rs.take_next(len(needers)) == len(needers) and rs.grown == nxt
        for r in rs.members.values():  # between taking the blocks and the step's end
            assert rs.blocks_held(r) == -(-(_entries(rs, r) + 1) // bs)
        done, _ = rs.decode_done(1.0)
        for r in done:
            entries = _entries(rs, r)
            rs.remove(r)
            assert r.blocks == -(-entries // bs)  # its last token's block included
            left.append(r)
    assert len(left) > 100


@pytest.mark.parametrize("bs", [1, 4, 16])
def test_a_runs_block_counts_cycle_and_sums_agree_with_each_clock_values_count(bs):
    """block_counts, block_cycle and blocks_between (what a decode run takes its blocks by) give,
    for every stretch of clock values, what block_count gives one clock value at a time."""
    rng = np.random.default_rng(bs)
    rs = RunningSet(bs)
    for rid in range(12):
        _join(rs, rid, int(rng.integers(1, 200)), 10_000, bs)
    for lo in range(1, 3 * bs + 2):
        for n in (1, bs - 1, bs, bs + 1, 5 * bs + 3):
            if n < 1:
                continue
            hi = lo + n - 1
            each = [rs.block_count(at) for at in range(lo, hi + 1)]
            assert rs.block_counts(lo, hi).tolist() == each
            assert rs.blocks_between(lo, hi) == sum(each)
            assert rs.block_cycle(lo) == each[:bs] or n < bs
