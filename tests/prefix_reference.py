"""The prefix cache as it was before runs: one dict entry per cached block (the reference).

``tests/test_prefix_runs.py`` drives it and :class:`simulator.memory.prefix.PrefixCachingBlockManager`
with the same operations and requires the same answers, block for block: the run-level cache must
change nothing but speed. Block keys are derived from a request's runs as the old ``set_prefix``
made them (``id * KEY_SPAN + block end``).
"""

from __future__ import annotations

import itertools
import operator
from collections import deque

from simulator.memory.paged import BlockManager


def block_keys(req, block_size: int) -> tuple:
    """One key per full prompt block, from the request's runs: a run's key is its first block's."""
    return tuple(key + (j - first) * block_size for key, first, end in req.prefix_runs for j in range(first, end))


class BlockKeyedPrefixCache(BlockManager):
    caches_prefixes = True

    def __init__(self, total_blocks: int, block_size: int, watermark: float = 0.0, max_model_len: int = 0):
        super().__init__(total_blocks, block_size, watermark, max_model_len)
        self.refs: dict = {}  # key -> number of requests referencing the cached block
        # key -> None, least recently released first (a dict keeps insertion order; iterating past the
        # entries evicted from its front is a C loop, and cheaper than OrderedDict's linked list)
        self.evictable: dict = {}
        # counters for the summary
        self.lookups = 0  # prompt blocks looked up
        self.hit_blocks = 0  # ... found in the cache
        self.saved_tokens = 0  # prompt tokens not computed thanks to hits
        self.evictions = 0
        self.version = 0  # bumps whenever a key enters or leaves the cache

    # -- matching ------------------------------------------------------------
    def _hits(self, req) -> int:
        """Leading full prompt blocks of ``req`` present in the cache (at most
        all but the one holding the prompt's last token)."""
        keys = block_keys(req, self.block_size)
        if not keys:
            return 0
        memo = req.hit_memo
        if memo is not None and memo[0] == self.version and memo[1] is self:
            return memo[2]  # a waiting request is asked again every step: reuse the scan
        limit = min(len(keys), (req.prompt - 1) // self.block_size)
        # the leading run of cached keys, scanned in C a stretch at a time (a prompt has hundreds of
        # blocks, and a miss usually comes early or not at all)
        contains = self.refs.__contains__
        h = 0
        stretch = 16
        while h < limit:
            present = list(map(contains, keys[h : min(h + stretch, limit)]))
            if False in present:
                h += present.index(False)
                break
            h += len(present)
            stretch *= 2
        req.hit_memo = (self.version, self, h)
        return h

    def cached_tokens(self, req) -> int:
        return 0 if req.blocks else self._hits(req) * self.block_size

    def admit_cost(self, req, tokens: int) -> int:
        """Free blocks ``req`` would consume to hold ``tokens`` KV entries."""
        h = self._hits(req) if not req.blocks else 0
        new = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks - h
        revived = list(map(self.refs.__getitem__, block_keys(req, self.block_size)[:h])).count(0)
        return max(new, 0) + revived

    def admit(self, req, tokens: int) -> None:
        """Reference cached prefix blocks, allocate the rest, skip cached tokens."""
        h = self._hits(req) if not req.blocks else 0
        keys = block_keys(req, self.block_size)
        if req.blocks == 0 and keys:
            limit = min(len(keys), (req.prompt - 1) // self.block_size)
            self.lookups += limit
        if h:
            refs = self.refs
            hit = keys[:h]
            counts = list(map(refs.__getitem__, hit))
            revived = [k for k, n in zip(hit, counts) if n == 0]  # cached but unreferenced: counted free until now
            if revived:
                deque(map(self.evictable.__delitem__, revived), maxlen=0)
                self.free -= len(revived)
            refs.update(zip(hit, map(operator.add, counts, itertools.repeat(1))))
            req.shared = h
            self.hit_blocks += h
            cached = h * self.block_size
            if cached > req.prefilled:
                self.saved_tokens += cached - req.prefilled
                req.prefilled = cached
        new = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks - h
        if new > 0:
            self.allocate(new)
        req.blocks += h + max(new, 0)

    def allocate(self, blocks: int) -> None:
        short = blocks - (self.free - len(self.evictable))
        if short > 0 and self.evictable:  # evict the least recently released cached blocks
            gone = list(itertools.islice(self.evictable, short))
            deque(map(self.evictable.__delitem__, gone), maxlen=0)
            deque(map(self.refs.__delitem__, gone), maxlen=0)
            self.evictions += len(gone)
            self.version += len(gone)
        super().allocate(blocks)

    # -- after the prefill, at the end ---------------------------------------
    def register(self, req) -> None:
        """The prompt of ``req`` is computed: cache its full blocks it does not share yet."""
        keys = block_keys(req, self.block_size)
        if not keys:
            return
        full = min(len(keys), req.prompt // self.block_size)
        new = keys[req.shared : full]
        # up to the first key another request cached meanwhile (computed concurrently: ours stay private)
        known = list(map(self.refs.__contains__, new))
        owned = known.index(True) if True in known else len(new)
        if owned:
            self.refs.update(dict.fromkeys(new[:owned], 1))
            self.version += 1
        req.shared += owned

    def release_request(self, req) -> None:
        shared = req.shared
        released = req.blocks - shared  # private blocks always return
        if shared:
            refs = self.refs
            held = block_keys(req, self.block_size)[:shared]
            counts = list(map(operator.sub, map(refs.__getitem__, held), itertools.repeat(1)))
            refs.update(zip(held, counts))
            last = [k for k, n in zip(held, counts) if n == 0]  # no one else holds them: cached, evictable, counted free
            self.evictable.update(dict.fromkeys(last))
            released += len(last)
            req.shared = 0
        self.release(released)
        req.blocks = 0

    def stats(self) -> dict:
        return {
            "lookups_blocks": self.lookups,
            "hit_blocks": self.hit_blocks,
            "block_hit_rate": self.hit_blocks / self.lookups if self.lookups else 0.0,
            "saved_prefill_tokens": self.saved_tokens,
            "evictions": self.evictions,
            "cached_blocks_at_end": len(self.refs),
        }
