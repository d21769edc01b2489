"""Read extract files (CSV, Parquet, JSONL) as a stream of Arrow batches.

Every column of a text file is read as raw text: the data contract decides
what the values mean, so a wrong type is a coded finding on the row, never a
parse failure of the whole file. A file that cannot be read at all (missing,
truncated, not the format its name says) raises :class:`ExtractError`, and so
does every other failure while reading one (an I/O error, a hostile JSON line
nested too deeply...): a ``FILE_*`` code and where, never another exception,
so that one bad file can be set aside and the rest of a folder goes on.

Memory stays bounded: CSV is read in 1 MiB blocks (a row longer than a block
is read again with larger blocks, up to :data:`CSV_MAX_BLOCK_BYTES`); a JSONL
line may be at most :data:`JSONL_MAX_LINE_BYTES` and is never read whole
before that is known.
"""

from __future__ import annotations

import codecs
import collections
import csv
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from connectors.errors import ExtractError

__all__ = ["FORMATS", "detect_format", "read_file", "rebatch"]

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DEFAULT_BATCH = 262_144
#: CSV read block: the reader holds about one block ahead, so this bounds its memory.
CSV_BLOCK_BYTES = 1 << 20
#: A CSV row longer than a block is read again with doubled blocks up to this; a longer row is refused
#: (FILE_FIELD_TOO_LARGE). Rows that long are rejected by the contract anyway (TOO_LONG), one by one.
CSV_MAX_BLOCK_BYTES = 64 << 20
#: The longest JSONL line read (bytes, without its line break); a longer one is FILE_LINE_TOO_LONG.
JSONL_MAX_LINE_BYTES = 64 << 20
#: The most distinct keys a JSONL file may use (every batch holds a value, or null, for each).
JSONL_MAX_COLUMNS = 10_000
#: A CSV header with more columns than this is refused (no dataset has more than a few dozen fields).
CSV_MAX_COLUMNS = 10_000
#: A JSONL batch is handed out once its lines hold this many bytes, even if short of ``batch_size`` rows.
JSONL_BATCH_BYTES = 64 << 20
#: ... or once it holds this many values (rows x keys, nulls included).
JSONL_BATCH_CELLS = 1 << 24
#: rebatch() hands out what it holds once it holds this many bytes, even if short of ``batch_size`` rows.
REBATCH_MAX_BYTES = 256 << 20


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
            line = fh.readline(CSV_MAX_BLOCK_BYTES + 1)
        if len(line) > CSV_MAX_BLOCK_BYTES:
            raise ExtractError(
                "FILE_HEADER",
                f"表头行超过 {_mib(CSV_MAX_BLOCK_BYTES)}",
                f"header row is longer than {_mib(CSV_MAX_BLOCK_BYTES)}",
                f"{path}:1",
            )
        first = line.decode(encoding)
        header = next(csv.reader([first]), None)
    except UnicodeDecodeError:
        raise _not_text(path, encoding, ("表头", "header"), 1) from None
    except csv.Error as exc:
        raise ExtractError(
            "FILE_HEADER", f"表头无法解析：{exc}", f"header row cannot be parsed: {exc}", f"{path}:1"
        ) from None
    if not header:
        raise ExtractError("FILE_EMPTY", "文件为空，没有表头", "file is empty: no header row", f"{path}:1")
    return [h.lstrip("\ufeff").strip() for h in header]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


def _encoding_hint(encoding: str) -> tuple[str, str]:
    """(zh, en) of what to do about a file that is not ``encoding`` text: most such files from county
    systems are GBK / GB 18030, which the mapping's ``encoding: gb18030`` reads (GBK is a subset of it).

    >>> _encoding_hint("utf-8")[1]
    '; if the file is GBK/GB 18030, set `encoding: gb18030` in its mapping'
    """
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        name = encoding
    if name in ("gb18030", "gbk", "gb2312"):
        return (
            "；请确认映射中的 encoding 与文件的实际编码一致（UTF-8 文件无需设置）",
            "; check that the mapping's encoding is the file's (a UTF-8 file needs none)",
        )
    return (
        "；如果文件是 GBK/GB 18030 编码，请在其映射中设置 encoding: gb18030",
        "; if the file is GBK/GB 18030, set `encoding: gb18030` in its mapping",
    )


def _not_text(path: Path, encoding: str, what: tuple[str, str], line: int | None) -> ExtractError:
    """FILE_ENCODING: ``what`` (zh, en) of the file is not ``encoding`` text, with the hint; never the bytes."""
    zh, en = _encoding_hint(encoding)
    return ExtractError(
        "FILE_ENCODING",
        f"{what[0]}不是 {encoding} 编码{zh}",
        f"{what[1]} is not {encoding} text{en}",
        f"{path}:{line}" if line else str(path),
    )


def _first_bad_line(path: Path, encoding: str) -> int | None:
    """The number of the first line of ``path`` that is not ``encoding`` text, if it can be told.

    Read line by line through an incremental decoder (so a character is never split), only for encodings
    where a line break is the single byte ``\\n`` (UTF-8, GB 18030...); None otherwise or if all decode.
    """
    try:
        if "\n".encode(encoding)[-1:] != b"\n":
            return None
        decoder = codecs.getincrementaldecoder(encoding)()
    except (LookupError, UnicodeError):
        return None
    line = 1
    with path.open("rb") as fh:
        while chunk := fh.readline(CSV_BLOCK_BYTES):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return line
            line += chunk.endswith(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return line
    return None


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
    # The csv module's field limit is process-wide (default 128 KiB): it may only go up, to the longest
    # field the Arrow reader accepts, so that a long but complete value is not taken for a cut one.
    if csv.field_size_limit() < CSV_MAX_BLOCK_BYTES:
        csv.field_size_limit(CSV_MAX_BLOCK_BYTES)
    with path.open(encoding="latin-1", newline="") as fh:  # byte for byte: the ASCII bytes are what count
        reader = csv.reader(fh, strict=True)
        try:
            for _ in reader:
                pass
        except csv.Error as exc:
            if "field limit" in str(exc):
                return _field_too_large(path, f"{path}:{reader.line_num}")
            return ExtractError(
                "FILE_MALFORMED",
                f"CSV 文件损坏或被截断（引号未闭合）：{exc}",
                f"CSV file is malformed or truncated (unclosed quote): {exc}",
                f"{path}:{reader.line_num}",
            )
    return None


def _field_too_large(path: Path, where: str) -> ExtractError:
    limit = _mib(CSV_MAX_BLOCK_BYTES)
    return ExtractError(
        "FILE_FIELD_TOO_LARGE",
        f"CSV 有一行（或一个值）超过 {limit}，无法读取",
        f"a CSV row (or value) is longer than {limit} and cannot be read",
        where,
    )


#: Arrow echoes the offending row after "got N": personal data, kept out of error messages.
_ROW_ECHO = re.compile(r"(Expected \d+ columns, got \d+).*", re.DOTALL)


def _read_csv(path: Path, batch_size: int, encoding: str) -> Iterator[pa.RecordBatch]:
    header = _csv_header(path, encoding)
    if len(header) > CSV_MAX_COLUMNS:
        raise ExtractError(
            "FILE_TOO_MANY_COLUMNS",
            f"表头有 {len(header)} 列，超过上限 {CSV_MAX_COLUMNS}",
            f"the header has {len(header)} columns, more than the limit of {CSV_MAX_COLUMNS}",
            f"{path}:1",
        )
    counts = collections.Counter(header)
    dupes = sorted(h for h, n in counts.items() if n > 1)
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
    # Binary columns: undecodable bytes become a per-row ENCODING_INVALID finding later.
    convert = pacsv.ConvertOptions(
        column_types={h: pa.binary() for h in header},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    parse = pacsv.ParseOptions(newlines_in_values=True)
    arrow_encoding = "utf8" if encoding.lower().replace("-", "") == "utf8" else encoding
    # Small blocks keep the reader's read-ahead (and so memory) small; rebatch() regroups them. A row
    # longer than a block stops the reader ("straddles two block boundaries"): the file is read again
    # with doubled blocks, skipping the rows already handed out, so none is handed out twice.
    block = CSV_BLOCK_BYTES
    done = 0  # rows handed out
    while True:
        seen = 0  # rows the reader has produced in this pass

        def fresh(reader: pacsv.CSVStreamingReader, skip: int) -> Iterator[pa.RecordBatch]:
            nonlocal seen
            for batch in reader:
                first, seen = seen, seen + batch.num_rows
                if seen > skip:
                    yield batch.slice(max(skip - first, 0))

        try:
            read = pacsv.ReadOptions(
                column_names=header, skip_rows=1, block_size=block, encoding=arrow_encoding
            )
            reader = pacsv.open_csv(path, read_options=read, convert_options=convert, parse_options=parse)
            for batch in rebatch(fresh(reader, done), batch_size):
                done += batch.num_rows
                yield batch
            return
        except UnicodeDecodeError:  # transcoding to UTF-8 (any other declared encoding) failed
            line = _first_bad_line(path, encoding)
            what = (
                (f"第 {line} 行", f"line {line}")
                if line
                else (f"第 {seen} 行数据之后", f"data after row {seen}")
            )
            raise _not_text(path, encoding, what, line) from None
        except pa.ArrowInvalid as exc:
            detail = _ROW_ECHO.sub(r"\1", str(exc).splitlines()[0])[:300]
            if "straddl" in detail:
                if block >= CSV_MAX_BLOCK_BYTES:
                    raise _field_too_large(path, f"{path}: data row {seen + 1}") from None
                block = min(block * 2, CSV_MAX_BLOCK_BYTES)
                continue
            raise ExtractError(
                "FILE_MALFORMED",
                f"CSV 文件损坏或被截断（已读 {seen} 行后）：{detail}",
                f"CSV file is malformed or truncated (after {seen} rows): {detail}",
                f"{path}: data row {seen + 1}",
            ) from None


def rebatch(
    batches: Iterable[pa.RecordBatch], batch_size: int, *, max_bytes: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Regroup a stream of record batches into batches of ``batch_size`` rows (the last may be short).

    A batch is also handed out early once the rows held reach ``max_bytes`` (default
    :data:`REBATCH_MAX_BYTES`), so that long values cannot make one batch unboundedly large.

    >>> small = [pa.record_batch({"a": list(range(i, i + 3))}) for i in (0, 3, 6)]
    >>> [b.num_rows for b in rebatch(small, 4)]
    [4, 4, 1]
    """
    limit = REBATCH_MAX_BYTES if max_bytes is None else max_bytes
    held: list[pa.RecordBatch] = []
    count = size = 0
    for batch in batches:
        while batch.num_rows:
            take = min(batch_size - count, batch.num_rows)
            piece = batch.slice(0, take)
            held.append(piece)
            batch = batch.slice(take)
            count += take
            size += piece.nbytes
            if count == batch_size or size >= limit:
                yield from _combine(held)
                held, count, size = [], 0, 0
    if count:
        yield from _combine(held)


def _combine(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    if len(batches) == 1:
        return batches
    # More than 2 GiB of one column's values cannot be one array: then Arrow gives several batches.
    return pa.Table.from_batches(batches).combine_chunks().to_batches()


def _read_parquet(path: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
        yield from pf.iter_batches(batch_size=batch_size)
    except (pa.ArrowException, OSError) as exc:
        detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
        raise ExtractError(
            "FILE_MALFORMED",
            f"Parquet 文件损坏、被截断或含不支持的类型：{detail}",
            f"Parquet file is malformed, truncated or of an unsupported type: {detail}",
            str(path),
        ) from None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


#: A JSON escape of a UTF-16 surrogate: it may be unpaired, which no UTF-8 text can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _jsonl_error(code: str, zh: str, en: str, path: Path, lineno: int) -> ExtractError:
    return ExtractError(code, f"第 {lineno} 行{zh}", f"line {lineno} {en}", f"{path}:{lineno}")


def _jsonl_line(raw: bytes, encoding: str, path: Path, lineno: int) -> dict[str, str | None]:
    """One JSONL line as its keys and text values; ExtractError for anything else."""
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        zh, en = _encoding_hint(encoding)
        raise _jsonl_error(
            "FILE_ENCODING",
            f"不是 {encoding} 编码（第 {exc.start + 1} 个字节）{zh}",
            f"is not {encoding} text (at byte {exc.start + 1}){en}",
            path,
            lineno,
        ) from None
    if lineno == 1:
        text = text.removeprefix("\ufeff")
    try:
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise _jsonl_error("FILE_MALFORMED", "应为 JSON 对象", "must be a JSON object", path, lineno)
        row = {key: _text(value) for key, value in obj.items()}
        if _SURROGATE_ESCAPE.search(raw):
            json.dumps(row, ensure_ascii=False).encode("utf-8")
    except RecursionError:
        raise _jsonl_error(
            "FILE_TOO_DEEP", "的 JSON 嵌套层数过多", "is JSON nested too deeply", path, lineno
        ) from None
    except UnicodeEncodeError:
        raise _jsonl_error(
            "FILE_ENCODING",
            "含有不成对的 UTF-16 代理字符（\\ud800-\\udfff），不是有效文本",
            "holds an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not valid text",
            path,
            lineno,
        ) from None
    except ValueError as exc:
        raise _jsonl_error(
            "FILE_MALFORMED", f"不是有效的 JSON：{exc}", f"is not valid JSON: {exc}", path, lineno
        ) from None
    return row


def _jsonl_lines(path: Path, encoding: str) -> Iterator[tuple[int, int, dict[str, Any]]]:
    """``(line number, byte length, object)`` of each non-blank line, bounded per line."""
    limit = JSONL_MAX_LINE_BYTES
    with path.open("rb") as fh:
        lineno = 0
        # At most limit + 2 bytes of a line are read: enough to tell it is too long, never more.
        while raw := fh.readline(limit + 2):
            lineno += 1
            body = raw.removesuffix(b"\n").removesuffix(b"\r") if raw.endswith(b"\n") else raw
            if len(body) > limit:
                raise _jsonl_error(
                    "FILE_LINE_TOO_LONG",
                    f"超过 {_mib(limit)}",
                    f"is longer than {_mib(limit)}",
                    path,
                    lineno,
                )
            if not raw.strip():
                continue
            yield lineno, len(raw), _jsonl_line(raw, encoding, path, lineno)


def _read_jsonl(path: Path, batch_size: int, encoding: str) -> Iterator[pa.RecordBatch]:
    codecs.lookup(encoding)  # an unknown encoding fails before any line is read
    # A first pass collects every key, so every batch has every column: a key that first appears
    # late in the file is not lost to a schema fixed by the first batch.
    keys: dict[str, None] = {}
    for lineno, _, row in _jsonl_lines(path, encoding):
        for key in row:
            if key not in keys:
                if len(keys) >= JSONL_MAX_COLUMNS:
                    raise _jsonl_error(
                        "FILE_TOO_MANY_COLUMNS",
                        f"使文件的键超过 {JSONL_MAX_COLUMNS} 个",
                        f"brings the file's keys over {JSONL_MAX_COLUMNS}",
                        path,
                        lineno,
                    )
                keys[key] = None
    columns: dict[str, list[str | None]] = {k: [] for k in keys}
    count = held = 0

    def flush() -> pa.RecordBatch:
        nonlocal columns, count, held
        batch = pa.RecordBatch.from_pydict({k: pa.array(v, pa.string()) for k, v in columns.items()})
        columns, count, held = {k: [] for k in columns}, 0, 0
        return batch

    for _, size, row in _jsonl_lines(path, encoding):
        for key, values in columns.items():
            values.append(row.get(key))
        count += 1
        held += size
        if count >= batch_size or held >= JSONL_BATCH_BYTES or count * len(columns) >= JSONL_BATCH_CELLS:
            yield flush()
    if count:
        yield flush()


def _unexpected(path: Path, exc: Exception) -> ExtractError:
    """Any other failure while reading a file, as a coded error naming the file."""
    detail = (str(exc).splitlines() or [""])[0][:300] or type(exc).__name__
    detail = _ROW_ECHO.sub(r"\1", detail)
    if isinstance(exc, RecursionError):
        return ExtractError(
            "FILE_TOO_DEEP", "文件内容嵌套层数过多", "the file's content is nested too deeply", str(path)
        )
    if isinstance(exc, MemoryError):
        return ExtractError(
            "FILE_TOO_LARGE",
            "文件内容过大，内存不足以读取",
            "the file's content is too large to read",
            str(path),
        )
    if isinstance(exc, UnicodeDecodeError):  # its text would show the file's bytes: not echoed
        return _not_text(path, exc.encoding, ("文件", "the file"), None)
    if isinstance(exc, UnicodeError):
        return ExtractError(
            "FILE_ENCODING",
            "文件编码无法读取",
            f"the file's encoding cannot be read ({exc.reason})",
            str(path),
        )
    if isinstance(exc, LookupError):
        return ExtractError(
            "FILE_ENCODING",
            f"文件编码无法读取：{detail}",
            f"the file's encoding cannot be read: {detail}",
            str(path),
        )
    if isinstance(exc, FileNotFoundError):
        return ExtractError(
            "FILE_NOT_FOUND", "读取时文件消失", "file disappeared while being read", str(path)
        )
    if isinstance(exc, OSError):
        return ExtractError(
            "FILE_UNREADABLE", f"文件无法读取：{detail}", f"file cannot be read: {detail}", str(path)
        )
    if isinstance(exc, (pa.ArrowException, ValueError, csv.Error)):
        return ExtractError(
            "FILE_MALFORMED", f"文件损坏或格式不符：{detail}", f"file is malformed: {detail}", str(path)
        )
    return ExtractError(
        "FILE_UNREADABLE",
        f"文件无法读取（{type(exc).__name__}）：{detail}",
        f"file cannot be read ({type(exc).__name__}): {detail}",
        str(path),
    )


def read_file(
    path: str | Path, *, batch_size: int = DEFAULT_BATCH, encoding: str = "utf-8"
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of an extract file as Arrow record batches of at most ``batch_size`` rows.

    Whatever goes wrong while reading raises :class:`ExtractError` with a ``FILE_*`` code and where.
    """
    path = Path(path)
    fmt = detect_format(path)
    if not path.is_file():
        raise ExtractError("FILE_NOT_FOUND", "找不到文件", "file not found", str(path))
    try:
        if fmt == "csv":
            yield from _read_csv(path, batch_size, encoding)
        elif fmt == "parquet":
            yield from _read_parquet(path, batch_size)
        else:
            yield from _read_jsonl(path, batch_size, encoding)
    except ExtractError:
        raise
    except Exception as exc:  # one bad file is set aside with a code; the rest of the folder goes on
        raise _unexpected(path, exc) from None
