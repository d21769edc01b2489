"""The demo exchange on the embedded default: generate the counties' local systems, validate each.

Everything it makes stays under the working folder. The demo checks itself:
every defect the generator planted must be found with its code, and no clean
row may be rejected; otherwise it exits non-zero.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import TextIO

from connectors.errors import ExtractError
from tongban.generate import generate_demo
from tongban.validation import open_extract, validate_extract

__all__ = ["run_demo"]

_COLUMNS = (
    ("县 county", 10, False),
    ("数据集 dataset", 16, False),
    ("类型 kind", 11, False),
    ("行 rows", 9, True),
    ("拒绝 rejected", 15, True),
    ("警告 flagged", 14, True),
    ("预期 planted", 14, True),
)


def _cell(value: object, width: int, right: bool) -> str:
    """Pad to a display width, counting CJK characters as two columns."""
    text = str(value)
    shown = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    pad = " " * max(width - shown, 0)
    return pad + text if right else text + pad


def _line(values: list[object]) -> str:
    return "".join(_cell(v, w, r) for v, (_, w, r) in zip(values, _COLUMNS, strict=True))


def run_demo(workdir: Path, *, seed: int = 2026, out: TextIO, as_json: bool = False) -> int:
    """Generate and validate; 0 when validation found exactly the planted defects."""
    manifest = generate_demo(workdir, seed=seed)
    systems = manifest["systems"]
    if not as_json:
        out.write(f"通办演示 Tongban demo → {workdir}\n")
        out.write(_line([c for c, _, _ in _COLUMNS]) + "  文件 file\n")
    totals = {"rows": 0, "rejected": 0, "flagged": 0, "planted": 0, "missed": 0, "unexpected": 0}
    for system in systems:
        path = workdir / system["path"]
        try:
            extract = open_extract(
                system["dataset"], path, mapping=workdir / system["mapping"], table=system.get("table")
            )
            validator, results = validate_extract(extract)
            found: dict[int, set[str]] = {}
            for result in results:
                for report in result.reports():
                    if report.severity == "error":
                        found[report.row] = set(report.codes)
        except ExtractError as exc:
            out.write(f"错误 error {exc.code}: {exc.message_zh} / {exc.message_en} [{exc.where}]\n")
            return 2
        planted = {d["row"]: set(d["codes"]) for d in system["defects"]}
        missed = sum(1 for row, codes in planted.items() if not codes <= found.get(row, set()))
        unexpected = sum(1 for row in found if row not in planted)
        s = validator.summary
        totals["rows"] += s.rows
        totals["rejected"] += s.rejected
        totals["flagged"] += s.flagged
        totals["planted"] += len(planted)
        totals["missed"] += missed
        totals["unexpected"] += unexpected
        if as_json:
            out.write(
                json.dumps(
                    {
                        **s.as_dict(),
                        "county": system["county"],
                        "kind": system["kind"],
                        "file": system["path"],
                        "planted": len(planted),
                        "missed": missed,
                        "unexpected": unexpected,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        else:
            row = [
                system["county"],
                system["dataset"],
                system["kind"],
                s.rows,
                s.rejected,
                s.flagged,
                len(planted),
            ]
            out.write(_line(row) + f"  {system['path']}\n")
    ok = totals["missed"] == 0 and totals["unexpected"] == 0
    if not as_json:
        out.write(
            f"\n合计 total: {totals['rows']} 行 rows, {totals['rejected']} 拒绝 rejected, "
            f"{totals['flagged']} 警告 flagged; 预期缺陷 planted {totals['planted']}, "
            f"漏检 missed {totals['missed']}, 误拒 unexpected {totals['unexpected']}\n"
            f"{'全部缺陷均被发现 every planted defect was found' if ok else '校验结果与预期不符 results differ'}\n"
            f"查看某个系统 look at one system: tongban validate population "
            f"{workdir / systems[0]['path']} --mapping {workdir / systems[0]['mapping']}\n"
        )
    return 0 if ok else 1
