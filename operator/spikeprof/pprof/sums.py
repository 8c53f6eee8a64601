"""Exact integer sums with numpy, for summaries and flame graphs.

numpy's fastest grouped sum, bincount, adds float64 weights: exact while no sum can reach 2**53,
which holds for every real profile (2**53 ns is 104 days of CPU). Past that, the sums are
taken in int64, which wrap past 2**63 as Go's do.
"""

from __future__ import annotations

import numpy as np

from spikeprof.pprof.wire_arrays import Int64Array

_EXACT_IN_FLOAT64 = 1 << 53


def weighted_counts(bins: Int64Array, weights: Int64Array, size: int) -> Int64Array:
    """The sum of the weights that fall in each of bins 0..size-1, exactly."""
    if not len(bins):
        return np.zeros(size, dtype=np.int64)
    if int(np.abs(weights).max()) * len(weights) < _EXACT_IN_FLOAT64:
        sums = np.bincount(bins, weights=weights.astype(np.float64), minlength=size)
        return sums.astype(np.int64)
    exact = np.zeros(size, dtype=np.int64)
    np.add.at(exact, bins, weights)
    return exact


def sum_of_magnitudes(column: Int64Array) -> int:
    """The sum of the absolute values, as a Python int (exact past int64 too)."""
    magnitudes = np.abs(column)
    if not len(column) or int(magnitudes.max()) * len(column) < 1 << 63:
        return int(magnitudes.sum())
    return sum(abs(value) for value in column.tolist())
