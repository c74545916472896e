"""Opening a trace file: what kind it is, gzip, text decoding, and what reading can raise.

A file's kind (CSV, JSONL or Parquet, gzipped or not) comes from its name
first, then from its first bytes (:func:`_kind_of`). Text is decoded as UTF-8
one line at a time (:func:`_lines`), so a binary file or another encoding is
an error naming the line, not a crash deep inside a parser. Everything
reading can raise (undecodable bytes, a corrupt or truncated gzip stream, an
I/O error) becomes one :class:`ConfigError` naming the file (:func:`_reading`).
"""

from __future__ import annotations

import collections
import csv
import gzip
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from simulator.errors import ConfigError
from simulator.workload.traces.model import _fail


def _existing(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(f"trace file {str(path)!r} does not exist (relative paths start at {os.getcwd()}).")
    if p.is_dir():
        raise ConfigError(f"trace path {str(path)!r} is a directory, not a trace file.")
    return p


def _kind_of(path: Path) -> tuple[str, bool]:
    """(``csv`` | ``jsonl`` | ``parquet`` | ``?``, gzipped) from the file name, then its first bytes."""
    name = path.name.lower()
    gz = name.endswith(".gz")
    if gz:
        name = name[:-3]
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if ext == "csv":
        return "csv", gz
    if ext in ("jsonl", "json", "ndjson"):
        return "jsonl", gz
    if ext in ("parquet", "pq") and not gz:
        return "parquet", gz
    with _reading(path, gz), open(path, "rb") as fh:
        head = fh.read(4)
    if head == b"PAR1":
        return "parquet", False
    if head[:2] == b"\x1f\x8b":
        gz = True
        with _reading(path, gz), gzip.open(path, "rb") as fh:
            head = fh.read(64)
    text = head.lstrip(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return "jsonl", gz
    return ("csv" if b"," in head or text[:1].isalpha() else "?"), gz


def _open_bytes(path: Path, gz: bool):
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _lines(path: Path, gz: bool) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of each line, decoded as UTF-8 one line at a time.

    A line that is not UTF-8 (a binary file, another encoding) and a corrupt or
    truncated gzip stream are a :class:`ConfigError` naming the file (and the line).
    """
    with _reading(path, gz), _open_bytes(path, gz) as fh:
        for n, raw in enumerate(fh, start=1):
            try:
                yield n, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _not_text(path, exc, f"line {n}") from None


def _not_text(path, exc: UnicodeDecodeError, where: str | None = None) -> ConfigError:
    byte = exc.object[exc.start : exc.start + 1].hex()
    return _fail(
        path,
        f"is not UTF-8 text (byte 0x{byte} cannot be decoded; is it a binary file, or saved in another encoding?); "
        "traces are UTF-8 CSV or JSONL, optionally gzipped, or Parquet.",
        where,
    )


_GZIP_ERRORS = (EOFError, zlib.error, gzip.BadGzipFile)


@contextmanager
def _reading(path, gz: bool = False):
    """Turn what reading ``path`` can raise (undecodable bytes, a corrupt gzip stream, I/O errors) into one ConfigError."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise _not_text(path, exc) from None
    except _GZIP_ERRORS as exc:
        raise _corrupt_gzip(path, exc) from None
    except OSError as exc:
        if gz and _looks_like_gzip_error(exc):
            raise _corrupt_gzip(path, exc) from None
        raise _fail(path, f"cannot be read ({(exc.strerror or str(exc)).rstrip('.')}).") from None


def _looks_like_gzip_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(w in text for w in ("gzip", "compress", "inflate", "zlib", "truncated"))


def _corrupt_gzip(path, exc: Exception) -> ConfigError:
    if "not a gzip" in str(exc).lower():  # (BadGzipFile also reports a failed CRC: that is corruption)
        what = "is named .gz (or starts like gzip) but is not valid gzip data"
    else:
        what = "is a corrupt or truncated gzip file"
    detail = str(exc).splitlines()[0].rstrip(".") if str(exc) else type(exc).__name__
    return _fail(path, f"{what} ({detail}); check the download or decompress it to see how far it reads.")


def _csv_header(path: Path, gz: bool) -> list[str] | None:
    for _, line in _lines(path, gz):
        for part in line.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if part.strip():  # (a file with bare \r line ends is one binary "line")
                return next(csv.reader([part]))
    return None


def _first_record(path: Path, gz: bool) -> tuple[int, str] | None:
    for n, line in _lines(path, gz):
        if line.strip():
            return n, line
    return None


def _check_text(p: Path, gz: bool) -> None:
    """Raise the 'not UTF-8 text' error at the first line that does not decode (error path only)."""
    collections.deque(_lines(p, gz), maxlen=0)  # read every line for its decoding error; keep none


def _find_line(p: Path, gz: bool, text: str) -> int | None:
    """The line holding ``text`` (error path only)."""
    for n, line in _lines(p, gz):
        if line.rstrip("\r\n") == text:
            return n
    return None
