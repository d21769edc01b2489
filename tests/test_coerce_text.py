"""read_text's byte-level shortcuts agree with Arrow's own string kernels."""

from __future__ import annotations

import sys
import unicodedata

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import coerce

# Every character Unicode calls whitespace, plus ordinary text around it.
SPACES = "".join(
    c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace() or unicodedata.category(c) == "Zs"
)
TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(SPACES), max_size=12
)


@settings(max_examples=300, deadline=None, database=None)
@given(cells=st.lists(st.none() | TEXT, min_size=1, max_size=20))
def test_trimming_matches_arrow(cells: list[str | None]) -> None:
    arr = pa.array(cells, type=pa.string())
    got, faults = coerce.read_text(arr)
    trimmed = pc.utf8_trim_whitespace(arr).to_pylist()
    want = [None if t is None or t == "" else t for t in trimmed]
    # Whitespace controls (1C-1F) inside a value are rejected; everywhere else the text is Arrow's trim.
    control = faults.get("CHAR_INVALID")
    if control is not None:
        want = [None if c else w for w, c in zip(want, control.tolist(), strict=True)]
    assert got.to_pylist() == want


@settings(max_examples=200, deadline=None, database=None)
@given(cells=st.lists(st.none() | st.text(max_size=10), min_size=1, max_size=20))
def test_control_characters_are_found_exactly(cells: list[str | None]) -> None:
    arr = pa.array(cells, type=pa.string())
    _, faults = coerce.read_text(arr)
    controls = set(map(chr, [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]))
    trimmed = pc.utf8_trim_whitespace(arr).to_pylist()
    want = [t is not None and any(c in controls for c in t) for t in trimmed]
    got = faults["CHAR_INVALID"].tolist() if "CHAR_INVALID" in faults else [False] * len(cells)
    assert got == want


def test_full_width_identifiers_are_normalized() -> None:
    got, _ = coerce.read_text(
        pa.array(["１１０１０５１９４９１２３１００２ｘ", " 91110000600037341l "]), upper=True
    )
    assert got.to_pylist() == ["11010519491231002X", "91110000600037341L"]
