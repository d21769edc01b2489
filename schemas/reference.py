"""Render the reference pages from the code itself: the data contracts (``docs/datasets.md``) and
the error catalogue (``docs/errors.md``).

The pages are generated, never hand-edited, so they cannot drift from the code: tests compare the
committed pages with :func:`render` and :func:`render_errors`. Regenerate them with
``tongban schema --markdown > docs/datasets.md`` and ``tongban errors --markdown > docs/errors.md``.
"""

from __future__ import annotations

import schemas
from schemas.contract import Dataset
from schemas.errors import CATALOGUE
from schemas.rules import RULES

__all__ = ["render", "render_dataset", "render_errors"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_dataset(dataset: Dataset) -> str:
    """One dataset's section: its fields, with kind, sensitivity and allowed codes."""
    lines = [
        f"## {dataset.name} ({dataset.label})",
        "",
        dataset.description,
        "",
        f"Key: `{dataset.key}`. Owner (the issuing node's division): `{dataset.owner_field}`.",
        "",
        "| field | 中文 | kind | type | required | sensitivity | codes / max length | description |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in dataset.fields:
        if len(f.codes) > 12:
            codes = f"{len(f.codes)} codes, see description"
        elif f.codes:
            codes = ", ".join(f"`{c}`" for c in f.codes)
        else:
            codes = f"≤ {f.max_length}" if f.max_length else ""
        sensitivity = str(f.sensitivity)
        if f.public_when:
            sensitivity = f"personal unless `{f.public_when[0]}` = `{f.public_when[1]}`"
        lines.append(
            f"| `{f.name}` | {f.label} | {f.kind} | {f.type} | {'yes' if f.required else 'no'} | "
            f"{sensitivity} | {codes} | {_cell(f.description)} |"
        )
    return "\n".join(lines) + "\n"


def render() -> str:
    """The whole reference page: every dataset, then every rule code."""
    parts = [
        "# Data contracts (数据契约)",
        "",
        "Generated from `schemas/` by `tongban schema --markdown`; do not edit by hand.",
        "",
    ]
    parts += [render_dataset(d) for d in schemas.DATASETS.values()]
    parts += [
        "## Rule codes (校验规则)",
        "",
        "Errors reject the row (it goes to failed transfers); warnings load it, flagged.",
        "",
        "| code | severity | 中文 | English |",
        "|---|---|---|---|",
    ]
    parts += [f"| `{r.code}` | {r.severity} | {_cell(r.zh)} | {_cell(r.en)} |" for r in RULES.values()]
    return "\n".join(parts) + "\n"


_AREAS = {
    "config": "交换配置 The exchange config (exchange.yaml)",
    "mapping": "映射与数据集 Mappings and datasets",
    "file": "文件与投放目录 Files and drop folders",
    "system": "本地系统 Local SQL systems",
    "library": "库 Libraries",
    "trust": "密钥与信任列表 Keys and the trust list",
    "batch": "批次 Batches (refused whole, kept as a failed transfer)",
    "row": "行 Rows (beside the rule codes)",
    "spool": "运行目录 The spool",
    "run": "运行 Runs",
    "reconcile": "对账 Reconciling a child's library with its parent's (maintenance)",
    "audit": "审计日志 The audit log",
    "web": "网页服务 The web service (API and pages)",
    "review": "复核 Operator review of failed transfers (tongban failed, the review page)",
    "cli": "命令行 The command line",
    "demo": "演示 The demo",
}


def render_errors() -> str:
    """The error catalogue as a page: every operational code by area, with its meaning, whether
    Airflow retries it, and the exit code of the ``tongban`` command."""
    parts = [
        "# Error codes (错误代码)",
        "",
        "Generated from `schemas/errors.py` by `tongban errors --markdown`; do not edit by hand.",
        "Row findings (rejected or flagged rows) have their own codes: see [datasets.md](datasets.md).",
        "",
        "Exit codes of `tongban`: 0 ok, 1 rows rejected or files quarantined, 2 unusable input, "
        "3 internal error, 4 a run failed, 130 interrupted. *Retried*: Airflow retries the task with "
        "backoff; every other code fails it at once (retrying cannot help).",
        "",
    ]
    # An area not titled above still appears, under its own name (tests/test_errors.py asks for a title).
    areas = dict(_AREAS) | {e.area: e.area for e in CATALOGUE.values() if e.area not in _AREAS}
    for area, title in areas.items():
        entries = [e for e in CATALOGUE.values() if e.area == area]
        if not entries:
            continue
        parts += [f"## {title}", "", "| code | 中文 | English | retried | exit |", "|---|---|---|---|---|"]
        parts += [
            f"| `{e.code}` | {_cell(e.zh)} | {_cell(e.en)} | {'yes' if e.retryable else 'no'} | {int(e.exit)} |"
            for e in entries
        ]
        parts.append("")
    return "\n".join(parts)
