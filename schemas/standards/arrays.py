"""Arrow-to-numpy helpers shared by the vectorized checks and readers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CAST_ERRORS", "as_string_array", "decimal", "fixed_width", "valid_mask"]

# What a cast raises when values do not fit the target type (or no such cast exists).
CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError)

_OFFSET_TYPES = {
    pa.string(): np.int32,
    pa.binary(): np.int32,
    pa.large_string(): np.int64,
    pa.large_binary(): np.int64,
}


def as_string_array(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous string (or large_string) array; other types are cast.

    Raises ``pa.ArrowInvalid`` / ``pa.ArrowNotImplementedError`` when the
    values cannot be represented as text.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if values.type not in _OFFSET_TYPES:
        values = pc.cast(values, pa.large_string())
    return values


def valid_mask(values: pa.Array) -> np.ndarray:
    """Boolean numpy array: True where the value is not null."""
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return values.is_valid().to_numpy(zero_copy_only=False)


def _offsets(values: pa.Array) -> np.ndarray:
    dtype = _OFFSET_TYPES[values.type]
    buf = values.buffers()[1]
    return np.frombuffer(buf, dtype=dtype)[values.offset : values.offset + len(values) + 1]


def fixed_width(values: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Gather values that are exactly ``width`` bytes, column by column.

    Returns ``(columns, fits)``: ``columns`` is a ``(width, n)`` uint8 matrix
    whose row ``j`` holds byte ``j`` of every value (column-major, so that
    per-position arithmetic runs over contiguous memory); rows whose value is
    null or of another length are zero there and False in ``fits``.

    >>> cols, ok = fixed_width(pa.array(["ab", None, "abc", "cd"]), 2)
    >>> [bytes(row) for row in cols], ok.tolist()
    ([b'a\\x00\\x00c', b'b\\x00\\x00d'], [True, False, False, True])
    """
    values = as_string_array(values)
    n = len(values)
    offsets = _offsets(values)
    fits = (np.diff(offsets) == width) & valid_mask(values)
    if n == 0 or not fits.any():
        return np.zeros((width, n), dtype=np.uint8), fits
    data_buf = values.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8)
    first = int(offsets[0])
    if fits.all() and int(offsets[-1]) - first == n * width:
        # Contiguous fixed-width values: transpose the data buffer in one pass.
        return np.ascontiguousarray(data[first : first + n * width].reshape(n, width).T), fits
    starts = offsets[:-1].astype(np.int64)
    columns = np.zeros((width, n), dtype=np.uint8)
    idx = np.flatnonzero(fits)
    base = starts[idx]
    for j in range(width):
        columns[j, idx] = data[base + j]
    return columns, fits


def decimal(columns: np.ndarray, dtype: type = np.int32) -> np.ndarray:
    """Decimal value of rows of ASCII-digit columns (``columns`` already minus 48).

    >>> decimal(np.array([[1, 2], [3, 4]], dtype=np.uint8)).tolist()
    [13, 24]
    """
    value = columns[0].astype(dtype)
    for row in columns[1:]:
        value *= 10
        value += row
    return value
