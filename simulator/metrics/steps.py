"""The steps table without holding it twice: a run's step rows as the recorder packed them.

The recorder keeps counts in int32 and times in float64 (96 bytes a step). The
public table (``Result.steps``, steps.parquet) has int64 counts, a ``pool``
column and ``kv_token_share``: about 180 bytes a step, over 900 MB for the 5.5
million steps of a million-request fleet run. :class:`StepRows` holds the
packed columns (in the table's order) and makes the public table only when
asked: the summary reads the packed columns, and steps.parquet is written from
them a row group at a time (the file ``DataFrame.to_parquet`` writes from the
whole table with ``row_group_size=ROW_GROUP`` and :func:`parquet_options`, byte
for byte).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: rows per row group of steps.parquet (about 45 MB before compression): a quarter of pyarrow's
#: default, so that writing a group holds little beside the packed rows
ROW_GROUP = 256 * 1024

#: columns whose values hardly repeat: a running count, times, context and KV sizes. Parquet's
#: dictionary encoding gives up on them after trying (a dictionary page fills), so they are
#: written with the standard encodings made for such data: DELTA_BINARY_PACKED for the integers
#: (neighbouring steps differ by little), BYTE_STREAM_SPLIT for the floats (their bytes compress
#: apart). On the Mooncake replay's 2.2 million steps this writes in 0.30 CPU s instead of 0.51
#: and makes a file of 64 MB instead of 72 (docs/scale.md). Every other column keeps its dictionary.
_DELTA = ("step", "decode_ctx_tokens", "kv_blocks_used", "kv_tokens")
_SPLIT = ("start_s", "duration_s", "kv_token_share")


def parquet_options(columns) -> dict:
    """``pyarrow.parquet.write_table`` options for steps.parquet with these columns."""
    names = list(columns)
    encoding = {c: "DELTA_BINARY_PACKED" for c in _DELTA if c in names}
    encoding.update({c: "BYTE_STREAM_SPLIT" for c in _SPLIT if c in names})
    return {
        "compression": "snappy",
        "use_dictionary": [c for c in names if c not in encoding],
        "column_encoding": encoding,
    }


class StepRows:
    """A run's step rows. ``frame`` has the recorder's columns (counts as the recorder
    holds them, int32 unless one outgrew it) plus ``kv_token_share``, in the table's order;
    ``pools`` names each replica's pool (empty: no ``pool`` column)."""

    def __init__(self, frame: pd.DataFrame, pools: list[str], int_columns: set[str]) -> None:
        self._frame: pd.DataFrame | None = frame
        self._table: pd.DataFrame | None = None
        self.pools = list(pools)
        self.int_columns = frozenset(int_columns)
        self.rows = len(frame)

    def __len__(self) -> int:
        return self.rows

    @property
    def frame(self) -> pd.DataFrame:
        """The packed columns, for reading (the summary): the public table once it exists."""
        return self._table if self._frame is None else self._frame

    def table(self, start: int = 0, stop: int | None = None) -> pd.DataFrame:
        """The public steps table (int64 counts, ``pool`` after ``replica``), or rows
        ``start:stop`` of it. The whole table is made once and then replaces the packed
        columns, so the rows are held once."""
        if self._table is not None:
            return self._table if (start, stop) == (0, None) else self._table.iloc[start:stop].reset_index(drop=True)
        assert self._frame is not None
        whole = (start, stop) == (0, None)
        part = self._frame if whole else self._frame.iloc[start:stop]
        columns = {}
        for c in part.columns:
            values = part[c].to_numpy()
            columns[c] = values.astype(np.int64) if c in self.int_columns else values
        df = pd.DataFrame(columns, copy=False)
        if self.pools:
            names = pd.array(self.pools, dtype="string").take(df["replica"].to_numpy())  # (Arrow's take: no str per row)
            df.insert(1, "pool", pd.Series(names))
        if whole:
            self._table, self._frame = df, None
        return df

    def to_parquet(self, path: str | Path) -> None:
        """steps.parquet, a row group at a time (only one group's int64 copy exists at once)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._table is not None or self.rows <= ROW_GROUP:  # one row group, or the table exists already
            whole = self._table if self._table is not None else self.table(0, self.rows)
            whole.to_parquet(path, index=False, row_group_size=ROW_GROUP, **parquet_options(whole.columns))
            return
        first = pa.Table.from_pandas(self.table(0, ROW_GROUP), preserve_index=False)
        with pq.ParquetWriter(path, first.schema, **parquet_options(first.column_names)) as writer:
            writer.write_table(first, row_group_size=ROW_GROUP)
            del first
            for start in range(ROW_GROUP, self.rows, ROW_GROUP):
                part = pa.Table.from_pandas(self.table(start, start + ROW_GROUP), preserve_index=False)
                writer.write_table(part, row_group_size=ROW_GROUP)
