"""Arrow IPC files in the spool: raw extract columns, part files written privately, batches read one at
a time (not mapped: memory stays per batch), and damaged files reported with a code."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tongban.core.engine import spool
from tongban.core.engine.records import BatchInfo

__all__ = ["PartWriter", "hex_column", "private_sink", "raw_columns", "read_batch", "read_batches"]


def raw_columns(batch: pa.RecordBatch, keep: set[str] | None = None) -> pa.RecordBatch:
    """Every column as binary: one schema across batches, and the contract reads the values."""
    arrays, names = [], []
    for name, col in zip(batch.schema.names, batch.columns, strict=True):
        if keep is not None and name not in keep:
            continue
        t = col.type
        if pa.types.is_null(t):
            col = pa.nulls(len(col), pa.binary())
        elif pa.types.is_binary(t):
            pass
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = col.cast(pa.string()).view(pa.binary()) if pa.types.is_string(t) else col.cast(pa.binary())
        elif pa.types.is_timestamp(t) and t.tz is None:
            col = pc.strftime(col, format="%Y-%m-%d %H:%M:%S").cast(pa.binary())
        else:
            col = pc.cast(col, pa.string()).cast(pa.binary())
        arrays.append(col)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def private_sink(path: Path) -> pa.NativeFile:
    """An Arrow output file created readable by the owner only (it holds whole rows)."""
    spool.open_private(path, "wb").close()
    return pa.OSFile(str(path), "w")


class PartWriter:
    """Writes one extract part: an Arrow IPC file whose record batches are the sync batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pa.ipc.RecordBatchFileWriter | None = None
        self.schema: pa.Schema | None = None
        self.batches: list[BatchInfo] = []

    def write(self, batch: pa.RecordBatch, cursor: dict | None) -> None:
        if self.writer is None:
            self.schema = batch.schema
            self.writer = pa.ipc.new_file(private_sink(self.path), batch.schema)
        elif batch.schema != self.schema:
            assert self.schema is not None
            cols = {n: batch.column(n) for n in batch.schema.names}
            batch = pa.RecordBatch.from_arrays(
                [cols.get(f.name, pa.nulls(batch.num_rows, pa.binary())) for f in self.schema],
                schema=self.schema,
            )
        self.writer.write_batch(batch)
        self.batches.append(BatchInfo(batch.num_rows, cursor))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _missing(path: Path) -> spool.SpoolError:
    return spool.SpoolError(
        "SPOOL_MISSING",
        "运行目录中缺少上一步的文件：请重新运行同步",
        "a file of the previous step is missing from the run folder: run the sync again",
        str(path),
    )


def _require(path: Path, schema: pa.Schema, columns: Iterable[str] | None) -> None:
    missing = [c for c in columns or () if c not in schema.names]
    if missing:
        raise spool.corrupt(path, ValueError(f"not the step's file: no column {', '.join(missing[:5])}"))


def read_batches(path: Path, require: Iterable[str] | None = None) -> Iterator[pa.RecordBatch]:
    r"""The record batches of an IPC file, one read at a time.

    A file that is missing, truncated, not Arrow IPC, or without the ``require``\ d columns (another
    step's file in its place) is SPOOL_MISSING / SPOOL_CORRUPT (permanent).
    """
    try:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_file(source)
            _require(path, reader.schema, require)
            for i in range(reader.num_record_batches):
                yield reader.get_batch(i)
    except FileNotFoundError:
        raise _missing(path) from None
    except (pa.ArrowException, OSError) as exc:
        raise spool.corrupt(path, exc) from None


def read_batch(path: Path, index: int, require: Iterable[str] | None = None) -> pa.RecordBatch:
    """Batch ``index`` of an IPC file (SPOOL_MISSING / SPOOL_CORRUPT as :func:`read_batches`)."""
    try:
        with pa.OSFile(str(path)) as source:
            reader = pa.ipc.open_file(source)
            _require(path, reader.schema, require)
            return reader.get_batch(index)
    except FileNotFoundError:
        raise _missing(path) from None
    except (pa.ArrowException, OSError, IndexError) as exc:
        raise spool.corrupt(path, exc) from None


_HEX = np.frombuffer(b"".join(f"{i:02x}".encode() for i in range(256)), dtype=np.uint8).reshape(256, 2)


def hex_column(leaves: np.ndarray) -> pa.Array:
    """Leaf hashes (n, 32) as a string column of 64 lowercase hex digits, without a Python loop.

    >>> hex_column(np.array([[0xAB] * 32], dtype=np.uint8))[0].as_py() == "ab" * 32
    True
    """
    n = len(leaves)
    digits = _HEX[leaves].reshape(n * 64)
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(digits.tobytes()))
