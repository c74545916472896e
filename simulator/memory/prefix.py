"""Prefix caching on top of paged KV memory (vLLM ``--enable-prefix-caching``).

Every full ``block_size``-token block of a prompt has a key that identifies
the whole prompt up to the block's end (a hash chain, computed from the
workload's prefix ids). When a prompt's prefill completes, its full blocks
are registered under their keys. A later request whose prompt starts with
the same blocks *references* them instead of computing them: its prefill
starts after the cached tokens, so prefill work and TTFT shrink.

A cached block lives while any request references it; when the last one
ends, the block stays cached but *evictable*, and counts as free: a new
allocation takes truly free blocks first, then evicts the least recently
released cached blocks. At least the prompt's last token is always
recomputed (it produces the first output token), as in vLLM.

**Runs, not blocks.** A prompt's blocks come in runs that one prefix id
covers (32 blocks for a 512-token id; see ``Request.set_prefix``). The cache
keeps one entry per run of the prompt's position (:class:`_Run`: each
block's reference count, or -1 when it is not cached) and its eviction order
as a queue of block ranges, so hit scans, references, registration, release
and eviction work a run at a time, in list slices, while every block keeps
the state and eviction order a cache with one entry per block would give it
(``tests/test_prefix_runs.py`` holds the two to the same answers).

Left out: caching of generated tokens' blocks (only prompt blocks are
registered); registration block by block during a chunked prefill (blocks are
registered when the prompt completes); hash collisions.
"""

from __future__ import annotations

from collections import deque

from simulator.memory.paged import BlockManager

ABSENT = -1  # a block of a run that is not cached


class _Run:
    """The cached blocks of one run (one prefix id at one place in the prompt)."""

    __slots__ = ("counts", "stamps", "cached")

    def __init__(self, length: int) -> None:
        self.counts = [ABSENT] * length  # requests referencing each block; ABSENT: not cached
        self.stamps = [0] * length  # an evictable block's place in the eviction queue (0: not evictable)
        self.cached = 0  # blocks not ABSENT

    def grow(self, length: int) -> None:
        """Room for ``length`` blocks (a longer prompt reaches further into the run)."""
        extra = length - len(self.counts)
        if extra > 0:
            self.counts += [ABSENT] * extra
            self.stamps += [0] * extra


class PrefixCachingBlockManager(BlockManager):
    caches_prefixes = True

    def __init__(self, total_blocks: int, block_size: int, watermark: float = 0.0, max_model_len: int = 0):
        super().__init__(total_blocks, block_size, watermark, max_model_len)
        self.runs: dict[int, _Run] = {}  # run key -> its blocks
        # the eviction queue, least recently released first: [run key, run, lo, hi, stamp] for blocks
        # lo..hi-1 of a run released together; a block still in it has that stamp (revived or evicted
        # blocks lose it, so entries are checked, not searched and removed)
        self.queue: deque[list] = deque()
        self._stamp = 0
        self.evictable = 0  # cached blocks no request references (counted free)
        self.cached = 0  # cached blocks
        # counters for the summary
        self.lookups = 0  # prompt blocks looked up
        self.hit_blocks = 0  # ... found in the cache
        self.saved_tokens = 0  # prompt tokens not computed thanks to hits
        self.evictions = 0
        self.version = 0  # bumps whenever a block enters or leaves the cache

    # -- matching ------------------------------------------------------------
    def _hits(self, req) -> int:
        """Leading full prompt blocks of ``req`` present in the cache (at most
        all but the one holding the prompt's last token)."""
        runs = req.prefix_runs
        if not runs:
            return 0
        memo = req.hit_memo
        if memo is not None and memo[0] == self.version and memo[1] is self:
            return memo[2]  # a waiting request is asked again every step: reuse the scan
        limit = min(runs[-1][2], (req.prompt - 1) // self.block_size)
        cache = self.runs
        h = 0
        for key, first, end in runs:
            if first >= limit:
                break
            run = cache.get(key)
            if run is None:
                break
            want = min(end, limit) - first
            counts = run.counts[:want]
            if ABSENT in counts:
                h += counts.index(ABSENT)
                break
            h += len(counts)
            if len(counts) < want:
                break
        req.hit_memo = (self.version, self, h)
        return h

    def _spans(self, req, lo: int, hi: int):
        """(run, start, stop) for blocks ``lo``..``hi``-1 of ``req``, run by run (offsets in the run)."""
        cache = self.runs
        for key, first, end in req.prefix_runs:
            if end <= lo:
                continue
            if first >= hi:
                return
            yield key, cache.get(key), max(lo, first) - first, min(hi, end) - first

    def cached_tokens(self, req) -> int:
        return 0 if req.blocks else self._hits(req) * self.block_size

    def cached_blocks(self, req) -> list[bool]:
        """For each full prompt block of ``req``, whether the cache holds it (for inspection)."""
        out = []
        for key, first, end in req.prefix_runs:
            run = self.runs.get(key)
            counts = run.counts[: end - first] if run is not None else []
            out += [n != ABSENT for n in counts] + [False] * (end - first - len(counts))
        return out

    def admit_cost(self, req, tokens: int) -> int:
        """Free blocks ``req`` would consume to hold ``tokens`` KV entries."""
        h = self._hits(req) if not req.blocks else 0
        new = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks - h
        revived = sum(run.counts[a:b].count(0) for _, run, a, b in self._spans(req, 0, h)) if h else 0
        return max(new, 0) + revived

    def admit(self, req, tokens: int) -> None:
        """Reference cached prefix blocks, allocate the rest, skip cached tokens."""
        h = self._hits(req) if not req.blocks else 0
        runs = req.prefix_runs
        if req.blocks == 0 and runs:
            self.lookups += min(runs[-1][2], (req.prompt - 1) // self.block_size)
        if h:
            for _, run, a, b in self._spans(req, 0, h):
                counts = run.counts
                part = counts[a:b]
                revived = part.count(0)  # cached but unreferenced: counted free until now
                if revived:
                    run.stamps[a:b] = [0] * (b - a)  # (the referenced ones have none)
                    self.evictable -= revived
                    self.free -= revived
                counts[a:b] = [n + 1 for n in part]
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
        short = blocks - (self.free - self.evictable)
        if short > 0 and self.evictable:  # evict the least recently released cached blocks
            self._evict(min(short, self.evictable))
        super().allocate(blocks)

    def _evict(self, count: int) -> None:
        """Uncache the ``count`` blocks at the front of the eviction queue."""
        queue, cache = self.queue, self.runs
        left = count
        while left:
            entry = queue[0]
            key, run, lo, hi, stamp = entry
            stamps = run.stamps
            span = stamps[lo:hi]
            if span.count(stamp) == hi - lo:  # every block of the range is still evictable (the usual case)
                take = min(left, hi - lo)
                run.counts[lo : lo + take] = [ABSENT] * take
                stamps[lo : lo + take] = [0] * take
                stop = lo + take
            else:  # some were revived or evicted since: block by block
                take, stop = 0, lo
                while stop < hi and take < left:
                    if stamps[stop] == stamp:
                        run.counts[stop] = ABSENT
                        stamps[stop] = 0
                        take += 1
                    stop += 1
            left -= take
            run.cached -= take
            if run.cached == 0 and cache.get(key) is run:
                del cache[key]
            if stop >= hi:
                queue.popleft()
            else:
                entry[2] = stop
        self.evictable -= count
        self.cached -= count
        self.evictions += count
        self.version += count

    # -- after the prefill, at the end ---------------------------------------
    def register(self, req) -> None:
        """The prompt of ``req`` is computed: cache its full blocks it does not share yet,
        up to the first one another request cached meanwhile (computed concurrently: ours stay private)."""
        runs = req.prefix_runs
        if not runs:
            return
        full = min(runs[-1][2], req.prompt // self.block_size)
        cache = self.runs
        owned = 0
        for key, run, a, b in self._spans(req, req.shared, full):
            if run is None:
                run = cache[key] = _Run(b)
            else:
                run.grow(b)
            counts = run.counts
            part = counts[a:b]
            mine = part.count(ABSENT)
            if mine != b - a:  # another request's block: stop before it
                mine = next(i for i, n in enumerate(part) if n != ABSENT)
            counts[a : a + mine] = [1] * mine
            run.cached += mine
            owned += mine
            if mine != b - a:
                break
        if owned:
            self.cached += owned
            self.version += 1
        req.shared += owned

    def release_request(self, req) -> None:
        shared = req.shared
        released = req.blocks - shared  # private blocks always return
        if shared:
            queue = self.queue
            for key, run, a, b in self._spans(req, 0, shared):
                counts = run.counts
                part = counts[a:b]
                last = part.count(1)  # held by this request alone: cached, evictable, counted free
                if last == b - a:
                    counts[a:b] = [0] * last
                    self._stamp += 1
                    run.stamps[a:b] = [self._stamp] * last
                    queue.append([key, run, a, b, self._stamp])
                else:
                    counts[a:b] = [n - 1 for n in part]
                    if last:
                        self._queue_zeros(key, run, a, b)
                released += last
                self.evictable += last
            req.shared = 0
            if len(queue) > 2 * self.evictable + 1024:
                self._compact()
        self.release(released)
        req.blocks = 0

    def _queue_zeros(self, key: int, run: _Run, a: int, b: int) -> None:
        """Queue the blocks of ``run[a:b]`` whose count just fell to 0, a range at a time, in order."""
        counts, stamps = run.counts, run.stamps
        i = a
        while i < b:
            if counts[i] != 0:
                i += 1
                continue
            j = i
            while j < b and counts[j] == 0:
                j += 1
            self._stamp += 1
            stamps[i:j] = [self._stamp] * (j - i)
            self.queue.append([key, run, i, j, self._stamp])
            i = j

    def _compact(self) -> None:
        """Drop the queue's entries none of whose blocks is still evictable (so it stays
        about as long as the evictable blocks, however long the cache never fills)."""
        self.queue = deque(e for e in self.queue if e[1].stamps[e[2] : e[3]].count(e[4]))

    def stats(self) -> dict:
        return {
            "lookups_blocks": self.lookups,
            "hit_blocks": self.hit_blocks,
            "block_hit_rate": self.hit_blocks / self.lookups if self.lookups else 0.0,
            "saved_prefill_tokens": self.saved_tokens,
            "evictions": self.evictions,
            "cached_blocks_at_end": self.cached,
        }
