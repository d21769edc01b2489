"""Read raw column values into a field's canonical Arrow type, vectorized.

Every function takes whatever an extract held (strings from a CSV file, typed
values from Parquet or a database, or garbage) and returns the canonical array
plus a boolean mask per rule code of the rows that could not be read. A value
that cannot be read becomes null in the canonical array; it is never guessed.

>>> values, faults = read_date(pa.array(['2024-02-29', '2023-02-29', '20240301', None, 'x']))
>>> values.to_pylist()[0], values.to_pylist()[2], values.null_count
(datetime.date(2024, 2, 29), datetime.date(2024, 3, 1), 3)
>>> faults['DATE_INVALID'].tolist()
[False, True, False, False, True]
"""

from __future__ import annotations

import decimal
import json
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.standards.arrays import CAST_ERRORS, fixed_width, valid_mask
from schemas.standards.arrays import decimal as decimal_value
from schemas.standards.dates import days_since_epoch, real_date

__all__ = ["Faults", "read_date", "read_decimal", "read_json", "read_text", "read_timestamp"]

Faults = dict[str, np.ndarray]

# ISO 8601 extended date-time, as Arrow's parser reads it: a time may stop after the hour or the
# minute, and a zone is Z or an offset of hours with optional minutes.
_TIME_RE = (
    r"^(?P<date>\d{4}-\d\d-\d\d)(?:[T ](?:[01]\d|2[0-3])(?::[0-5]\d(?::[0-5]\d(?P<frac>\.\d{1,9})?)?)?"
    r"(?P<zone>Z|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)?)?$"
)


def _mask(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _null_where(values: pa.Array, bad: np.ndarray) -> pa.Array:
    if not bad.any():
        return values
    return pc.if_else(pa.array(bad), pa.nulls(len(values), values.type), values)


def _decode(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Binary -> UTF-8 string; undecodable values become null and are reported."""
    n = len(values)
    try:
        return pc.cast(values, pa.string()), _mask(n)
    except CAST_ERRORS:
        pass
    bad = _mask(n)
    out: list[str | None] = []
    for i, raw in enumerate(values.to_pylist()):
        if raw is None:
            out.append(None)
            continue
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            bad[i] = True
            out.append(None)
    return pa.array(out, type=pa.string()), bad


def to_string(values: pa.Array) -> tuple[pa.Array, Faults]:
    """Any array as a string array; values that have no text form are TYPE_INVALID."""
    n = len(values)
    faults: Faults = {}
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pc.cast(values, pa.string()) if not pa.types.is_string(t) else values, faults
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        text, bad = _decode(pc.cast(values, pa.binary()))
        faults["ENCODING_INVALID"] = bad
        return text, faults
    if pa.types.is_null(t):
        return pa.nulls(n, pa.string()), faults
    if pa.types.is_nested(t) or pa.types.is_dictionary(t):
        if pa.types.is_dictionary(t):
            return to_string(values.dictionary_decode())
        faults["TYPE_INVALID"] = valid_mask(values)
        return pa.nulls(n, pa.string()), faults
    try:
        return pc.cast(values, pa.string()), faults
    except CAST_ERRORS:
        faults["TYPE_INVALID"] = valid_mask(values)
        return pa.nulls(n, pa.string()), faults


_CONTROL_BYTE = np.zeros(256, dtype=bool)  # controls other than tab, newline and carriage return
_CONTROL_BYTE[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]] = True


def _table(*byte_values: int) -> np.ndarray:
    table = np.zeros(256, dtype=bool)
    table[list(byte_values)] = True
    return table


# Whitespace in UTF-8, as Arrow's trim reads it: ASCII (09-0D, 1C-1F, 20), two bytes C2 85 / C2 A0, and
# three bytes E1 9A 80, E2 80 80-8A, E2 80 A8 / A9 / AF, E2 81 9F, E3 80 80 (U+3000, the ideographic space).
_WS_ASCII = _table(0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20)
_WS2_LEAD, _WS2_LAST = _table(0xC2), _table(0x85, 0xA0)
_WS3_LEAD, _WS3_MID = _table(0xE1, 0xE2, 0xE3), _table(0x80, 0x81, 0x9A)
_WS3_LAST = _table(*range(0x80, 0x8B), 0xA8, 0xA9, 0xAF, 0x9F)


def _may_need_trim(offsets: np.ndarray, data: np.ndarray) -> bool:
    """Whether any value may start or end with whitespace (no false negatives, few false positives).

    One byte at each end rules out almost every value; the few left are looked at more closely.
    """
    if len(data) == 0:
        return False
    last_byte = len(data) - 1
    starts, ends = offsets[:-1], offsets[1:]
    length = ends - starts
    b0 = data[np.minimum(starts, last_byte)]
    e1, e2 = data[np.maximum(ends - 1, 0)], data[np.maximum(ends - 2, 0)]
    # Comparisons rather than table look-ups: they run over uint8 vectors at full speed.
    lead = (b0 <= 0x20) | (b0 == 0xC2) | ((b0 - np.uint8(0xE1)) <= 2)
    trail = (e1 <= 0x20) | (e2 == 0xC2) | ((e2 - np.uint8(0x80)) <= 1) | (e2 == 0x9A)
    rows = np.flatnonzero((length > 0) & (lead | trail))
    if not len(rows):
        return False
    s, e, n = starts[rows], ends[rows], length[rows]

    def at(pos: np.ndarray) -> np.ndarray:  # a read past a value's end only adds false positives
        return data[np.clip(pos, 0, last_byte)]

    b0, b1, b2 = at(s), at(s + 1), at(s + 2)
    lead = _WS_ASCII[b0] | (_WS2_LEAD[b0] & _WS2_LAST[b1]) | (_WS3_LEAD[b0] & _WS3_MID[b1] & _WS3_LAST[b2])
    e1, e2, e3 = at(e - 1), at(e - 2), at(e - 3)
    trail = (
        _WS_ASCII[e1]
        | ((n >= 2) & _WS2_LAST[e1] & _WS2_LEAD[e2])
        | ((n >= 3) & _WS3_LAST[e1] & _WS3_MID[e2] & _WS3_LEAD[e3])
    )
    return bool((lead | trail).any())


def _buffers(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Offsets (int64) and data bytes of a string array."""
    n = len(text)
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32)[text.offset : text.offset + n + 1].astype(
        np.int64
    )
    buf = text.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
    return offsets, data


def _rows_with(data_mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Rows whose bytes include a True of ``data_mask`` (a mask over the data buffer)."""
    hits = np.flatnonzero(data_mask)
    rows = np.zeros(len(offsets) - 1, dtype=bool)
    rows[np.searchsorted(offsets, hits, side="right") - 1] = True
    return rows


def read_text(
    values: pa.Array, *, max_length: int | None = None, upper: bool = False
) -> tuple[pa.Array, Faults]:
    """Trimmed text; empty becomes null; control characters and overlong values are faults.

    The common case (clean text) is checked on the raw buffers and costs a few
    passes over the bytes; Arrow's string kernels run only when needed.
    """
    text, faults = to_string(values)
    n = len(text)
    offsets, data = _buffers(text)
    used = data[offsets[0] : offsets[-1]] if n else data[:0]
    if upper and used.size and used.max() >= 0x80:
        # Identifiers typed with a Chinese input method arrive in full width (１２３Ｘ).
        text = pc.utf8_normalize(text, "NFKC")
        offsets, data = _buffers(text)
    lengths = np.diff(offsets)
    if _may_need_trim(offsets, data):
        text = pc.utf8_trim_whitespace(text)
        offsets, data = _buffers(text)
        lengths = np.diff(offsets)
    if upper and n:
        used = data[offsets[0] : offsets[-1]]
        if ((used - np.uint8(0x61)) <= 25).any():
            text = pc.ascii_upper(text)
            offsets, data = _buffers(text)
    empty = (lengths == 0) & valid_mask(text)
    bad = np.zeros(n, dtype=bool)
    used = data[offsets[0] : offsets[-1]] if n else data[:0]
    if used.size and (used.min() < 0x20 or b"\x7f" in used.tobytes()):
        used_mask = np.zeros(len(data), dtype=bool)
        used_mask[offsets[0] : offsets[-1]] = _CONTROL_BYTE[used]
        if used_mask.any():
            control = _rows_with(used_mask, offsets) & valid_mask(text)
            faults["CHAR_INVALID"] = control
            bad |= control
    if max_length is not None and (lengths > max_length).any():
        long_ = pc.fill_null(pc.greater(pc.utf8_length(text), max_length), False).to_numpy(
            zero_copy_only=False
        )
        if long_.any():
            faults["TOO_LONG"] = long_
            bad |= long_
    if empty.any() or bad.any():
        text = _null_where(text, empty | bad)
    return text, faults


def _dates_from_text(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Day numbers and a readable-mask of ISO dates, extended (10) or basic (8) form."""
    n = len(text)
    days = np.zeros(n, dtype=np.int64)
    ok = _mask(n)
    for width, (ys, ms, ds, dashes) in ((10, (0, 5, 8, (4, 7))), (8, (0, 4, 6, ()))):
        cols, fits = fixed_width(text, width)
        if not fits.any():
            continue
        digits = cols - np.uint8(48)
        digit_rows = [i for i in range(width) if i not in dashes]
        shape_ok = fits & (np.maximum.reduce(digits[digit_rows], axis=0) <= 9)
        for d in dashes:
            shape_ok &= cols[d] == ord("-")
        year = decimal_value(digits[ys : ys + 4])
        month = decimal_value(digits[ms : ms + 2])
        day = decimal_value(digits[ds : ds + 2])
        good = shape_ok & real_date(year, month, day)
        days = np.where(good, days_since_epoch(np.where(good, year, 1970), month, day), days)
        ok |= good
    return days, ok


# Years 0001-9999, the calendar of datetime.date: as date32 day numbers and as microseconds.
_MIN_DAY, _MAX_DAY = -719_162, 2_932_896
_UNIT_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def _in_calendar(values: np.ndarray, per_day: int) -> np.ndarray:
    """True where integer times (``per_day`` units a day since the epoch) fall in years 1-9999."""
    return (values >= _MIN_DAY * per_day) & (values < (_MAX_DAY + 1) * per_day)


def _typed_times(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Microseconds since the epoch of a timestamp array, and where they are in the calendar."""
    unit = values.type.unit
    raw = pc.fill_null(values.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
    ok = _in_calendar(raw, _UNIT_PER_DAY[unit]) & valid_mask(values)
    if unit == "ns":
        micros = np.floor_divide(raw, 1000)
    else:
        micros = np.where(ok, raw, 0) * (_UNIT_PER_DAY["us"] // _UNIT_PER_DAY[unit])
    return micros, ok


def read_date(values: pa.Array) -> tuple[pa.Array, Faults]:
    """Calendar dates (years 1-9999) as date32; unreadable or impossible dates are DATE_INVALID."""
    t = values.type
    present = valid_mask(values)
    if pa.types.is_date32(t):
        days = pc.fill_null(values.cast(pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        faults: Faults = {}
    elif pa.types.is_date64(t) or pa.types.is_timestamp(t):
        if pa.types.is_date64(t):
            values = values.cast(pa.timestamp("ms"))
        micros, ok = _typed_times(values)
        days = np.floor_divide(micros, _UNIT_PER_DAY["us"])
        faults = {"DATE_INVALID": present & ~ok}
    else:
        days = None
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            try:  # fast path: clean ISO dates throughout (no blanks, no padding)
                days = pc.fill_null(pc.cast(values, pa.date32()).cast(pa.int32()), 0).to_numpy(
                    zero_copy_only=False
                )
                days, faults = days.astype(np.int64), {}
            except CAST_ERRORS:
                days = None
        if days is None:
            text, faults = read_text(values)
            present = valid_mask(text)
            days, ok = _dates_from_text(text)
            faults["DATE_INVALID"] = present & ~ok
    bad = present & ~((days >= _MIN_DAY) & (days <= _MAX_DAY))
    if bad.any():
        faults["DATE_INVALID"] = faults.get("DATE_INVALID", np.zeros(len(days), dtype=bool)) | bad
    good = present & ~faults.get("DATE_INVALID", np.zeros(len(days), dtype=bool))
    result = pa.array(np.where(good, days, 0).astype(np.int32), type=pa.int32(), mask=~good)
    return result.cast(pa.date32()), faults


def _cast_rows(text: pa.Array, target: pa.DataType) -> tuple[np.ndarray, np.ndarray]:
    """Cast strings one batch at a time, or row by row where the batch fails: (int64 values, ok)."""
    try:
        cast = pc.cast(text, target)
        return pc.fill_null(cast.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), valid_mask(cast)
    except CAST_ERRORS:
        values = np.zeros(len(text), dtype=np.int64)
        ok = np.zeros(len(text), dtype=bool)
        for i in range(len(text)):
            try:
                one = pc.cast(text.slice(i, 1), target).cast(pa.int64())[0].as_py()
            except CAST_ERRORS:
                continue
            if one is not None:
                values[i], ok[i] = one, True
        return values, ok


def read_timestamp(values: pa.Array, *, timezone: str | None = None) -> tuple[pa.Array, Faults]:
    """Times (years 1-9999) as UTC timestamps[us]; a time without offset takes ``timezone`` or is TIME_INVALID.

    Accepted text is ISO 8601 extended form: ``YYYY-MM-DD[T ]hh[:mm[:ss[.f]]]`` with ``Z`` or an offset
    ``±hh[[:]mm]``; fractions beyond microseconds are truncated. Without a zone, a time (or a bare
    date, read as midnight) is local time in ``timezone``.
    """
    target = pa.timestamp("us", tz="UTC")
    t = values.type
    n = len(values)
    if pa.types.is_timestamp(t):
        present = valid_mask(values)
        if t.tz is None and timezone is None:
            return pa.nulls(n, target), {"TIME_INVALID": present}
        micros, ok = _typed_times(values)
        result = pa.array(micros, type=pa.int64(), mask=~ok).cast(pa.timestamp("us", tz=t.tz))
        if t.tz is None:
            result = pc.assume_timezone(
                result.cast(pa.timestamp("us")), timezone, ambiguous="earliest", nonexistent="earliest"
            )
        return result.cast(target), {"TIME_INVALID": present & ~ok}
    if pa.types.is_date32(t) or pa.types.is_date64(t):
        values = pc.cast(values, pa.string())
    clean = pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    text, faults = (values, {}) if clean else read_text(values)
    present = valid_mask(text)
    # Fast path: the whole batch is zoned (or, with a zone to assume, the whole batch is local).
    for fast_target, local in ((target, False), (pa.timestamp("us"), True)):
        if local and timezone is None:
            continue
        try:
            cast = pc.cast(text, fast_target)
        except CAST_ERRORS:
            continue
        if local:
            cast = pc.assume_timezone(cast, timezone, ambiguous="earliest", nonexistent="earliest")
        micros = pc.fill_null(cast.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        good = present & _in_calendar(micros, _UNIT_PER_DAY["us"])
        faults["TIME_INVALID"] = present & ~good
        if (good == present).all():
            return cast.cast(target), faults
        return pa.array(np.where(good, micros, 0), type=pa.int64(), mask=~good).cast(target), faults
    if clean:
        text, faults = read_text(values)
        present = valid_mask(text)
    parts = pc.extract_regex(text, _TIME_RE)
    shaped = parts.is_valid().to_numpy(zero_copy_only=False)
    zone_len = pc.fill_null(pc.binary_length(parts.field("zone")), 0).to_numpy(zero_copy_only=False)
    frac_len = pc.fill_null(pc.binary_length(parts.field("frac")), 0).to_numpy(zero_copy_only=False)
    has_zone = shaped & (zone_len > 0)
    result = np.zeros(n, dtype=np.int64)
    good = np.zeros(n, dtype=bool)
    if (frac_len > 7).any():  # a dot and more than six digits: keep microseconds
        text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")
    for rows, local in ((has_zone, False), (shaped & ~has_zone & (timezone is not None), True)):
        if not rows.any():
            continue
        subset = pc.filter(text, pa.array(rows))
        micros, ok = _cast_rows(subset, pa.timestamp("us") if local else target)
        if local:
            assert timezone is not None
            naive = pa.array(micros, type=pa.int64(), mask=~ok).cast(pa.timestamp("us"))
            zoned = pc.assume_timezone(naive, timezone, ambiguous="earliest", nonexistent="earliest")
            micros = pc.fill_null(zoned.cast(pa.int64()), 0).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(rows)
        result[idx] = micros
        good[idx] = ok
    good &= _in_calendar(result, _UNIT_PER_DAY["us"])
    faults["TIME_INVALID"] = present & ~good
    return pa.array(np.where(good, result, 0), type=pa.int64(), mask=~good).cast(target), faults


def read_decimal(values: pa.Array, *, precision: int = 18, scale: int = 4) -> tuple[pa.Array, Faults]:
    """Non-negative decimals; anything else is NUMBER_INVALID."""
    target = pa.decimal128(precision, scale)
    t = values.type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        values = pc.cast(values, pa.string())
    text, faults = read_text(values)
    n = len(text)
    quantum = decimal.Decimal(1).scaleb(-scale)
    limit = decimal.Decimal(10) ** (precision - scale)
    out: list[decimal.Decimal | None] = []
    bad = _mask(n)
    for i, raw in enumerate(text.to_pylist()):
        if raw is None:
            out.append(None)
            continue
        try:
            value = decimal.Decimal(raw.replace(",", ""))
            if not value.is_finite() or value < 0 or value >= limit:
                raise decimal.InvalidOperation
            value = value.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN)
            if value >= limit:  # rounded up past the largest amount
                raise decimal.InvalidOperation
            out.append(value)
        except (decimal.InvalidOperation, ValueError):
            bad[i] = True
            out.append(None)
    faults["NUMBER_INVALID"] = bad
    return pa.array(out, type=target), faults


def read_json(values: pa.Array) -> tuple[pa.Array, Faults]:
    """JSON objects, kept as compact text; anything else is SURFACE_INVALID."""
    text, faults = to_string(values)
    bad = _mask(len(text))
    out: list[str | None] = []
    for i, raw in enumerate(text.to_pylist()):
        if raw is None or not raw.strip():
            out.append(None)
            continue
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError
            canonical = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
            canonical.encode("utf-8")  # a lone surrogate escape such as \ud800 has no UTF-8 form
            out.append(canonical)
        except (ValueError, RecursionError):
            bad[i] = True
            out.append(None)
    faults["SURFACE_INVALID"] = bad
    return pa.array(out, type=pa.string()), faults


def check_zone(name: str) -> str:
    """Validate a time zone name (from a mapping); ValueError when unknown."""
    try:
        ZoneInfo(name)
    except Exception as exc:
        raise ValueError(f"unknown time zone: {name}") from exc
    return name
