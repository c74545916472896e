"""The run-level prefix cache answers exactly as a cache with one entry per block.

:class:`simulator.memory.prefix.PrefixCachingBlockManager` keeps runs of blocks
(one prefix id each) and its eviction queue as block ranges;
``tests/prefix_reference.py`` is the cache it replaced, one dict entry per
block. Random workloads of shared, branching prompts drive both through the
same admissions, registrations, releases and decode allocations, under
memory pressure that forces evictions in the middle of runs; every answer
(hits, admission cost, free and evictable blocks, what each request holds,
the counters) must agree after every operation.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from simulator.engine.request import KEY_SPAN, Request
from simulator.memory.prefix import PrefixCachingBlockManager
from tests.prefix_reference import BlockKeyedPrefixCache, block_keys


def _prompts(rng: random.Random, granularity: int, count: int, most_tokens: int) -> list[tuple[int, list[int]]]:
    """(prompt tokens, chained prefix ids): a few conversations that branch, grow and repeat."""
    most_ids = max(2, most_tokens // granularity)
    trunks = [[rng.randrange(1, 2**40)] for _ in range(3)]
    out = []
    for _ in range(count):
        ids = list(rng.choice(trunks))[: most_ids - 1]
        ids += [rng.randrange(1, 2**40) for _ in range(rng.randrange(0, min(3, most_ids - len(ids)) + 1))]
        if rng.random() < 0.3:
            trunks.append(ids)  # a later turn continues this one
        prompt = max(1, (len(ids) - 1) * granularity + rng.randrange(1, granularity + 1))
        out.append((prompt, ids))
    return out


def _twins(rid: int, prompt: int, ids: list[int], granularity: int, block_size: int) -> tuple[Request, Request]:
    pair = []
    for _ in range(2):
        req = Request(rid, 0.0, prompt, 8)
        req.set_prefix(np.asarray(ids, dtype=np.int64), granularity, block_size)
        pair.append(req)
    return pair[0], pair[1]


def _same(new: PrefixCachingBlockManager, ref: BlockKeyedPrefixCache) -> None:
    assert new.free == ref.free
    assert new.evictable == len(ref.evictable)
    assert new.cached == len(ref.refs)
    assert new.version == ref.version
    assert new.stats() == ref.stats()


@pytest.mark.parametrize(("seed", "granularity", "block_size", "blocks"), [
    (1, 512, 16, 400), (2, 100, 16, 120), (3, 64, 16, 60), (4, 16, 16, 50), (5, 8, 16, 90), (6, 512, 16, 150),
])  # fmt: skip
def test_runs_answer_as_one_entry_per_block(seed, granularity, block_size, blocks):
    rng = random.Random(seed)
    new = PrefixCachingBlockManager(blocks, block_size)
    ref = BlockKeyedPrefixCache(blocks, block_size)
    prompts = _prompts(rng, granularity, 600, blocks * block_size // 5)
    waiting = [_twins(i, p, ids, granularity, block_size) for i, (p, ids) in enumerate(prompts)]
    held: list[tuple[Request, Request, bool]] = []  # admitted requests, and whether registered
    extra: list[int] = []  # blocks decode steps took
    evicted_mid_run = 0
    for _ in range(6000):
        op = rng.random()
        if op < 0.4 and waiting:
            a, b = waiting[rng.randrange(len(waiting))]
            assert new.cached_tokens(a) == ref.cached_tokens(b)
            cost = new.admit_cost(a, a.prompt)
            assert cost == ref.admit_cost(b, b.prompt)
            if cost <= new.free:
                before = new.evictions
                new.admit(a, a.prompt)
                ref.admit(b, b.prompt)
                evicted_mid_run += new.evictions > before and granularity > block_size
                assert (a.blocks, a.shared, a.prefilled) == (b.blocks, b.shared, b.prefilled)
                waiting.remove((a, b))
                held.append((a, b, False))
        elif op < 0.6 and held:
            k = rng.randrange(len(held))
            a, b, done = held[k]
            if not done:
                new.register(a)
                ref.register(b)
                assert a.shared == b.shared
                held[k] = (a, b, True)
        elif op < 0.85 and held:
            a, b, _ = held.pop(rng.randrange(len(held)))
            new.release_request(a)
            ref.release_request(b)
            waiting.append(_twins(a.id, *prompts[a.id], granularity, block_size))  # the prompt comes again
        elif op < 0.93:
            k = rng.randrange(1, 6)
            if new.admit_cost(Request(-1, 0.0, 1, 1), 0) + k <= new.free:
                new.allocate(k)
                ref.allocate(k)
                extra.append(k)
        elif extra:
            k = extra.pop(rng.randrange(len(extra)))
            new.release(k)
            ref.release(k)
        _same(new, ref)
    assert new.evictions > 100 and new.hit_blocks > 100  # the workload exercised eviction and sharing
    if granularity > block_size:
        assert evicted_mid_run  # ... including evictions that split a run


def test_runs_name_the_same_blocks_as_per_block_keys():
    """A run's key is its first block's key, and the runs cover the prompt's full blocks in order."""
    req = Request(0, 0.0, 1000, 1)
    ids = np.array([7, 8, 9], dtype=np.int64)
    req.set_prefix(ids, 100, 16)  # 300 tokens of ids: 18 full blocks; ids change inside blocks 6 and 12
    assert [(f, e) for _, f, e in req.prefix_runs] == [(0, 6), (6, 12), (12, 18)]
    keys = block_keys(req, 16)
    covering = [((j + 1) * 16 - 1) // 100 for j in range(18)]
    assert keys == tuple(int(ids[c]) * KEY_SPAN + (j + 1) * 16 for j, c in enumerate(covering))


def test_a_cache_that_never_fills_keeps_a_short_eviction_queue():
    """Released runs that are later referenced again leave stale queue entries; the queue is
    compacted, so it stays about as long as the evictable blocks however long the run."""
    cache = PrefixCachingBlockManager(100_000, 16)
    ids = np.arange(1, 40, dtype=np.int64)
    for i in range(3000):
        req = Request(i, 0.0, 512 * 30, 1)
        req.set_prefix(ids, 512, 16)
        cache.admit(req, req.prompt)
        cache.register(req)
        cache.release_request(req)
    assert cache.evictions == 0
    assert len(cache.queue) <= 2 * cache.evictable + 1024


@pytest.mark.parametrize("as_list", [False, True])
def test_runs_cover_every_full_block_with_its_covering_id(as_list):
    """For any id granularity (finer or coarser than a block) and prompt, the runs' blocks are the
    prompt's full blocks, each keyed by the id covering its last token and its end."""
    rng = random.Random(7)
    for _ in range(300):
        granularity, block_size = rng.choice([1, 5, 8, 16, 17, 100, 512, 700]), rng.choice([8, 16, 32])
        ids = [rng.randrange(2**50) for _ in range(rng.randrange(1, 40))]
        prompt = rng.randrange(1, len(ids) * granularity + 50)
        req = Request(0, 0.0, prompt, 1)
        req.set_prefix([np.int64(i) for i in ids] if as_list else np.asarray(ids, dtype=np.int64), granularity, block_size)
        n = min(prompt // block_size, len(ids) * granularity // block_size)
        want = tuple(ids[((j + 1) * block_size - 1) // granularity] * KEY_SPAN + (j + 1) * block_size for j in range(n))
        assert block_keys(req, block_size) == want
        assert all(first < end for _, first, end in req.prefix_runs)
