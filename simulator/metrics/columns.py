"""A growable numpy column: how the recorder keeps millions of rows in bounded memory.

Values are appended a block at a time into one array whose capacity grows
eightfold when full, so a column of n values costs 8n bytes resident (the spare
capacity is allocated but never written, hence never resident), its values are
copied about n/7 times in all as it grows (doubling copied them n times, and
touched as many fresh pages: 3-6% of a million-request run), and a table built
at the end takes the array as it is, with no copy of every row.
"""

from __future__ import annotations

import numpy as np


class Column:
    __slots__ = ("data", "n")

    def __init__(self, dtype: type = np.float64) -> None:
        self.data: np.ndarray = np.empty(0, dtype=dtype)
        self.n = 0

    def __len__(self) -> int:
        return self.n

    def extend(self, values, fits: bool = False) -> None:
        """Append ``values`` (an array or a list of numbers). A narrow integer column
        widens to int64 before it takes a value it cannot hold exactly (unless the caller
        says the values ``fit``: it checked them, several columns at once)."""
        k = len(values)
        if not k:
            return
        kind = self.data.dtype
        if not fits and kind.kind == "i" and kind.itemsize < 8 and isinstance(values, np.ndarray):
            limits = np.iinfo(kind)
            if values.max() > limits.max or values.min() < limits.min:
                self.data = self.data[: self.n].astype(np.int64)  # (the values only: not the unwritten capacity)
        end = self.n + k
        if end > len(self.data):
            grown = np.empty(max(end, 8 * len(self.data), 4096), dtype=self.data.dtype)
            grown[: self.n] = self.data[: self.n]
            self.data = grown
        self.data[self.n : end] = values
        self.n = end

    def values(self) -> np.ndarray:
        """The values so far (a view: changes to it reach the column)."""
        return self.data[: self.n]
