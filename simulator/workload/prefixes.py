"""Synthetic prefix reuse: shared system prompts and multi-turn sessions.

``workload.prefix.system_prompts`` distinct system prompts of
``workload.prefix.system_tokens`` tokens each; every request picks one
(uniformly, from its own random stream) and its prompt becomes the system
prompt followed by the sampled prompt.

``workload.prefix.sessions`` conversations run side by side with
``workload.prefix.turns`` turns each: requests are dealt to sessions in
arrival order, and a turn's prompt holds the conversation so far (the earlier
turns' prompts and answers) followed by its new message. A session that has
had all its turns starts a new conversation.

Each request gets chained prefix ids, one per ``GRANULARITY`` tokens of its
prompt: equal ids at position k mean equal prompts up to the end of block k,
which is what the prefix cache keys on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

GRANULARITY = 16  # tokens per prefix id
_SYSTEM, _CONVERSATION, _PRIVATE = 1, 2, 3


def apply(cfg: ScenarioConfig, prompt: np.ndarray, output: np.ndarray) -> tuple[np.ndarray, list, np.ndarray | None]:
    """Prompts with their shared parts prepended, each request's prefix ids, and session labels.

    The labels (``conv-{n}``, one per conversation) let session-affinity
    routing and the requests table follow a conversation; None without sessions.
    """
    pf = cfg.workload.prefix
    n = len(prompt)
    system = np.zeros(n, dtype=np.int64)
    choice = np.full(n, -1, dtype=np.int64)
    if pf.system_prompts > 0:
        choice = stream(cfg.seed, "system_prompt").integers(0, pf.system_prompts, size=n)
        system[:] = pf.system_tokens
    sessions = pf.sessions if pf.sessions > 0 and pf.turns > 1 else 0
    new_prompt = prompt.astype(np.int64).copy()
    ids: list = []
    conv_labels = np.empty(n if sessions else 0, dtype=object)
    history: dict[int, int] = {}  # session -> (conversation number, tokens so far)
    for i in range(n):
        S = int(system[i])
        k = int(choice[i])
        conv = -1
        hist = 0
        if sessions:
            s = i % sessions
            turn = (i // sessions) % pf.turns
            number = i // (sessions * pf.turns)
            conv = number * sessions + s
            hist = history.get(s, 0) if turn else 0
            history[s] = hist + int(prompt[i]) + int(output[i])
            conv_labels[i] = f"conv-{conv}"
        total = S + hist + int(prompt[i])
        new_prompt[i] = total
        blocks = -(-total // GRANULARITY)
        row = []
        for b in range(blocks):
            end = (b + 1) * GRANULARITY
            if end <= S:  # inside the system prompt: shared by everyone who picked it
                row.append(hash((_SYSTEM, k, b)))
            elif conv >= 0:  # the conversation: history and this turn's message, which the next turn repeats
                row.append(hash((_CONVERSATION, k, conv, b)))
            else:
                row.append(hash((_PRIVATE, i, b)))
        ids.append(row)
    return new_prompt, ids, conv_labels if sessions else None
