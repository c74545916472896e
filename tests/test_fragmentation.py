"""External fragmentation of contiguous KV reservations (``memory.contiguous_allocator``).

Unit tests of the allocators on hand-made sequences, of the placed
``reserve_*`` managers, the configuration errors, and run-level directions:
placing reservations as contiguous ranges never raises the real-token share
or the concurrency that counting blocks gives.
"""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest

import simulator
from simulator.engine.request import Request
from simulator.errors import ConfigError
from simulator.memory import ALLOCATIONS, ReserveExact, ReserveMax, build_kv_manager
from simulator.memory.contiguous import Buddy, ContiguousAllocator, FirstFit
from simulator.memory.placement import ContiguousReserveExact, ContiguousReserveMax

# -- first fit ------------------------------------------------------------------


def test_first_fit_fails_on_a_fragmented_pool_where_total_free_suffices():
    a = FirstFit(10)
    assert [a.allocate(3), a.allocate(3), a.allocate(3)] == [0, 3, 6]
    assert a.free_ranges() == [(9, 1)]
    assert a.release(3) == 3
    assert a.free_ranges() == [(3, 3), (9, 1)] and a.free_blocks == 4
    assert not a.fits(4) and a.allocate(4) is None  # 4 blocks free, but in two ranges
    assert a.fragmentation() == pytest.approx(1 - 3 / 4)
    assert a.fits(3) and a.fits(1)


def test_first_fit_coalescing_restores_a_whole_range():
    a = FirstFit(10)
    starts = [a.allocate(n) for n in (2, 3, 4)]
    assert starts == [0, 2, 5] and a.free_ranges() == [(9, 1)]
    a.release(2)  # the middle: no free neighbour
    assert a.free_ranges() == [(2, 3), (9, 1)]
    a.release(5)  # merges with the range before and the one after
    assert a.free_ranges() == [(2, 8)] and a.largest_free() == 8
    a.release(0)
    assert a.free_ranges() == [(0, 10)] and a.free_blocks == 10 and a.fragmentation() == 0.0
    assert a.allocate(10) == 0 and a.free_ranges() == [] and a.largest_free() == 0


def test_first_fit_takes_the_first_range_not_the_best():
    a = FirstFit(12)
    for n in (5, 2, 2, 3):
        a.allocate(n)  # [0,5) [5,7) [7,9) [9,12)
    a.release(0)  # a hole of 5 at the front
    a.release(7)  # a hole of 2 further on: the best fit for 2
    assert a.allocate(2) == 0  # first fit takes the low end of the first hole
    assert a.free_ranges() == [(2, 3), (7, 2)]


def test_first_fit_rejects_unknown_starts_and_empty_reservations():
    a = FirstFit(4)
    with pytest.raises(RuntimeError):
        a.release(1)
    with pytest.raises(ValueError):
        a.allocate(0)
    with pytest.raises(ValueError):
        FirstFit(0)


# -- buddy ----------------------------------------------------------------------


def test_buddy_rounds_to_powers_of_two():
    b = Buddy(64)
    assert [b.size_for(n) for n in (1, 2, 3, 4, 5, 8, 9, 33)] == [1, 2, 4, 4, 8, 8, 16, 64]
    assert [Buddy.order_of(n) for n in (1, 2, 3, 4, 5)] == [0, 1, 2, 2, 3]
    start = b.allocate(3)
    assert start == 0 and b.taken(0) == 4 and b.free_blocks == 60


def test_buddy_splits_and_merges_exactly():
    b = Buddy(16)
    assert b.allocate(3) == 0  # 16 -> 8 + 8 -> 4 + 4: takes [0, 4)
    assert b.free_ranges() == [(4, 4), (8, 8)]
    assert b.allocate(1) == 4  # splits [4, 8) down to one block
    assert b.free_ranges() == [(5, 1), (6, 2), (8, 8)]
    b.release(0)  # its buddy [4, 8) is split: no merge
    assert b.free_ranges() == [(0, 4), (5, 1), (6, 2), (8, 8)]
    b.release(4)  # merges 4+5, 4+6, 0+4, 0+8: the whole pool again
    assert b.free_ranges() == [(0, 16)] and b.free_blocks == 16


def test_buddy_adjacent_non_buddies_do_not_hold_one_reservation():
    b = Buddy(16)
    assert [b.allocate(4) for _ in range(4)] == [0, 4, 8, 12]
    b.release(4)
    b.release(8)  # [4, 12) is free and contiguous, but 4 and 8 are not buddies
    assert b.free_blocks == 8 and b.free_ranges() == [(4, 4), (8, 4)]
    assert not b.fits(8) and not b.fits(5) and b.allocate(5) is None
    assert b.fits(4)


def test_buddy_pool_that_is_not_a_power_of_two():
    b = Buddy(12)  # top-level blocks 8 + 4, never merged
    assert b.free_ranges() == [(0, 8), (8, 4)] and b.capacity() == 8
    assert not b.fits(9) and b.allocate(9) is None
    assert b.allocate(4) == 8  # the smallest free block that fits, not a split of the 8
    assert b.allocate(8) == 0
    b.release(8)
    b.release(0)
    assert b.free_ranges() == [(0, 8), (8, 4)]


@pytest.mark.parametrize("cls", [FirstFit, Buddy])
def test_random_sequences_keep_ranges_disjoint_and_return_the_pool(cls: type[ContiguousAllocator]):
    rng = random.Random(7)
    a = cls(1000)
    initial = a.free_ranges()
    live: dict[int, int] = {}
    for _ in range(3000):
        if live and (rng.random() < 0.45 or a.free_blocks == 0):
            start = rng.choice(sorted(live))
            assert a.release(start) == live.pop(start)
        else:
            n = rng.randint(1, 90)
            fits = a.fits(n)
            start = a.allocate(n)
            assert (start is not None) == fits
            if start is not None:
                live[start] = a.taken(start)
                assert live[start] == a.size_for(n) >= n
        spans = sorted([*a.free_ranges(), *live.items()])
        assert sum(n for _, n in a.free_ranges()) == a.free_blocks == a.total - sum(live.values())
        assert all(s + n <= t for (s, n), (t, _) in zip(spans, spans[1:], strict=False))  # no overlap
        assert spans[-1][0] + spans[-1][1] <= a.total
    for start in list(live):
        a.release(start)
    assert a.free_ranges() == initial


# -- the placed reserve_* managers ------------------------------------------------


def _req(rid: int, prompt: int, output: int) -> Request:
    return Request(rid, 0.0, prompt, output)


def test_placed_reservation_waits_on_fragmentation_where_counting_admits():
    # 10 blocks of 16 tokens, no watermark; each request reserves prompt + output - 1 tokens
    sizes = [48, 48, 48]  # 3 blocks each
    counted, placed = ReserveExact(10, 16), ContiguousReserveExact(10, 16, allocator="first_fit")
    for kv in (counted, placed):
        reqs = [_req(i, n - 9, 10) for i, n in enumerate(sizes)]
        for r in reqs:
            assert kv.can_admit(kv.admit_cost(r, r.target))
            kv.admit(r, r.target)
        kv.release_request(reqs[1])  # a hole of 3 blocks in the middle, 1 free at the end
        big = _req(9, 55, 10)  # 64 tokens: 4 blocks
        assert kv.free == 4
        fits = kv.can_admit(kv.admit_cost(big, big.target))
        assert fits is (kv is counted)
    assert placed.stats()["fragmentation_refusals"] == 1 and placed.stats()["requests_delayed_by_fragmentation"] == 1


def test_placed_buddy_counts_rounding_as_used_and_returns_every_block():
    kv = ContiguousReserveMax(64, 16, max_model_len=5 * 16, allocator="buddy")  # 5 blocks -> 8
    reqs = [_req(i, 10, 10) for i in range(8)]
    admitted = []
    for r in reqs:
        if kv.can_admit(kv.admit_cost(r, r.target)):
            kv.admit(r, r.target)
            admitted.append(r)
    assert len(admitted) == 8 and kv.free == 0 and all(r.blocks == 8 for r in admitted)
    assert not kv.ever_fits(_req(99, 2000, 10))
    for r in admitted:
        kv.release_request(r)
    s = kv.stats()
    assert kv.free == 64 and s["rounding_blocks"] == 8 * 3 and s["rounding_share"] == pytest.approx(3 / 8)
    assert s["largest_free_range_at_end"] == 64 and s["free_ranges_at_end"] == 1


def test_placed_count_interface_for_callers_without_a_request():
    kv = ContiguousReserveExact(32, 16, allocator="first_fit")
    r = _req(1, 40, 9)  # 48 tokens: 3 blocks, as a decode replica's transfer takes them
    kv.allocate(3)
    r.blocks = 3
    assert kv.free == 29
    kv.release_request(r)
    assert kv.free == 32 and r.blocks == 0
    with pytest.raises(RuntimeError):
        kv.release(3)


def test_null_allocator_builds_the_counting_managers():
    cfg = simulator.load_config(["memory.allocation=reserve_max", "memory.max_model_len=16384"])
    assert cfg.memory.contiguous_allocator is None
    assert type(build_kv_manager(cfg, "mixed", "reserve_max", 1000)) is ReserveMax
    cfg = simulator.load_config(["memory.allocation=reserve_max", "memory.contiguous_allocator=buddy"])
    kv = build_kv_manager(cfg, "mixed", "reserve_max", 1000)
    assert isinstance(kv, ContiguousReserveMax) and isinstance(kv.allocator, Buddy)
    assert kv.name == "reserve_max" and ALLOCATIONS.get("reserve_max") is ReserveMax


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["memory.contiguous_allocator=first_fit"],
        ["memory.allocation=paged", "memory.contiguous_allocator=buddy"],
        ["scheduler=static", "memory.contiguous_allocator=first_fit"],  # static reads paged as reserve_max
    ],
)
def test_paged_with_a_contiguous_allocator_is_a_config_error(overrides: list[str]):
    with pytest.raises(ConfigError, match="no contiguous ranges"):
        simulator.load_config(overrides)


def test_unknown_contiguous_allocator_is_a_config_error():
    with pytest.raises(ConfigError, match="choose one of: first_fit, buddy"):
        simulator.load_config(["memory.allocation=reserve_pow2", "memory.contiguous_allocator=best_fit"])


# -- run-level direction --------------------------------------------------------------

PRESSURE = [
    "workload.num_requests=400",
    "memory.activation_reserve_gb=50",  # an 83,223-token pool: memory limits every reserve mode
    "memory.max_model_len=16384",
    "seed=3",
    "output.console=false",
    "output.charts=false",
]


def _run(mode: str, allocator: str | None, *extra: str) -> tuple[float, float, float]:
    """(real-token share, mean requests running weighted by step time, completed requests/s)."""
    over = [*PRESSURE, f"memory.allocation={mode}", *extra]
    if allocator is not None:
        over.append(f"memory.contiguous_allocator={allocator}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = simulator.run(over)
    dur = r.steps["duration_s"].to_numpy()
    running = float(np.dot(r.steps["num_running"].to_numpy(), dur) / dur.sum())
    assert r.summary["kv_cache"]["blocks_in_use_at_end"] == 0
    return r.summary["kv_cache"]["real_token_share"], running, r.summary["throughput"]["requests_per_s"]


def test_first_fit_never_beats_counting_under_reserve_max():
    share0, running0, rps0 = _run("reserve_max", None)
    share1, running1, rps1 = _run("reserve_max", "first_fit")
    assert share1 <= share0 and running1 <= running0 and rps1 <= rps0
    # every reserve_max reservation has the same length, so first fit leaves no hole a later
    # one cannot use: the counted run is reproduced exactly
    assert (share1, running1, rps1) == (share0, running0, rps0)


def test_contiguous_placement_lowers_share_and_concurrency_when_sizes_vary():
    share0, running0, rps0 = _run("reserve_exact", None)
    share1, running1, rps1 = _run("reserve_exact", "first_fit")
    share2, running2, rps2 = _run("reserve_exact", "buddy")
    assert share2 < share1 <= share0
    assert running2 < running1 < running0
    assert rps2 < rps1 < rps0


def test_buddy_rounds_reserve_max_that_is_not_a_power_of_two():
    share0, running0, _ = _run("reserve_max", None, "memory.max_model_len=24576")  # 1,536 blocks -> 2,048
    share1, running1, _ = _run("reserve_max", "buddy", "memory.max_model_len=24576")
    assert share1 < share0 and running1 < running0


def test_disaggregated_decode_pool_places_transfers_contiguously():
    extra = ["cluster=disaggregated", "memory.max_model_len=16384"]
    share0, running0, _ = _run("reserve_pow2", None, *extra)
    share1, running1, _ = _run("reserve_pow2", "buddy", *extra)
    assert share1 < share0 and running1 <= running0


def test_the_summary_and_console_report_what_placement_cost():
    import simulator

    r = simulator.run(["memory.allocation=reserve_exact", "memory.max_model_len=16384", "memory.contiguous_allocator=first_fit",
                       "workload.rate=25", "workload.num_requests=800"])  # fmt: skip
    c = r.summary["kv_cache"]["contiguous"]
    assert c["allocator"] == "first_fit" and c["requests_delayed_by_fragmentation"] >= 0
    assert 0 < c["pool_token_share"] <= r.summary["kv_cache"]["real_token_share"] <= 1  # gaps count against the pool
    assert "contiguous" not in simulator.run(["workload.num_requests=50"]).summary["kv_cache"]
