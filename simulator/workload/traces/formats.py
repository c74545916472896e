"""The trace formats servesim reads: each declares its columns and how to recognise itself.

Supported formats (``workload.trace.format``; ``auto`` detects them from the
extension and the header or first record):

``azure``     Azure LLM inference trace CSV, 2023 and 2024: ``TIMESTAMP``
              (date-time), ``ContextTokens``, ``GeneratedTokens``.
``burstgpt``  BurstGPT CSV: ``Timestamp`` (s), ``Request tokens``,
              ``Response tokens`` (``Model`` is kept as the tenant, ``Session
              ID`` as the session when present).
``mooncake``  Mooncake JSONL: ``timestamp`` (ms), ``input_length``,
              ``output_length``, ``hash_ids`` (one id per 512-token block).
``servesim``  servesim's own schema, Parquet or CSV: ``arrival_s``,
              ``prompt_tokens``, ``output_tokens``; optional ``tenant``,
              ``tier``, ``priority``, ``session_id``, ``prefix_ids``. Every
              other format converts into it (:func:`write`, ``servesim-trace
              convert``).

Each :class:`TraceFormat` in :data:`REGISTRY` names, per role (``arrival``,
``prompt``, ``output``, ``tenant``, ...), the file's own column or key and the
kind of cell it holds (``datetime``, ``seconds``, ``count``, ``label``, ...;
the readers convert by kind). Detection (:func:`detect`) asks every format
that comes in the file's kind (CSV, JSONL, Parquet) how many of its required
columns the header or first record has (:meth:`TraceFormat.sniff`); the
"supported formats" line of every error is written from the registry too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from simulator.errors import ConfigError
from simulator.workload.traces.files import _csv_header, _existing, _first_record, _kind_of
from simulator.workload.traces.model import _fail

#: role -> (the file's column or key, kind of cell)
Columns = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class TraceFormat:
    """One trace format: the files it comes in and the columns it holds."""

    name: str
    files: str  # how messages name its files: "CSV", "Parquet or CSV"
    kinds: tuple[str, ...]  # the file kinds it comes in: csv, jsonl, parquet
    required: Columns
    optional: Columns = field(default_factory=dict)
    listed: tuple[str, ...] = ()  # optional roles that "supported formats" names too

    def summary(self) -> str:
        """``azure (CSV: TIMESTAMP, ContextTokens, GeneratedTokens)``."""
        cols = [c for c, _ in self.required.values()] + [self.optional[r][0] for r in self.listed]
        return f"{self.name} ({self.files}: {', '.join(cols)})"

    def sniff(self, kind: str, head) -> int:
        """How many required columns ``head`` (a CSV header, a JSONL record, a Parquet schema) has."""
        if kind not in self.kinds:
            return 0
        if kind == "parquet":
            return len(self.required)
        if kind == "jsonl" and not isinstance(head, dict):
            return 0
        names = set(head)
        return sum(c in names for c, _ in self.required.values())


REGISTRY: dict[str, TraceFormat] = {
    f.name: f
    for f in (
        TraceFormat(
            "azure",
            "CSV",
            ("csv",),
            {
                "arrival": ("TIMESTAMP", "datetime"),
                "prompt": ("ContextTokens", "count"),
                "output": ("GeneratedTokens", "count"),
            },
        ),
        TraceFormat(
            "burstgpt",
            "CSV",
            ("csv",),
            {
                "arrival": ("Timestamp", "seconds"),
                "prompt": ("Request tokens", "count"),
                "output": ("Response tokens", "count"),
            },
            {"tenant": ("Model", "label"), "session": ("Session ID", "label")},
        ),
        TraceFormat(
            "mooncake",
            "JSONL",
            ("jsonl",),
            {
                "arrival": ("timestamp", "milliseconds"),
                "prompt": ("input_length", "count"),
                "output": ("output_length", "count"),
            },
            {"prefix": ("hash_ids", "ids")},
            listed=("prefix",),
        ),
        TraceFormat(
            "servesim",
            "Parquet or CSV",
            ("parquet", "csv"),
            {
                "arrival": ("arrival_s", "seconds"),
                "prompt": ("prompt_tokens", "count"),
                "output": ("output_tokens", "count"),
            },
            {
                "tenant": ("tenant", "label"),
                "tier": ("tier", "name"),
                "priority": ("priority", "int"),
                "session": ("session_id", "label"),
                "prefix": ("prefix_ids", "ids"),
                "block": ("prefix_block_tokens", "const"),
            },
        ),
    )
}
FORMATS = tuple(REGISTRY)


def _of_kind(kind: str) -> list[TraceFormat]:
    return [f for f in REGISTRY.values() if kind in f.kinds]


def _listing(names: list[str]) -> str:
    """``azure, burstgpt or servesim``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _supported() -> str:
    return "supported formats: " + ", ".join(f.summary() for f in REGISTRY.values())


def _check_name(fmt: str) -> None:
    """A :class:`ConfigError` unless ``fmt`` is ``auto`` or a registered format."""
    if fmt not in ("auto", *FORMATS):
        raise ConfigError(
            f"workload.trace.format={fmt!r} is not a known trace format; choose one of: auto, {', '.join(FORMATS)}."
        )


def _roles(p, fmt: str, names: list[str]) -> Columns:
    """Column roles of ``fmt`` present in ``names``; missing required columns are an error."""
    spec = REGISTRY[fmt]
    missing = [c for c, _ in spec.required.values() if c not in names]
    if missing:
        raise _fail(
            p,
            f"missing required column(s) {', '.join(missing)} for format {fmt}; found: {', '.join(names) or 'none'}.",
        )
    roles = dict(spec.required)
    roles.update({r: col for r, col in spec.optional.items() if col[0] in names})
    return roles


def _best_csv_format(header: list[str], path) -> str:
    scores = {f.name: f.sniff("csv", header) for f in _of_kind("csv")}
    full = [f for f, s in scores.items() if s == len(REGISTRY[f].required)]
    if len(full) > 1:
        raise _fail(
            path,
            f"the header matches more than one format ({', '.join(full)}); set workload.trace.format (servesim-trace: --format) to one of them; {_supported()}.",
        )
    if full:
        return full[0]
    best = max(scores.values())
    partial = [f for f, s in scores.items() if s == best]
    if best > 0 and len(partial) == 1:
        return partial[0]  # read() then names the missing columns
    raise _fail(
        path,
        f"cannot tell the trace format from its CSV header (columns: {', '.join(header) or 'none'}); set workload.trace.format (servesim-trace: --format); {_supported()}.",
    )


def _jsonl_format(p, gz: bool) -> str:
    first = _first_record(p, gz)
    if first is None:
        raise _fail(p, "the file is empty (no rows).")
    line_no, line = first
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise _fail(p, f"malformed JSON ({exc.msg} at column {exc.colno}).", f"line {line_no}") from None
    scores = [(f.sniff("jsonl", obj), f.name) for f in _of_kind("jsonl")]
    best = max(s for s, _ in scores)
    if best > 0:
        return next(name for s, name in scores if s == best)
    keys = ", ".join(obj) if isinstance(obj, dict) else type(obj).__name__
    raise _fail(p, f"cannot tell the trace format from its first record (keys: {keys}); {_supported()}.")


def detect(path: str | os.PathLike) -> str:
    """The format of ``path``, from its extension and its header or first record."""
    p = _existing(path)
    kind, gz = _kind_of(p)
    if kind == "parquet":
        return _of_kind("parquet")[0].name
    if kind == "jsonl":
        return _jsonl_format(p, gz)
    if kind == "csv":
        header = _csv_header(p, gz)
        if header is None:
            raise _fail(p, "the file is empty (no rows).")
        return _best_csv_format(header, p)
    raise _fail(
        p,
        f"cannot tell the trace format from the file name or its first bytes; set workload.trace.format (servesim-trace: --format); {_supported()}.",
    )
