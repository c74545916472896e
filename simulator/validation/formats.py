"""Every recording reader (each its own module, registered on import), and :func:`read_recording`."""

from __future__ import annotations

from pathlib import Path

from simulator.validation import genai_perf, llmperf, plain, sglang, vllm  # noqa: F401
from simulator.validation.recording import FORMATS, Recording, RecordingError  # noqa: E402


def read_recording(path: str | Path, fmt: str | None = None) -> Recording:
    """The recording in ``path``, read as ``fmt`` (a FORMATS name) or as the first format that recognises it."""
    p = Path(path)
    if not p.is_file():
        raise RecordingError(f"{p}: no such file.")
    if fmt is not None:
        if fmt not in FORMATS:
            raise RecordingError(f"--format {fmt} is not known; choose one of: {', '.join(sorted(FORMATS))}.")
        if not FORMATS[fmt].sniff(p):
            seen = next((f.name for f in FORMATS.values() if f.sniff(p)), None)
            looks = f"; it looks like {seen} (drop --format to read it so)" if seen else ""
            raise RecordingError(f"{p}: not a {fmt} result ({FORMATS[fmt].summary}){looks}.")
        return FORMATS[fmt].read(p).check()
    for f in FORMATS.values():
        if f.sniff(p):
            return f.read(p).check()
    known = "; ".join(f"{f.name} ({f.summary})" for f in FORMATS.values())
    raise RecordingError(f"{p}: not a recording servesim recognises; the formats are: {known}.")
