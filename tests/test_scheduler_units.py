"""Each batching policy's plan for one hand-built replica state.

No simulation runs here: a test builds a :class:`ReplicaState` by hand (a
KV manager with a known number of free blocks, requests with given prompt
and output lengths and progress, a token budget), asks the policy for one
plan, and checks the exact :class:`Plan` - which requests prefill how many
tokens, whether the running set decodes - and who was admitted, preempted or
swapped. The docstrings say the situation and why the answer follows, so
each case can be checked by hand, in the way vLLM unit-tests its scheduler.

Conventions: KV blocks hold ``BS = 16`` tokens. A decoding request that has
produced ``g`` tokens of a ``p``-token prompt stores ``p + g - 1`` KV entries;
it needs a new block in the next decode step when that count is a multiple
of 16 (e.g. a 32-token prompt right after its first token).
"""

from __future__ import annotations

from types import SimpleNamespace

from simulator.config.schema import SpeculativeConfig
from simulator.engine.request import Request
from simulator.memory import BlockManager, ReserveMax
from simulator.scheduling import SCHEDULERS, Plan, ReplicaState

BS = 16
BLOCK_BYTES = 1600.0  # 16 tokens x 100 bytes per token


def make(
    policy,
    *,
    blocks,
    watermark=0.0,
    batch_size=256,
    budget=2048,
    mode="recompute",
    swap_blocks=0,
    kv_cls=BlockManager,
    max_model_len=0,
    now=0.0,
    max_wait_s=0.5,
    multi_step=1,
):
    """A replica state with ``blocks`` KV blocks (all free) and ``policy`` planning on it."""
    kv = kv_cls(blocks, BS, watermark, max_model_len)
    st = ReplicaState(SimpleNamespace(now=now), kv, swap_blocks=swap_blocks, block_bytes=BLOCK_BYTES)
    sched = SimpleNamespace(
        max_batch_size=batch_size, max_batch_tokens=budget, preemption_mode=mode, max_wait_s=max_wait_s,
        speculative=SpeculativeConfig(), multi_step=multi_step,
    )  # fmt: skip
    return st, SCHEDULERS.get(policy)(SimpleNamespace(scheduler=sched, workload=SimpleNamespace(beam_width=1)), st)


def queued(st, rid, prompt, output=100, arrival=None):
    """A request at the tail of the queue (arrival time = its id unless given)."""
    req = Request(rid, float(rid) if arrival is None else arrival, prompt, output)
    st.waiting.append(req)
    return req


def decoding(st, rid, prompt, generated, output=100, arrival=None):
    """A request in the running set that has produced ``generated`` tokens
    (``prompt + generated - 1`` KV entries, in blocks taken from the pool)."""
    req = Request(rid, float(rid) if arrival is None else arrival, prompt, output)
    entries = prompt + generated - 1
    req.prefilled = req.target = prompt
    req.generated = generated
    st.kv.admit(req, entries)
    st.in_flight += 1
    st.running.add(req, entries)
    return req


def part_prefilled(st, rid, prompt, done):
    """An admitted request holding its whole prompt's blocks, ``done`` tokens computed."""
    req = Request(rid, float(rid), prompt, 100)
    st.kv.admit(req, prompt)
    req.prefilled = done
    st.admit(req)
    return req


def swapped_out(st, rid, prompt, generated):
    """A request whose ``prompt + generated - 1`` KV entries are parked in host memory."""
    req = Request(rid, float(rid), prompt, 100)
    req.generated = generated
    req.prefilled = req.target = prompt
    req.swapped_kv = prompt + generated - 1
    req.status = "swapped"
    st.swapped.append((req.arrival_s, req.id, req))
    st.swap_blocks_free -= st.kv.blocks_for(req.swapped_kv)
    return req


# -- continuous (vLLM v0 without chunking) --------------------------------------------------


def test_continuous_admits_first_come_first_served_within_the_token_budget():
    """Budget 1000 tokens, three 400-token prompts queued, 100 free blocks:
    the first two (800 tokens) fit, the third would make 1200. Each takes
    ceil(400/16) = 25 blocks and is stamped with the clock's time."""
    st, s = make("continuous", blocks=100, budget=1000, now=2.5)
    a, b, c = queued(st, 0, 400), queued(st, 1, 400), queued(st, 2, 400)
    assert s.plan() == Plan(prefill=[(a, 400), (b, 400)])
    assert list(st.waiting) == [c] and list(st.prefilling.values()) == [a, b]
    assert st.kv.free == 50 and st.in_flight == 2
    assert a.status == "prefilling" and a.first_scheduled_s == 2.5 and c.first_scheduled_s != c.first_scheduled_s


def test_continuous_prefill_step_pauses_the_running_set():
    """One request decoding, one 64-token prompt queued: the step prefills
    the prompt alone (decode=False); the decoder holds its 3 blocks, the new
    one takes 4 of the 100."""
    st, s = make("continuous", blocks=100)
    d = decoding(st, 0, prompt=32, generated=5)  # 36 entries: 3 blocks
    w = queued(st, 1, 64)
    assert s.plan() == Plan(prefill=[(w, 64)], decode=False)
    assert st.kv.free == 100 - 3 - 4 and d.blocks == 3 and list(st.running.members.values()) == [d]


def test_continuous_decode_step_gives_a_block_to_whoever_starts_one():
    """Nothing queued, two decoders: one with 32 entries (its next token
    starts block 3), one with 20 (block 2 still has room). The step decodes
    both and takes exactly one block: 10 - 4 held - 1 = 5 free."""
    st, s = make("continuous", blocks=10)
    a = decoding(st, 0, prompt=32, generated=1)
    b = decoding(st, 1, prompt=20, generated=1)
    assert s.plan() == Plan(decode=True)
    assert (st.running.blocks_held(a), st.running.blocks_held(b), st.kv.free) == (3, 2, 5)


def test_the_shared_decode_only_plan_cannot_be_changed():
    """Every decode-only step of the continuous policy returns one shared plan: equal to Plan(decode=True),
    and no one can set a field of it or add a prefill to it (which would reach every later step)."""
    import pytest

    from simulator.scheduling.base import DECODE_ONLY

    st, s = make("continuous", blocks=10)
    decoding(st, 0, prompt=20, generated=1)
    assert s.plan() is DECODE_ONLY and DECODE_ONLY == Plan(decode=True) and DECODE_ONLY != Plan()
    with pytest.raises(AttributeError, match="shared by every decode-only step"):
        DECODE_ONLY.padded_seqs = 1
    with pytest.raises(AttributeError):
        DECODE_ONLY.prefill.append((None, 1))  # type: ignore[attr-defined]
    assert DECODE_ONLY == Plan(decode=True)


def test_continuous_admission_stops_at_max_batch_size():
    """max_batch_size 3 with two requests decoding: one of the three queued
    16-token prompts joins, the other two wait."""
    st, s = make("continuous", blocks=100, batch_size=3)
    decoding(st, 0, 16, 2)
    decoding(st, 1, 16, 2)
    w = [queued(st, 2 + i, 16) for i in range(3)]
    assert s.plan() == Plan(prefill=[(w[0], 16)])
    assert list(st.waiting) == w[1:]


def test_continuous_watermark_holds_the_head_back_and_the_batch_decodes():
    """100 blocks, watermark 10%: 10 blocks must stay free. A decoder holds
    2 (17 entries: no new block this step), so 98 are free; the head needs
    89 (1424 tokens), leaving 9 < 10. It waits; the running set decodes."""
    st, s = make("continuous", blocks=100, watermark=0.1)
    decoding(st, 0, 16, 2)
    w = queued(st, 1, 16 * 89)
    assert s.plan() == Plan(decode=True)
    assert list(st.waiting) == [w] and st.kv.free == 98


def test_continuous_idle_replica_still_respects_the_watermark():
    """Nothing running, watermark 50%, head needs 60 of 100 blocks: vLLM v0
    keeps the watermark even when idle, so there is no step at all."""
    st, s = make("continuous", blocks=100, watermark=0.5)
    w = queued(st, 0, 16 * 60)
    assert s.plan() is None
    assert list(st.waiting) == [w] and st.kv.free == 100


def test_continuous_recomputed_request_longer_than_the_budget_runs_alone():
    """Budget 100. The head was preempted after 40 tokens of an 80-token
    prompt, so it must recompute 120 tokens - more than the budget. It is
    prefilled alone (8 blocks); the 10-token prompt behind it waits."""
    st, s = make("continuous", blocks=100, budget=100)
    r = Request(0, 0.0, 80, 100)
    r.generated, r.target, r.redo = 40, 120, 119
    st.waiting.appendleft(r)
    q = queued(st, 1, 10)
    assert s.plan() == Plan(prefill=[(r, 120)])
    assert list(st.waiting) == [q] and r.blocks == 8


# -- preemption ---------------------------------------------------------------------------


def _two_decoders_one_block(mode, swap_blocks=0):
    """Two 32-token prompts right after their first token (2 blocks each, both
    start block 3 in this step) and 5 blocks in all: 1 free for 2 needers."""
    st, s = make("continuous", blocks=5, mode=mode, swap_blocks=swap_blocks)
    old = decoding(st, 0, 32, 1, arrival=0.0)
    new = decoding(st, 1, 32, 1, arrival=1.0)
    assert st.kv.free == 1
    return st, s, old, new


def test_recompute_preemption_evicts_the_newest_and_requeues_it_at_the_head():
    """The later arrival loses its 2 blocks and returns to the queue head -
    ahead of a queued 160-token prompt (10 blocks: never fits in 5) - to
    recompute prompt + its 1 token (33) with 32 entries to redo; the older
    takes one block (free: 1 + 2 - 1 = 2) and decodes alone."""
    st, s, old, new = _two_decoders_one_block("recompute")
    q = queued(st, 2, 16 * 10)
    assert s.plan() == Plan(decode=True)
    assert list(st.running.members.values()) == [old] and list(st.waiting) == [new, q]
    assert (new.target, new.redo, new.prefilled, new.blocks, new.status) == (33, 32, 0, 0, "waiting")
    assert (st.running.blocks_held(old), st.kv.free, st.in_flight) == (3, 2, 1)
    assert new.preemptions == 1 and st.preempted == 1 and st.swap_bytes == 0.0


def test_swap_preemption_parks_the_newest_in_host_memory():
    """Same squeeze with swap mode and 8 host blocks: the newest's 2 blocks
    (32 entries) go to host memory (6 left), 2 x 1600 bytes to copy; the
    queue stays empty."""
    st, s, old, new = _two_decoders_one_block("swap", swap_blocks=8)
    assert s.plan() == Plan(decode=True)
    assert st.swapped == [(1.0, 1, new)] and not st.waiting
    assert (new.swapped_kv, new.swaps, new.status, new.blocks) == (32, 1, "swapped", 0)
    assert st.swap_blocks_free == 6 and st.swap_bytes == 2 * BLOCK_BYTES and st.preempted == 1


def test_swap_preemption_falls_back_to_recompute_without_host_room():
    """Swap mode but only 1 host block for a 2-block request: it is
    recomputed instead (queue head, nothing swapped, no swap traffic)."""
    st, s, old, new = _two_decoders_one_block("swap", swap_blocks=1)
    assert s.plan() == Plan(decode=True)
    assert not st.swapped and list(st.waiting) == [new] and new.swaps == 0
    assert st.swap_blocks_free == 1 and st.swap_bytes == 0.0 and new.redo == 32


def test_a_part_prefilled_victim_is_recomputed_even_in_swap_mode():
    """Chunked prefill, 4 blocks: a decoder (2 blocks, needs a 3rd) and a
    later-arriving prompt of 32 tokens, 16 computed (2 blocks); none free.
    The partial prompt is the newest, so it goes - recomputed, not swapped -
    and cannot come back this step (needs 2, 1 free above the decoder's new block)."""
    st, s = make("chunked_prefill", blocks=4, mode="swap", swap_blocks=100)
    a = decoding(st, 0, 32, 1)
    p = part_prefilled(st, 1, 32, done=16)
    assert st.kv.free == 0 and st.prefill_kv == 16
    assert s.plan() == Plan(decode=True)
    assert list(st.waiting) == [p] and not st.swapped and not st.prefilling
    assert (p.redo, p.prefilled, p.target, p.swaps) == (16, 0, 32, 0)
    assert (st.running.blocks_held(a), st.kv.free, st.prefill_kv, st.swap_blocks_free) == (3, 1, 0, 100)


def test_continuous_swaps_back_in_before_admitting_anyone():
    """A request swapped out with 32 entries (2 blocks) and a queued prompt,
    10 free blocks: it returns (2 blocks + 1 to spare fit), takes its next
    block at once and decodes; the queued prompt is not admitted this step."""
    st, s = make("continuous", blocks=10, swap_blocks=8)
    r = swapped_out(st, 0, 32, 1)
    w = queued(st, 1, 16)
    assert s.plan() == Plan(decode=True)
    assert list(st.running.members.values()) == [r] and list(st.waiting) == [w]
    assert (st.running.blocks_held(r), st.kv.free, st.swap_blocks_free, st.swap_bytes, st.in_flight) == (3, 7, 8, 2 * BLOCK_BYTES, 1)


def test_a_swapped_request_that_cannot_return_blocks_the_queue():
    """The swapped request needs 2 blocks plus 1 to spare, only 2 are free:
    it stays out, and the queued 16-token prompt (1 block) may not take its
    memory. Nothing runs."""
    st, s = make("continuous", blocks=2, swap_blocks=8)
    r = swapped_out(st, 0, 32, 1)
    w = queued(st, 1, 16)
    assert s.plan() is None
    assert st.swapped == [(0.0, 0, r)] and list(st.waiting) == [w] and st.kv.free == 2


# -- multi-step scheduling (vLLM V0 --num-scheduler-steps) --------------------------------


def _decode_step(st):
    """The running set's members decode one token (what the replica applies after a decode step)."""
    st.running.decode_done(0.0)


def test_multi_step_group_admits_nobody_until_its_last_step():
    """multi_step=4, one request decoding: the first decode step opens a group
    of 4 (clock 0 -> 4). A prompt queued after its first step waits through
    steps 2-4, which decode only; the plan after the 4th step admits it."""
    st, s = make("continuous", blocks=100, multi_step=4)
    decoding(st, 0, prompt=32, generated=1, output=100)
    assert s.plan() == Plan(decode=True)
    _decode_step(st)
    w = queued(st, 1, 64)
    for _ in range(3):  # steps 2, 3 and 4 of the group
        assert s.plan() == Plan(decode=True) and list(st.waiting) == [w]
        _decode_step(st)
    assert s.plan() == Plan(prefill=[(w, 64)])


def test_multi_step_one_admits_at_every_step():
    """The default (multi_step=1): the same queued prompt is admitted at the very next plan."""
    st, s = make("continuous", blocks=100)
    decoding(st, 0, prompt=32, generated=1, output=100)
    assert s.plan() == Plan(decode=True)
    _decode_step(st)
    w = queued(st, 1, 64)
    assert s.plan() == Plan(prefill=[(w, 64)])


def test_multi_step_group_ends_when_its_last_request_does():
    """A group whose only member finishes after its 2nd of 8 steps: the next
    plan is a scheduling decision again and admits the queued prompt, whose
    first decode step opens a group of 8 of its own (not the old one's rest)."""
    st, s = make("continuous", blocks=100, multi_step=8)
    decoding(st, 0, prompt=32, generated=1, output=3)  # two tokens to go
    assert s.plan() == Plan(decode=True)
    _decode_step(st)
    w = queued(st, 1, 64)
    assert s.plan() == Plan(decode=True)
    done, _ = st.running.decode_done(0.0)
    for req in done:
        st.running.remove(req)
    assert not st.running
    assert s.plan() == Plan(prefill=[(w, 64)])
    st.prefilling.pop(w.id)  # its prompt done: it decodes from the next step
    st.running.add(w, 64)
    assert s.plan() == Plan(decode=True) and s.group_end == st.running.clock + 8
    later = queued(st, 2, 64)
    for _ in range(7):  # the new group's steps 1-7: the queue waits
        _decode_step(st)
        assert s.plan() == Plan(decode=True) and list(st.waiting) == [later]
    _decode_step(st)
    assert s.plan() == Plan(prefill=[(later, 64)])


# -- chunked prefill ------------------------------------------------------------------------


def test_chunked_decodes_first_and_fills_the_rest_of_the_budget_with_a_chunk():
    """Budget 512, two decoders (1 token each), a 1000-token prompt queued:
    the step decodes both and prefills 510 tokens of the prompt, which took
    all ceil(1000/16) = 63 blocks at admission."""
    st, s = make("chunked_prefill", blocks=200, budget=512)
    decoding(st, 0, 16, 2)
    decoding(st, 1, 16, 2)
    w = queued(st, 2, 1000)
    assert s.plan() == Plan(prefill=[(w, 510)], decode=True)
    assert w.blocks == 63 and st.kv.free == 200 - 4 - 63 and list(st.prefilling.values()) == [w]


def test_chunked_finishes_a_partial_prompt_before_starting_a_new_one():
    """Budget 512, nothing decoding: a 1000-token prompt with 510 computed
    needs 490 more; the 22 tokens left go to the next 300-token prompt."""
    st, s = make("chunked_prefill", blocks=200, budget=512)
    p = part_prefilled(st, 0, 1000, done=510)
    w = queued(st, 1, 300)
    assert s.plan() == Plan(prefill=[(p, 490), (w, 22)])
    assert w.blocks == 19 and not st.waiting


def test_chunked_head_of_line_blocking_keeps_first_come_first_served():
    """98 free blocks; the head needs 99, a small prompt behind it needs 1.
    Neither is admitted (FCFS: no skipping the head); the decoder decodes."""
    st, s = make("chunked_prefill", blocks=100)
    decoding(st, 0, 16, 2)
    big, small = queued(st, 1, 16 * 99), queued(st, 2, 16)
    assert s.plan() == Plan(decode=True)
    assert list(st.waiting) == [big, small] and st.kv.free == 98


def test_chunked_idle_replica_admits_its_head_below_the_watermark():
    """Watermark 50% of 100 blocks, head needs 60: a busy replica would wait,
    but an idle one takes it (the blocks are free), whole prompt in one chunk."""
    st, s = make("chunked_prefill", blocks=100, watermark=0.5)
    w = queued(st, 0, 16 * 60)
    assert s.plan() == Plan(prefill=[(w, 960)])
    assert st.kv.free == 40


# -- in-flight batching (TensorRT-LLM) ------------------------------------------------------


def test_inflight_adds_whole_prompts_to_the_decode_step_while_they_fit():
    """Budget 1000, two decoders: 998 tokens left. The 500-token prompt joins
    whole; the 600-token one does not fit in the 498 left and waits (no chunking)."""
    st, s = make("inflight", blocks=200, budget=1000)
    decoding(st, 0, 16, 2)
    decoding(st, 1, 16, 2)
    a, b = queued(st, 2, 500), queued(st, 3, 600)
    assert s.plan() == Plan(prefill=[(a, 500)], decode=True)
    assert list(st.waiting) == [b]


def test_inflight_runs_an_over_budget_recompute_alone_on_an_idle_replica():
    """Budget 100, nothing running, head must recompute 120 tokens: it runs
    alone (so it always finishes). With a decoder present it would wait."""
    st, s = make("inflight", blocks=100, budget=100)
    r = Request(0, 0.0, 80, 100)
    r.generated, r.target = 40, 120
    st.waiting.append(r)
    assert s.plan() == Plan(prefill=[(r, 120)])

    st, s = make("inflight", blocks=100, budget=100)
    st.waiting.append(r2 := Request(1, 1.0, 120, 100))
    decoding(st, 0, 16, 2)
    assert s.plan() == Plan(decode=True) and list(st.waiting) == [r2]


# -- static batching ---------------------------------------------------------------------------


def test_static_waits_for_a_full_batch_or_the_oldest_requests_deadline():
    """Batch size 4, max wait 0.5 s: two requests (arrived 0.0 and 0.1) at
    t=0.2 -> no step, wake up at 0.5. At t=0.5 both go, no padding (equal prompts)."""
    st, s = make("static", blocks=100, batch_size=4, kv_cls=ReserveMax, max_model_len=256, now=0.2)
    a, b = queued(st, 0, 64, arrival=0.0), queued(st, 1, 64, arrival=0.1)
    assert s.plan() is None and s.next_wakeup == 0.5
    st.clock.now = 0.5
    assert s.plan() == Plan(prefill=[(a, 64), (b, 64)])
    assert s.next_wakeup is None and a.blocks == b.blocks == 16


def test_static_full_queue_starts_at_once_with_reservations_and_padding():
    """Batch size 4 and four queued: no waiting. Each reserves max_model_len
    512 = 32 blocks, so 3 of 100 fit. Prompts 100, 300, 50 pad to 300:
    450 padding tokens and 3*300*301/2 - (5050 + 45150 + 1275) = 83975 pairs."""
    st, s = make("static", blocks=100, batch_size=4, kv_cls=ReserveMax, max_model_len=512)
    a, b, c, d = (queued(st, i, n) for i, n in enumerate((100, 300, 50, 200)))
    assert s.plan() == Plan(prefill=[(a, 100), (b, 300), (c, 50)], padding_tokens=450, padding_pairs=83975.0)
    assert list(st.waiting) == [d] and st.kv.free == 4


def test_static_batch_decodes_on_with_its_finished_members_as_padding():
    """One member still decoding, two finished ones held with 40 and 60 KV
    entries: the decode step pads 2 sequences with 100 + 2 context tokens. A
    new arrival does not join mid-batch."""
    st, s = make("static", blocks=100, kv_cls=ReserveMax, max_model_len=256)
    decoding(st, 0, 16, 2)
    st.held = [(Request(1, 1.0, 16, 25), 40), (Request(2, 2.0, 16, 45), 60)]
    st.held_kv = 100
    w = queued(st, 3, 16)
    assert s.plan() == Plan(decode=True, padded_seqs=2, padded_ctx=102)
    assert list(st.waiting) == [w]


def test_every_allocation_mode_counts_blocks_as_its_reservation_says():
    """blocks_to_hold and ever_fits: the blocks of max(tokens, reservation) beyond those held, in every mode
    (inlined where a mode neither reserves nor counts its own way: ``reserves``)."""
    from simulator.memory import ALLOCATIONS
    from simulator.memory.paged import BlockManager as Base

    for name in ALLOCATIONS.names():
        cls = ALLOCATIONS.get(name)
        kv = cls(1000, BS, max_model_len=4096)
        assert cls.reserves == (cls.reservation is not Base.reservation or cls.blocks_for is not Base.blocks_for)
        for prompt, output, held, tokens in ((1, 1, 0, 0), (17, 5, 0, 17), (100, 900, 3, 100), (4000, 96, 300, 4000)):
            req = Request(0, 0.0, prompt, output)
            req.blocks = held
            want = kv.blocks_for(max(tokens, kv.reservation(req)))  # (the general rule, as each mode defines it)
            assert kv.blocks_to_hold(req, tokens) == max(want - held, 0), (name, prompt, tokens)
            fits = kv.blocks_for(max(prompt + output - 1, kv.reservation(req))) <= kv.total - kv.watermark_blocks
            assert kv.ever_fits(req) == fits, name
