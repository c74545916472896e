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

ABSENT = -1  # a block of a run that is not cached (a count of 0 or more: cached in GPU memory)
HOST = -2  # ... held in the host-memory tier (memory.offload.host_gb)
SSD = -3  # ... held in the SSD tier (memory.offload.ssd_gb)


class _Filled(dict):
    """``n`` -> a list of ``n`` copies of one value, made once for the short lengths a run's slices
    have: a slice assignment copies from it (and never changes it) instead of building a list."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self.value = value

    def __missing__(self, n: int) -> list[int]:
        out = [self.value] * n
        if n <= 256:
            self[n] = out
        return out


_ABSENTS, _ZEROS, _ONES = _Filled(ABSENT), _Filled(0), _Filled(1)


class Tier:
    """A KV tier below GPU memory (``memory.offload``): blocks the tier above evicts land here, least
    recently stored leave first (to the tier below, or out of the cache); a prompt that finds its
    leading blocks here loads them back into GPU memory instead of recomputing them."""

    def __init__(self, name: str, marker: int, blocks: int, load_bps: float, latency_s: float) -> None:
        self.name = name
        self.marker = marker  # the count value that marks a block as held here
        self.capacity = blocks
        self.load_bps = load_bps
        self.latency_s = latency_s
        self.queue: deque[list] = deque()  # [run key, run, lo, hi, stamp], least recently stored first
        self.used = 0
        self.pinned = 0  # blocks of swapped-out requests parked here (never evicted; the rest of the capacity caches)
        self.pinned_peak = 0
        self.stored = 0  # blocks that came down into this tier
        self.loaded = 0  # blocks loaded back into GPU memory from here
        self.load_s = 0.0  # the copy time of those loads (it lengthens the steps that admit them)
        self.dropped = 0  # blocks that left this tier (to the tier below, or out of the cache)
        self.below: Tier | None = None


class _Run:
    """The cached blocks of one run (one prefix id at one place in the prompt)."""

    __slots__ = ("counts", "stamps", "cached")

    def __init__(self, length: int, held: bool = False) -> None:
        """``length`` blocks, none cached; or (``held``) all cached, each referenced by one request."""
        self.counts = [1 if held else ABSENT] * length  # requests referencing each block; ABSENT: not cached
        self.stamps = [0] * length  # an evictable block's place in the eviction queue (0: not evictable)
        self.cached = length if held else 0  # blocks not ABSENT

    def grow(self, length: int) -> None:
        """Room for ``length`` blocks (a longer prompt reaches further into the run)."""
        extra = length - len(self.counts)
        if extra > 0:
            self.counts += [ABSENT] * extra
            self.stamps += [0] * extra


def _take_oldest(queue: deque[list], count: int) -> list[tuple[int, _Run, range | list[int]]]:
    """Take ``count`` blocks off the front of an eviction queue (entries ``[run key, run, lo, hi, stamp]``;
    a block is still queued while it has its entry's stamp): (run key, run, indices) per run, oldest first.
    The blocks keep their counts and stamps; the caller moves them."""
    taken: list[tuple[int, _Run, range | list[int]]] = []
    while count:
        entry = queue[0]
        key, run, lo, hi, stamp = entry
        stamps = run.stamps
        if stamps[lo:hi].count(stamp) == hi - lo:  # every block of the range still queued (the usual case)
            stop = lo + min(count, hi - lo)
            idx: range | list[int] = range(lo, stop)
        else:  # some were revived, loaded back or superseded since: block by block
            idx, stop = [], lo
            while stop < hi and len(idx) < count:
                if stamps[stop] == stamp:
                    idx.append(stop)
                stop += 1
        if stop >= hi:
            queue.popleft()
        else:
            entry[2] = stop
        if idx:
            taken.append((key, run, idx))
            count -= len(idx)
    return taken


def _uncache(run: _Run, idx: range | list[int]) -> None:
    """Blocks ``idx`` of ``run`` leave their tier: not cached, not queued (a range: one slice each)."""
    if type(idx) is range:
        n = len(idx)
        run.counts[idx.start : idx.stop] = _ABSENTS[n]
        run.stamps[idx.start : idx.stop] = _ZEROS[n]
        return
    counts, stamps = run.counts, run.stamps
    for i in idx:
        counts[i] = ABSENT
        stamps[i] = 0


def _live(queue: deque[list]) -> deque[list]:
    """The queue without the entries none of whose blocks is still queued."""
    return deque(e for e in queue if e[1].stamps[e[2] : e[3]].count(e[4]))


class PrefixCachingBlockManager(BlockManager):
    caches_prefixes = True

    def __init__(
        self, total_blocks: int, block_size: int, watermark: float = 0.0, max_model_len: int = 0,
        tiers: list[Tier] | None = None, block_bytes: float = 0.0,
    ):  # fmt: skip
        super().__init__(total_blocks, block_size, watermark, max_model_len)
        #: lower tiers, highest first (host memory, SSD); empty: evicted blocks leave the cache
        self.tiers = [t for t in tiers or [] if t.capacity > 0]
        for upper, lower in zip(self.tiers, self.tiers[1:]):
            upper.below = lower
        self.block_bytes = block_bytes
        self.load_s = 0.0  # copy time of the blocks loaded from lower tiers since the replica last priced a step
        #: swap preemption parks swapped-out KV in the host tier, when there is one
        self.parks_swaps = bool(self.tiers) and self.tiers[0].name == "host"
        self.runs: dict[int, _Run] = {}  # run key -> its blocks
        # the eviction queue, least recently released first: [run key, run, lo, hi, stamp] for blocks
        # lo..hi-1 of a run released together; a block still in it has that stamp (revived or evicted
        # blocks lose it, so entries are checked, not searched and removed). No two entries of one run
        # share a stamp (entries of other runs may: one release stamps all its runs' ranges alike)
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

    def _spans(self, req, lo: int, hi: int) -> list:
        """(run key, run, start, stop) for blocks ``lo``..``hi``-1 of ``req``, run by run (offsets in the run)."""
        cache = self.runs
        out = []
        for key, first, end in req.prefix_runs:
            if end <= lo:
                continue
            if first >= hi:
                break
            out.append((key, cache.get(key), lo - first if lo > first else 0, (hi if hi < end else end) - first))
        return out

    def cached_tokens(self, req) -> int:
        return 0 if req.blocks else self._hits(req) * self.block_size

    def cached_blocks(self, req) -> list[bool]:
        """For each full prompt block of ``req``, whether GPU memory holds it (for inspection)."""
        return [where == "gpu" for where in self.block_tiers(req)]

    def block_tiers(self, req) -> list[str | None]:
        """For each full prompt block of ``req``, where the cache holds it: ``gpu``, a lower tier's
        name (``host``, ``ssd``), or None (for inspection)."""
        names = {t.marker: t.name for t in self.tiers}
        out: list[str | None] = []
        for key, first, end in req.prefix_runs:
            run = self.runs.get(key)
            counts = run.counts[: end - first] if run is not None else []
            out += ["gpu" if n >= 0 else names.get(n) for n in counts] + [None] * (end - first - len(counts))
        return out

    def admit_cost(self, req, tokens: int) -> int:
        """Free blocks ``req`` would consume to hold ``tokens`` KV entries."""
        h = self._hits(req) if not req.blocks else 0
        new = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks - h
        if not h:
            return max(new, 0)
        revived = sum(run.counts[a:b].count(0) for _, run, a, b in self._spans(req, 0, h))
        if self.tiers:  # blocks loaded from a lower tier take GPU blocks too
            revived += sum(run.counts[a:b].count(t.marker) for _, run, a, b in self._spans(req, 0, h) for t in self.tiers)
        return max(new, 0) + revived

    def admit(self, req, tokens: int) -> None:
        """Reference cached prefix blocks, allocate the rest, skip cached tokens."""
        h = self._hits(req) if not req.blocks else 0
        runs = req.prefix_runs
        if req.blocks == 0 and runs:
            self.lookups += min(runs[-1][2], (req.prompt - 1) // self.block_size)
        loaded = 0
        if h:
            by_tier = [0] * len(self.tiers)
            for _, run, a, b in self._spans(req, 0, h):
                counts = run.counts
                part = counts[a:b]
                revived = part.count(0)  # cached but unreferenced: counted free until now
                if revived:
                    run.stamps[a:b] = [0] * (b - a)  # (the referenced ones have none)
                    self.evictable -= revived
                    self.free -= revived
                if self.tiers and min(part) < ABSENT:  # some come from a lower tier: loaded into GPU memory
                    loaded += self._load(run, a, part, by_tier)
                    part = counts[a:b]
                counts[a:b] = [n + 1 for n in part]
            for tier, n in zip(self.tiers, by_tier):  # one copy per tier for the request: a launch, then the bytes
                if n:
                    took = tier.latency_s + n * self.block_bytes / tier.load_bps
                    tier.load_s += took
                    self.load_s += took
            req.shared = h
            self.hit_blocks += h
            cached = h * self.block_size
            if cached > req.prefilled:
                self.saved_tokens += cached - req.prefilled
                req.prefilled = cached
        new = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks - h
        if new + loaded > 0:
            self.allocate(max(new, 0) + loaded)
        req.blocks += h + max(new, 0)

    def _load(self, run: _Run, a: int, part: list[int], by_tier: list[int]) -> int:
        """Blocks ``a..`` of ``run`` (their counts ``part``) that sit in a lower tier come back to GPU
        memory, unreferenced until the caller counts them (``by_tier`` adds up how many from each tier)."""
        counts, stamps = run.counts, run.stamps
        loaded = 0
        for k, tier in enumerate(self.tiers):
            n = part.count(tier.marker)
            if not n:
                continue
            by_tier[k] += n
            for i, value in enumerate(part):
                if value == tier.marker:
                    counts[a + i] = 0
                    stamps[a + i] = 0
            tier.used -= n
            tier.loaded += n
            loaded += n
        self.cached += loaded
        return loaded

    def allocate(self, blocks: int) -> None:
        short = blocks - (self.free - self.evictable)
        if short > 0 and self.evictable:  # evict the least recently released cached blocks
            self._evict(min(short, self.evictable))
        super().allocate(blocks)

    def _evict(self, count: int) -> None:
        """Uncache the ``count`` blocks at the front of the eviction queue: down to the first lower
        tier when there is one, else out of the cache."""
        if self.tiers:
            for key, run, idx in _take_oldest(self.queue, count):
                _uncache(run, idx)
                self._store(self.tiers[0], key, run, idx)
        else:
            self._drop_oldest(count)
        self.evictable -= count
        self.cached -= count
        self.evictions += count
        self.version += count

    def _drop_oldest(self, count: int) -> None:
        """What ``_take_oldest``, ``_uncache`` and ``_forget`` do to the ``count`` blocks at the front of
        the eviction queue, in one pass: the usual entry, a whole range still queued, is dropped in two
        slice assignments, or none when its blocks are all its run holds (the run goes)."""
        queue, runs = self.queue, self.runs
        while count:
            entry = queue[0]
            key, run, lo, hi, stamp = entry
            stamps = run.stamps
            n = hi - lo
            live = stamps[lo:hi].count(stamp)
            if live != n:  # some were revived since (or all: a stale entry): this entry block by block
                if not live:
                    queue.popleft()
                for key, run, idx in _take_oldest(queue, min(count, live)):
                    _uncache(run, idx)
                    self._forget(key, run, len(idx))
                    count -= len(idx)
                continue
            if n > count:
                n = count
                entry[2] = lo + n
            else:
                queue.popleft()
                if run.cached == n and runs.get(key) is run:  # the run's last blocks: it goes as it is
                    del runs[key]  # (entries left in the queue for it are stale: its stamps match none)
                    count -= n
                    continue
            run.counts[lo : lo + n] = _ABSENTS[n]
            stamps[lo : lo + n] = _ZEROS[n]
            self._forget(key, run, n)
            count -= n

    def _forget(self, key: int, run: _Run, n: int) -> None:
        """``n`` blocks of ``run``, just marked ABSENT, left the cache (the run goes with its last block)."""
        run.cached -= n
        if run.cached == 0 and self.runs.get(key) is run:
            del self.runs[key]

    def _store(self, tier: Tier, key: int, run: _Run, moved: list[int] | range) -> None:
        """Blocks ``moved`` of ``run`` (ascending), just evicted by the tier above, come down into
        ``tier`` (one queue entry for them); then ``tier`` makes room below its capacity."""
        counts, stamps = run.counts, run.stamps
        self._stamp += 1
        stamp = self._stamp
        for i in moved:
            counts[i] = tier.marker
            stamps[i] = stamp
        tier.queue.append([key, run, moved[0], moved[-1] + 1, stamp])
        tier.used += len(moved)
        tier.stored += len(moved)
        if tier.used > tier.capacity - tier.pinned:
            self._spill(tier, tier.used - (tier.capacity - tier.pinned))
        if len(tier.queue) > 2 * tier.used + 1024:  # entries whose blocks were all loaded back or superseded
            tier.queue = _live(tier.queue)

    def park(self, blocks: int) -> bool:
        """Swap preemption: hold ``blocks`` of a swapped-out request in the host tier, making room by
        spilling its cached prefix blocks (to the SSD tier or out); False when the tier cannot hold them."""
        host = self.tiers[0]
        if blocks > host.capacity - host.pinned:
            return False
        host.pinned += blocks
        host.pinned_peak = max(host.pinned_peak, host.pinned)
        over = host.used - (host.capacity - host.pinned)
        if over > 0:
            self._spill(host, over)
        return True

    def unpark(self, blocks: int) -> None:
        """The swapped-out request came back: its parked blocks leave the host tier."""
        self.tiers[0].pinned -= blocks

    def _spill(self, tier: Tier, count: int) -> None:
        """``count`` blocks leave ``tier``, least recently stored first: to the tier below, or out of the cache."""
        for key, run, idx in _take_oldest(tier.queue, count):
            _uncache(run, idx)
            tier.used -= len(idx)
            tier.dropped += len(idx)
            if tier.below is not None:
                self._store(tier.below, key, run, idx)
            else:
                self._forget(key, run, len(idx))
                self.version += len(idx)

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
            if run is None and a == 0:  # a run nobody cached: all its blocks are ours
                cache[key] = _Run(b, held=True)
                owned += b
                continue
            if run is None:
                run = cache[key] = _Run(b)
            else:
                run.grow(b)
            counts = run.counts
            part = counts[a:b]
            mine = part.count(ABSENT)
            if mine == b - a:
                run.cached += mine
            else:  # up to a block another request holds in GPU memory; a lower tier's copy is superseded
                mine = next((i for i, n in enumerate(part) if n >= 0), b - a)
                if mine and self.tiers and min(part[:mine]) < ABSENT:
                    self._supersede(run, a, part[:mine])
                run.cached += part[:mine].count(ABSENT)
            counts[a : a + mine] = _ONES[mine]
            owned += mine
            if mine != b - a:
                break
        if owned:
            self.cached += owned
            self.version += 1
        req.shared += owned

    def _supersede(self, run: _Run, a: int, part: list[int]) -> None:
        """Blocks ``a..`` of ``run`` (their counts ``part``) held in a lower tier were just computed again in
        GPU memory: the lower copies leave their tiers (their queue entries go stale)."""
        for tier in self.tiers:
            n = part.count(tier.marker)
            if n:
                for i, value in enumerate(part):
                    if value == tier.marker:
                        run.stamps[a + i] = 0
                tier.used -= n

    def release_request(self, req) -> None:
        shared = req.shared
        released = req.blocks - shared  # private blocks always return
        if shared:
            queue = self.queue
            self._stamp += 1
            stamp = self._stamp  # one for the whole ranges released here (each of another run)
            stamps = _Filled(stamp)
            for key, run, a, b in self._spans(req, 0, shared):
                counts = run.counts
                part = counts[a:b]
                last = part.count(1)  # held by this request alone: cached, evictable, counted free
                if last == b - a:
                    counts[a:b] = _ZEROS[last]
                    run.stamps[a:b] = stamps[last]
                    queue.append([key, run, a, b, stamp])
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
        self.queue = _live(self.queue)

    def stats(self) -> dict:
        return {
            "lookups_blocks": self.lookups,
            "hit_blocks": self.hit_blocks,
            "block_hit_rate": self.hit_blocks / self.lookups if self.lookups else 0.0,
            "saved_prefill_tokens": self.saved_tokens,
            "evictions": self.evictions,
            "cached_blocks_at_end": self.cached,
            **self._tier_stats(),
        }

    def _tier_stats(self) -> dict:
        """The lower tiers' figures (none without ``memory.offload``, so such runs' summaries stay as they were)."""
        if not self.tiers:
            return {}
        tiers = {
            t.name: {"stored_blocks": t.stored, "hit_blocks": t.loaded, "dropped_blocks": t.dropped, "blocks_at_end": t.used,
                     "load_s": t.load_s}  # fmt: skip
            for t in self.tiers
        }
        if self.parks_swaps:
            tiers["host"]["parked_blocks_peak"] = self.tiers[0].pinned_peak  # swapped-out KV held at once, at most
        return {"offload": {**tiers, "loaded_gb": sum(t.loaded for t in self.tiers) * self.block_bytes / 1e9}}
