"""Structured logs: one JSON object per line when not on a terminal, a readable line when on one.

Every part logs through the standard library under the ``tongban`` logger, with its facts passed as
``fields`` (:func:`event`): run id, edge, batch id, code, counts, cursor range, Merkle root. Only the
fields named in :data:`FIELDS` are kept, and every text value has identity numbers masked
(:func:`tongban.core.masking.mask_text`): a log never carries a personal field, only codes, keys'
digests and counts (SPEC section 12).

:func:`configure` installs the handler (JSON unless the stream is a terminal; ``TONGBAN_LOG=json`` or
``text`` decides instead). Under Airflow the adapter hands the same records to Airflow's task log
(``tongban.airflow.logs``), so a task's log shows each step's fields as keys.

>>> import io
>>> out = io.StringIO()
>>> _ = configure(out, json_lines=True)
>>> event(get("tongban.demo"), "load", "loaded", edge="population.a.b", rows=3, name="张三")
>>> line = json.loads(out.getvalue())
>>> line["event"], line["edge"], line["rows"], "name" in line
('load', 'population.a.b', 3, False)
>>> unconfigure()
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import sys
from typing import Any, TextIO

from tongban.core.masking import mask_text

__all__ = [
    "FIELDS",
    "JsonFormatter",
    "TextFormatter",
    "configure",
    "event",
    "fields_of",
    "get",
    "unconfigure",
]

ROOT = "tongban"

#: The facts a log line may carry (anything else passed is dropped: no personal field gets through).
FIELDS = frozenset(
    {
        "run_id",
        "edge",
        "dataset",
        "source",
        "target",
        "step",
        "batch_id",
        "batches",
        "code",
        "codes",
        "rejected_by_code",
        "rows",
        "accepted",
        "rejected",
        "flagged",
        "inserted",
        "updated",
        "unchanged",
        "stale",
        "conflicts",
        "duplicates",
        "quarantined",
        "archived",
        "cursor_from",
        "cursor_to",
        "root",
        "seconds",
        "node",
        "pair",
        "missing",
        "extra",
        "different",
        "buckets",
        "expired",
        "removed",
        "bytes",
        "dag_id",
        "task_id",
        "map_index",
        "try_number",
        "log_url",
    }
)

_ATTR = "tongban_fields"


def get(name: str = ROOT) -> logging.Logger:
    """A logger under ``tongban``."""
    return logging.getLogger(name if name.startswith(ROOT) else f"{ROOT}.{name}")


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bool | int | float) or value is None:
        return value
    if depth > 4:
        return mask_text(str(value))
    if isinstance(value, dict):
        return {mask_text(str(k)): _clean(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_clean(v, depth + 1) for v in value]
    return mask_text(str(value))


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The structured fields a record carries (already filtered and masked)."""
    return dict(getattr(record, _ATTR, None) or {})


def event(
    logger: logging.Logger, name: str, message: str, /, *, level: int = logging.INFO, **fields: Any
) -> None:
    """Log ``message`` as event ``name`` with ``fields`` (only those in :data:`FIELDS`, masked)."""
    if not logger.isEnabledFor(level):
        return
    kept = {k: _clean(v) for k, v in fields.items() if k in FIELDS and v is not None}
    logger.log(level, mask_text(message), extra={_ATTR: {"event": name, **kept}})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, message and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        out: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": fields.pop("event", None) or "log",
            "message": mask_text(record.getMessage()),
            **fields,
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__
        return json.dumps(out, ensure_ascii=False, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """A readable line: time, level, message, then the fields as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        fields.pop("event", None)
        when = _dt.datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        extra = " ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in fields.items())
        return f"{when} {record.levelname:<7} {mask_text(record.getMessage())}" + (
            f"  {extra}" if extra else ""
        )


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure` installs (so a second call replaces it instead of adding one)."""


def configure(
    stream: TextIO | None = None, *, json_lines: bool | None = None, level: int = logging.INFO
) -> logging.Handler:
    """Send ``tongban`` logs to ``stream`` (stderr): JSON lines unless it is a terminal.

    ``TONGBAN_LOG=json`` or ``text`` overrides the terminal check; ``json_lines`` overrides both.
    """
    stream = stream or sys.stderr
    if json_lines is None:
        choice = os.environ.get("TONGBAN_LOG", "").strip().lower()
        json_lines = choice == "json" or (choice != "text" and not _is_tty(stream))
    logger = logging.getLogger(ROOT)
    unconfigure()
    handler = _Handler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def unconfigure() -> None:
    """Remove what :func:`configure` installed (records propagate to the root logger again)."""
    logger = logging.getLogger(ROOT)
    for h in list(logger.handlers):
        if isinstance(h, _Handler):
            logger.removeHandler(h)
    logger.propagate = True


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
