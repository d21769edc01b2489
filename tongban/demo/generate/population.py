"""population (人口基础信息): people with GB 11643 ID numbers whose area code was valid in their birth year
(retired codes included), names matching their ethnicity, addresses, migration and deaths.

>>> t = population_table(3, seed=1)
>>> t.num_rows, t.schema.field("birth_date").type
(3, DataType(date32[day]))
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import population as contract
from schemas.standards import gbt2261
from tongban.demo.generate.columns import ascii_digits, by_group, join, label, make_unique, strings
from tongban.demo.generate.dates import DAYS_PER_YEAR, REF_DAY, YEAR0, days, updated, ymd
from tongban.demo.generate.defects import copy_identity, corrupt_check, impossible, new_draft
from tongban.demo.generate.drafts import Cols, Draft, Holders, arrow_schema, bulk_rngs, holders
from tongban.demo.generate.identifiers import id_check
from tongban.demo.generate.names import Pools, pools
from tongban.demo.generate.places import (
    ORIGIN_PROVINCES,
    Place,
    moved_to,
    origin_pool,
    places_of,
    sample_valid,
    year_codes,
)

__all__ = ["POPULATION_SCHEMA", "population_table"]

POPULATION_SCHEMA = arrow_schema(contract.DATASET)
_TS = POPULATION_SCHEMA.field("updated_at").type

# Share of each five-year age band (0-4 ... 95-99), a smoothed 2020 census pyramid.
_AGE_BANDS = np.array(
    [5.3, 6.0, 5.8, 5.2, 5.5, 6.5, 8.5, 8.0, 7.2, 6.8, 8.5, 8.5, 6.8, 5.5, 4.0, 2.7, 1.7, 0.8, 0.3, 0.1]
)
_AGE_BANDS /= _AGE_BANDS.sum()

# GB/T 3304 ethnicity mixes (code -> share); 01 汉 02 蒙古 03 回 04 藏 05 维吾尔 06 苗 07 彝 08 壮 11 满
# 15 土家 30 土 31 达斡尔 35 撒拉; 97 其他未识别民族, 98 外国血统中国籍人士.
# fmt: off
_ETHNICITY_MIX: dict[str, dict[int, float]] = {
    "630104": {1: 0.76, 3: 0.15, 4: 0.05, 30: 0.02, 35: 0.01, 2: 0.01},
    "630121": {1: 0.60, 3: 0.25, 30: 0.09, 4: 0.05, 2: 0.01},
    "630123": {1: 0.92, 4: 0.04, 3: 0.03, 30: 0.01},
    "632523": {1: 0.50, 4: 0.37, 3: 0.10, 30: 0.02, 35: 0.01},
    "632823": {4: 0.64, 1: 0.22, 3: 0.07, 2: 0.06, 30: 0.01},
    "430981": {1: 0.995, 15: 0.003, 6: 0.002},
    "621121": {1: 0.998, 3: 0.002},
    "320614": {1: 0.997, 3: 0.001, 11: 0.001, 6: 0.001},
    "150205": {1: 0.90, 2: 0.05, 3: 0.02, 11: 0.02, 31: 0.01},
    "630000": {1: 0.53, 4: 0.24, 3: 0.15, 30: 0.04, 35: 0.02, 2: 0.02},
    "150000": {1: 0.79, 2: 0.17, 11: 0.02, 3: 0.01, 31: 0.01},
    "": {1: 0.913, 8: 0.014, 3: 0.008, 11: 0.008, 5: 0.008, 6: 0.008, 7: 0.007,
         15: 0.007, 4: 0.005, 2: 0.005, 30: 0.001, 97: 0.0005, 98: 0.0005},
}
# fmt: on
_BAD_ETHNICITY = np.array([0, 57, 60, 99], dtype=np.int64)  # not GB/T 3304 codes


def _ethnicity_mix(place: Place) -> tuple[np.ndarray, np.ndarray]:
    mix = _ETHNICITY_MIX.get(place.code) or _ETHNICITY_MIX.get(place.province_code) or _ETHNICITY_MIX[""]
    codes = np.array(list(mix), dtype=np.int64)
    shares = np.array(list(mix.values()))
    return codes, shares / shares.sum()


def _draw(rng: np.random.Generator, county: np.ndarray, places: list[Place], words: Pools) -> Cols:
    """Clean population columns (numpy) for people living in ``places[county]``."""
    n = len(county)
    band = rng.choice(len(_AGE_BANDS), n, p=_AGE_BANDS)
    age_days = ((band * 5 + rng.random(n) * 5) * DAYS_PER_YEAR).astype(np.int64)
    birth = REF_DAY - 1 - age_days
    year = ymd(birth)[0]
    male = rng.random(n) < 0.51

    ethnicity = np.ones(n, dtype=np.int64)
    area = np.zeros(n, dtype=np.int64)
    migrant = rng.random(n) < 0.12
    same_province = rng.random(n) < 0.7
    others = origin_pool(ORIGIN_PROVINCES)
    for k, place in enumerate(places):
        rows = np.flatnonzero(county == k)
        codes, shares = _ethnicity_mix(place)
        ethnicity[rows] = rng.choice(codes, len(rows), p=shares)
        area[rows] = year_codes(place.code)[year[rows] - YEAR0]
        for pool, mask in ((origin_pool((place.code[:2],)), same_province), (others, ~same_province)):
            moved_in = rows[migrant[rows] & mask[rows]]
            origin = sample_valid(rng, *pool, year[moved_in])
            area[moved_in] = np.where(origin > 0, origin, area[moved_in])

    group = np.select([ethnicity == 4, ethnicity == 2], [1, 2], 0)
    sex = np.where(male, 0, 1)
    name = words.name_start[group, sex] + (rng.random(n) * words.name_size[group, sex]).astype(np.int64)

    seq = np.zeros(n, dtype=np.int64)

    def draw_sequence(rows: np.ndarray) -> None:
        """Sequence numbers: odd for men, even for women."""
        seq[rows] = 2 * rng.integers(0, 499, len(rows)) + np.where(male[rows], 1, 2)

    draw_sequence(np.arange(n))
    y, m, d = ymd(birth)
    stem = area * 10**11 + (y * 10000 + m * 100 + d) * 1000
    make_unique(lambda rows: stem[rows] + seq[rows], draw_sequence, n)  # unique 17-digit bodies

    age = (REF_DAY - birth) / DAYS_PER_YEAR
    deceased = rng.random(n) < np.select([age > 75, age > 60], [0.12, 0.03], 0.003)
    moved = ~deceased & (rng.random(n) < 0.05)
    status = np.select([moved, deceased], [1, 2], 0)

    rural_share = np.array(
        [0.55 if p.name.endswith("县") else 0.3 if p.name.endswith("市") else 0.1 for p in places]
    )
    return {
        "county": county,
        "area": area,
        "birth": birth,
        "seq": seq,
        "gender": np.where(male, int(gbt2261.MALE), int(gbt2261.FEMALE)),
        "ethnicity": ethnicity,
        "name": name,
        "street": rng.integers(0, len(words.streets), n),
        "village": rng.integers(0, len(words.villages), n),
        "rural": rng.random(n) < rural_share[county],
        "house": rng.integers(1, 300, n),
        "building": rng.integers(1, 30, n),
        "unit": rng.integers(1, 7, n),
        "room": rng.integers(1, 28, n) * 100 + rng.integers(1, 5, n),
        "status": status,
        "moved_to": moved_to(rng, county, places, moved),
        "updated": updated(rng, birth),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _plant(
    rng: np.random.Generator,
    cols: Cols,
    rate: float,
    legacy_rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> Draft:
    """Plant the defects, and choose the valid rows written as 15-digit legacy numbers."""
    draft = new_draft(rng, cols, "population", rate, segments, textual)
    corrupt_check(draft, rng, 11)
    impossible(draft, rng, "birth_date", cols["birth"])
    rows = draft.rows("gender_mismatch")
    cols["gender"][rows] = 3 - cols["gender"][rows]
    rows = draft.rows("unknown_ethnicity")
    cols["ethnicity"][rows] = _BAD_ETHNICITY[rng.integers(0, len(_BAD_ETHNICITY), len(rows))]
    copy_identity(draft, ("area", "birth", "seq", "gender"))
    sources = np.zeros(draft.n, dtype=bool)
    sources[draft.source[draft.source >= 0]] = True
    born_1900s = (cols["birth"] < days(2000)) & (cols["birth"] >= days(1900))
    draft.legacy = (draft.kind < 0) & ~sources & born_1900s & (rng.random(draft.n) < legacy_rate)
    return draft


def _render(draft: Draft, places: list[Place], words: Pools) -> pa.Table:
    """The canonical Arrow table of a draft."""
    c = draft.cols
    if not draft.n:
        return POPULATION_SCHEMA.empty_table()
    y, m, d = ymd(c["birth"])
    body = np.hstack(
        [ascii_digits(c["area"], 6), ascii_digits(y * 10000 + m * 100 + d, 8), ascii_digits(c["seq"], 3)]
    )
    ids = strings(np.hstack([body, id_check(body, c["shift"])[:, None]]))
    if draft.legacy is not None and draft.legacy.any():
        old = np.flatnonzero(draft.legacy)
        legacy = strings(np.hstack([body[old, :6], body[old, 8:]]))
        ids = pc.replace_with_mask(ids, pa.array(draft.legacy), legacy)
    county = pa.array(c["county"])
    prefixes = pa.array([p.address_prefix for p in places])

    def urban(r: np.ndarray) -> pa.Array:  # 青海省西宁市城西区胜利路12号3栋2单元1502室
        return join(
            prefixes.take(pa.array(c["county"][r])),
            words.streets.take(pa.array(c["street"][r])),
            label(c["house"][r], "号"),
            label(c["building"][r], "栋"),
            label(c["unit"][r], "单元"),
            label(c["room"][r], "室"),
        )

    def rural(r: np.ndarray) -> pa.Array:  # 青海省海南藏族自治州贵德县王家庄村3社45号
        return join(
            prefixes.take(pa.array(c["county"][r])),
            words.villages.take(pa.array(c["village"][r])),
            label(c["unit"][r], "社"),
            label(c["house"][r], "号"),
        )

    moved = c["status"] == 1
    return pa.Table.from_arrays(
        [
            ids,
            words.names.take(pa.array(c["name"])),
            strings((c["gender"] + 48).astype(np.uint8)[:, None]),
            strings(ascii_digits(c["ethnicity"], 2)),
            pa.array(c["birth"].astype(np.int32), pa.date32()),
            pa.array([p.code for p in places]).take(county),
            by_group(c["rural"].astype(np.int8), [urban, rural]),
            pa.array(contract.STATUSES).take(pa.array(c["status"])),
            pc.if_else(
                pa.array(moved), strings(ascii_digits(c["moved_to"], 6)), pa.scalar(None, pa.string())
            ),
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=POPULATION_SCHEMA,
    )


def make_people(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[Place],
    words: Pools,
    rate: float,
    legacy_rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[Draft, pa.Table]:
    """People living in ``places[county]``, defects planted: the draft and its Arrow table."""
    draft = _plant(rng, _draw(rng, county, places, words), rate, legacy_rate, segments, textual)
    return draft, _render(draft, places, words)


def helper_persons(rng: np.random.Generator, places: list[Place], words: Pools, n: int) -> Holders:
    """A clean population, not written anywhere, to draw representatives and holders from."""
    county = rng.integers(0, len(places), max(n, 10 * len(places)))
    draft, table = make_people(rng, county, places, words, 0.0, 0.0, None, False)
    return holders(draft, table, "id_number", "birth")


def population_table(
    n: int,
    *,
    seed: int = 0,
    defect_rate: float = 0.0,
    divisions: Sequence[str] | None = None,
    legacy_rate: float = 0.0,
) -> pa.Table:
    """``n`` canonical population rows spread over ``divisions`` (default: the demo counties).

    ``defect_rate`` of the rows carry one defect each (wrong check, gender mismatch, unknown ethnicity,
    duplicate key; impossible dates cannot exist in a typed table); ``legacy_rate`` of the people born
    in the 1900s carry 15-digit IDs.
    """
    places = places_of(divisions)
    rng = bulk_rngs(seed)[0]
    county = rng.integers(0, len(places), n)
    return make_people(rng, county, places, pools(seed), defect_rate, legacy_rate, None, False)[1]
