"""Read extract files (CSV, Parquet, JSONL) as a stream of Arrow batches.

Every column of a text file is read as raw text: the data contract decides
what the values mean, so a wrong type is a coded finding on the row, never a
parse failure of the whole file. A file that cannot be read at all (missing,
truncated, not the format its name says) raises :class:`ExtractError`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.errors import ExtractError

__all__ = ["FORMATS", "detect_format", "read_file", "rebatch"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_BATCH = 262_144
CSV_BLOCK_BYTES = 1 << 20


def detect_format(path: Path) -> str:
    """The format named by the file's suffix; ExtractError for others."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise ExtractError(
            "FILE_FORMAT",
            f"不支持的文件类型（支持 {known}）",
            f"unsupported file type (supported: {known})",
            str(path),
        )
    return fmt


def _csv_header(path: Path, encoding: str) -> list[str]:
    try:
        with path.open("rb") as fh:
            first = fh.readline().decode(encoding)
        header = next(csv.reader([first]), None)
    except UnicodeDecodeError:
        raise ExtractError(
            "FILE_ENCODING", f"表头不是 {encoding} 编码", f"header is not {encoding} text", f"{path}:1"
        ) from None
    if not header:
        raise ExtractError("FILE_EMPTY", "文件为空，没有表头", "file is empty: no header row", f"{path}:1")
    return [h.lstrip("\ufeff").strip() for h in header]


def _unclosed_quote(path: Path, encoding: str) -> ExtractError | None:
    """An error if the file ends inside a quoted value (cut short mid-field), else None.

    Arrow's reader takes an unclosed quote at the end of the file as a complete value. In a
    well-formed file every quote pairs up (a field's opening and closing quote, doubled quotes inside
    it), so an odd count marks a file to check; the check reads it with the strict csv module. Only
    for encodings where quote, comma and newline are single ASCII bytes (UTF-8, GB 18030...).
    """
    try:
        if not '",\n'.encode(encoding).endswith(b'",\n'):  # (after a BOM, for utf-8-sig)
            return None
    except (LookupError, UnicodeError):
        return None
    odd = False
    with path.open("rb") as fh:
        while chunk := fh.read(CSV_BLOCK_BYTES):
            odd ^= bool(chunk.count(b'"') & 1)
    if not odd:
        return None
    with path.open(encoding="latin-1", newline="") as fh:  # byte for byte: the ASCII bytes are what count
        reader = csv.reader(fh, strict=True)
        try:
            for _ in reader:
                pass
        except csv.Error as exc:
            return ExtractError(
                "FILE_MALFORMED",
                f"CSV 文件损坏或被截断（引号未闭合）：{exc}",
                f"CSV file is malformed or truncated (unclosed quote): {exc}",
                f"{path}:{reader.line_num}",
            )
    return None


def _read_csv(path: Path, batch_size: int, encoding: str) -> Iterator[pa.RecordBatch]:
    header = _csv_header(path, encoding)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ExtractError(
            "FILE_HEADER",
            f"表头有重复列：{', '.join(dupes)}",
            f"duplicate columns in header: {', '.join(dupes)}",
            f"{path}:1",
        )
    unclosed = _unclosed_quote(path, encoding)
    if unclosed is not None:
        raise unclosed
    # Small blocks keep the reader's read-ahead (and so memory) small; rebatch() regroups them.
    read = pacsv.ReadOptions(
        column_names=header,
        skip_rows=1,
        block_size=CSV_BLOCK_BYTES,
        encoding="utf8" if encoding.lower().replace("-", "") == "utf8" else encoding,
    )
    # Binary columns: undecodable bytes become a per-row ENCODING_INVALID finding later.
    convert = pacsv.ConvertOptions(
        column_types={h: pa.binary() for h in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    rows_done = 0
    try:
        reader = pacsv.open_csv(path, read_options=read, convert_options=convert, parse_options=parse)
        for batch in rebatch(reader, batch_size):
            rows_done += batch.num_rows
            yield batch
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        detail = str(exc).splitlines()[0][:300]
        raise ExtractError(
            "FILE_MALFORMED",
            f"CSV 文件损坏或被截断（已读 {rows_done} 行后）：{detail}",
            f"CSV file is malformed or truncated (after {rows_done} rows): {detail}",
            f"{path}: data row {rows_done + 1}",
        ) from None


def rebatch(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[pa.RecordBatch]:
    """Regroup a stream of record batches into batches of ``batch_size`` rows (the last may be short).

    >>> small = [pa.record_batch({"a": list(range(i, i + 3))}) for i in (0, 3, 6)]
    >>> [b.num_rows for b in rebatch(small, 4)]
    [4, 4, 1]
    """
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_size - count, batch.num_rows)
            held.append(batch.slice(0, take))
            batch = batch.slice(take)
            count += take
            if count == batch_size:
                yield _combine(held)
                held, count = [], 0
    if count:
        yield _combine(held)


def _combine(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches).combine_chunks().to_batches()[0]


def _read_parquet(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
        yield from pf.iter_batches(batch_size=batch_size)
    except (pa.ArrowInvalid, OSError) as exc:
        detail = str(exc).splitlines()[0][:300]
        raise ExtractError(
            "FILE_MALFORMED",
            f"Parquet 文件损坏或被截断：{detail}",
            f"Parquet file is malformed or truncated: {detail}",
            str(path),
        ) from None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _read_jsonl(path: Path, batch_size: int, encoding: str) -> Iterator[pa.RecordBatch]:
    columns: dict[str, list[str | None]] = {}
    count = 0

    def flush() -> pa.RecordBatch:
        nonlocal columns, count
        batch = pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in columns.items()})
        columns, count = {k: [] for k in columns}, 0
        return batch

    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode(encoding))
            except (UnicodeDecodeError, ValueError) as exc:
                raise ExtractError(
                    "FILE_MALFORMED",
                    f"第 {lineno} 行不是有效的 JSON：{exc}",
                    f"line {lineno} is not valid JSON: {exc}",
                    f"{path}:{lineno}",
                ) from None
            if not isinstance(obj, dict):
                raise ExtractError(
                    "FILE_MALFORMED",
                    f"第 {lineno} 行应为 JSON 对象",
                    f"line {lineno} must be a JSON object",
                    f"{path}:{lineno}",
                )
            for key in obj.keys() - columns.keys():
                columns[key] = [None] * count
            for key, values in columns.items():
                values.append(_text(obj.get(key)))
            count += 1
            if count >= batch_size:
                yield flush()
    if count:
        yield flush()


def read_file(
    path: str | Path, *, batch_size: int = DEFAULT_BATCH, encoding: str = "utf-8"
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of an extract file as Arrow record batches of at most ``batch_size`` rows."""
    path = Path(path)
    fmt = detect_format(path)
    if not path.is_file():
        raise ExtractError("FILE_NOT_FOUND", "找不到文件", "file not found", str(path))
    if fmt == "csv":
        yield from _read_csv(path, batch_size, encoding)
    elif fmt == "parquet":
        yield from _read_parquet(path, batch_size)
    else:
        yield from _read_jsonl(path, batch_size, encoding)
