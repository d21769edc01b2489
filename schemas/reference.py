"""Render the data-contract reference (``docs/datasets.md``) from the contracts themselves.

The page is generated, never hand-edited, so it cannot drift from the code: a
test compares the committed page with :func:`render`. Regenerate it with
``tongban schema --markdown > docs/datasets.md``.
"""

from __future__ import annotations

import schemas
from schemas.contract import Dataset
from schemas.rules import RULES

__all__ = ["render", "render_dataset"]


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
        if f.personal_when:
            sensitivity += f" (personal when `{f.personal_when[0]}` = `{f.personal_when[1]}`)"
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
