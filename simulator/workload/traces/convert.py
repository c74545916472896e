"""Converting a trace into servesim's own schema (Parquet or CSV).

Every format converts into servesim's schema (:func:`write`, ``servesim-trace
convert``): ``arrival_s`` re-based to t=0, ``prompt_tokens``,
``output_tokens``, and whichever of ``tenant``, ``tier``, ``priority``,
``session_id`` and ``prefix_ids`` the trace has. Parquet keeps prefix ids as a
list column and the block size, source and first timestamp as schema metadata;
CSV writes prefix ids as space-separated integers beside a
``prefix_block_tokens`` column.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from simulator.errors import ConfigError
from simulator.workload.traces.model import Trace, _split, _take_lists, order


def write(trace: Trace, out: str | os.PathLike, *, sort: bool = False, sort_option: str = "sort=True") -> Path:
    """Write ``trace`` in servesim's schema (``.parquet`` or ``.csv``), re-based to t=0.

    Rows keep their file order; timestamps that go backwards are an error
    unless ``sort`` (then sorted, with a warning).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ConfigError(f"output {str(out)!r} must end in .parquet or .csv (servesim's trace schema).")
    if out.exists() and Path(trace.path).exists() and out.resolve() == Path(trace.path).resolve():
        raise ConfigError(f"output {str(out)!r} is the input trace itself; write the converted trace to another file.")
    idx = order(trace, sort, sort_option)
    if idx is None:
        idx = np.arange(len(trace))
    t = trace.arrival_s[idx]
    t = t - t[0]
    data: dict[str, pa.Array] = {
        "arrival_s": pa.array(t, pa.float64()),
        "prompt_tokens": pa.array(trace.prompt_tokens[idx], pa.int64()),
        "output_tokens": pa.array(trace.output_tokens[idx], pa.int64()),
    }
    if trace.tenant is not None:
        data["tenant"] = pa.array(trace.tenant[idx].astype(str) if trace.tenant.dtype == object else trace.tenant[idx])
    if trace.tier is not None:
        data["tier"] = pa.array(trace.tier[idx].astype(str), pa.string())
    if trace.priority is not None:
        data["priority"] = pa.array(trace.priority[idx], pa.int64())
    if trace.session is not None:
        data["session_id"] = pa.array(trace.session[idx])
    flat, offsets = _take_lists(trace.prefix_flat, trace.prefix_offsets, idx)
    meta = {"source_format": trace.format, "source_file": Path(trace.path).name}
    if trace.origin:
        meta["origin"] = trace.origin
    if flat is not None:
        meta["prefix_block_tokens"] = str(trace.prefix_block_tokens)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".parquet":
        if flat is not None:
            data["prefix_ids"] = pa.ListArray.from_arrays(
                pa.array(offsets, pa.int32() if offsets[-1] < 2**31 else pa.int64()), pa.array(flat, pa.int64())
            )
            if not isinstance(data["prefix_ids"].type, pa.ListType):
                data["prefix_ids"] = data["prefix_ids"].cast(pa.list_(pa.int64()))
        table = pa.table(data).replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})
        pq.write_table(table, out, compression="zstd")
    else:
        if flat is not None:
            data["prefix_ids"] = pa.array([" ".join(map(str, x.tolist())) for x in _split(flat, offsets)], pa.string())
            data["prefix_block_tokens"] = pa.array(np.full(len(t), trace.prefix_block_tokens, np.int64))
        buf = io.BytesIO()
        pacsv.write_csv(pa.table(data), buf, write_options=pacsv.WriteOptions(quoting_style="needed"))
        out.write_bytes(buf.getvalue())
    return out
