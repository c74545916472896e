"""A cache of composed configs, so a repeated ``servesim`` command line skips hydra's composition.

Composing the scenario tree costs about a tenth of a second; a command line
seen before (same overrides, same working directory, same files under every
config search path, same servesim, hydra and omegaconf) reads its composed
config back in about a millisecond. Only the composition is cached: the
scenario is validated, and hydra sets up the run directory, logging and
``.hydra/`` files, on every run as before.

The entries live in ``$SERVESIM_CACHE_DIR`` (default
``$XDG_CACHE_HOME/servesim/config``, i.e. ``~/.cache/servesim/config``), one
pickle per command line, the oldest pruned past :data:`MAX_ENTRIES`. Set
``SERVESIM_NO_CACHE=1`` to compose every time. A directory another user could
write to is never read. Any failure to read or write an entry just composes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: entries kept; the least recently written go first
MAX_ENTRIES = 128
_MAGIC = b"servesim-config-cache-1\n"


def enabled() -> bool:
    return not os.environ.get("SERVESIM_NO_CACHE")


def cache_dir() -> Path:
    explicit = os.environ.get("SERVESIM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "servesim" / "config"


def key(config_name: str, overrides: Iterable[str], task_name: str, search_path: Iterable[tuple[str, str]]) -> str:
    """A digest of everything a composition reads: the arguments, the working directory
    (``hydra.runtime.cwd``), the versions, and the name, size and mtime of every file
    under each config search path, the hydra plugins and the schema module."""
    import hydra
    import omegaconf

    from simulator.version import __version__

    search_path = list(search_path)
    h = hashlib.sha256()
    for part in (
        _MAGIC.decode(),
        sys.version,
        __version__,
        hydra.__version__,
        omegaconf.__version__,
        config_name,
        task_name,
        os.getcwd(),
        repr(search_path),
        repr(list(overrides)),
    ):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    roots: list[str] = []
    for _provider, path in search_path:
        if path.startswith("pkg://"):
            roots += _package_dirs(path.removeprefix("pkg://"))
        elif path.startswith("file://"):
            roots.append(path.removeprefix("file://"))
    roots += _package_dirs("hydra_plugins")  # the plugins' structured configs and search paths
    for root in roots:
        h.update(f"root {root}\0".encode("utf-8", "surrogateescape"))
        _stamp_tree(h, root)
    _stamp_file(h, _SCHEMA_FILE)  # base_config (whether or not it is imported yet)
    return h.hexdigest()


_SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.py")


def _package_dirs(package: str) -> list[str]:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return [p for p in spec.submodule_search_locations if os.path.isdir(p)]


def _stamp_tree(h: Any, root: str) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            _stamp_file(h, os.path.join(dirpath, name))


def _stamp_file(h: Any, path: str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        h.update(f"{path} missing\0".encode("utf-8", "surrogateescape"))
        return
    h.update(f"{path} {st.st_size} {st.st_mtime_ns}\0".encode("utf-8", "surrogateescape"))


def _private(directory: Path) -> bool:
    """The directory is ours and nobody else can write into it."""
    try:
        st = os.stat(directory)
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return owner_ok and not st.st_mode & 0o022


def load(digest: str) -> Any | None:
    """The config stored under ``digest``, or None."""
    from omegaconf import OmegaConf

    if not enabled():
        return None
    directory = cache_dir()
    if not _private(directory):
        return None
    try:
        data = (directory / f"{digest}.pkl").read_bytes()
        if not data.startswith(_MAGIC):
            return None
        config = pickle.loads(data[len(_MAGIC) :])  # noqa: S301  (our own private directory, checked above)
        OmegaConf.clear_cache(config)  # (stored without resolved values; this only makes sure)
        return config
    except Exception:  # a missing, partial or stale entry: compose instead
        return None


def store(digest: str, config: Any) -> None:
    """Keep ``config`` under ``digest`` (best effort)."""
    from omegaconf import OmegaConf

    if not enabled():
        return
    directory = cache_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(directory):
            return
        # without the values cached resolvers computed while composing (``${now:}`` in hydra.run.dir):
        # each run resolves its own
        resolved = OmegaConf.get_cache(config)
        OmegaConf.clear_cache(config)
        try:
            data = _MAGIC + pickle.dumps(config, protocol=pickle.HIGHEST_PROTOCOL)
        finally:
            OmegaConf.set_cache(config, resolved)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".pkl")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, directory / f"{digest}.pkl")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _prune(directory)
    except Exception:
        return


def _prune(directory: Path) -> None:
    entries = []
    for entry in os.scandir(directory):
        if entry.name.endswith(".pkl") and not entry.name.startswith(".tmp-"):
            try:
                entries.append((entry.stat().st_mtime_ns, entry.path))
            except OSError:
                continue
    for _, path in sorted(entries)[: max(0, len(entries) - MAX_ENTRIES)]:
        with contextlib.suppress(OSError):  # another servesim pruned it first
            os.unlink(path)
