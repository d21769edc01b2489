"""license (电子证照, GB/T 36903 metadata): business licences, food and drug permits, birth certificates and
household certificates held by the generated businesses and people, with GB/T 36904 identifiers.

>>> t = license_table(3, seed=1)
>>> t.num_rows, t.column("license_id")[0].as_py().startswith("1.2.156.3005.2.")
(3, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import license as contract
from schemas.standards import gb11714, gb32100, gbt36904
from tongban.demo.generate.business import make_businesses
from tongban.demo.generate.columns import (
    ascii_digits,
    by_group,
    byte_rows,
    join,
    make_unique,
    pick,
    rows,
    strings,
    text,
)
from tongban.demo.generate.dates import DAYS_PER_YEAR, REF_DAY, days, updated, ymd
from tongban.demo.generate.defects import copy_identity, corrupt_check, impossible, new_draft
from tongban.demo.generate.drafts import Cols, Draft, Holders, arrow_schema, bulk_rngs, holders
from tongban.demo.generate.identifiers import (
    ALNUM,
    ALNUM_VALUE,
    government_uscc,
    license_check,
    mod_37_36_states,
)
from tongban.demo.generate.names import pools
from tongban.demo.generate.places import Place, places_of
from tongban.demo.generate.population import helper_persons

__all__ = ["LICENSE_SCHEMA", "license_table"]

LICENSE_SCHEMA = arrow_schema(contract.DATASET)
_TS = LICENSE_SCHEMA.field("updated_at").type

# Ministries defining license types: name -> invented body of their GB 11714 code (USCC category 11).
_MINISTRIES = {
    "国家市场监督管理总局": "00000962",
    "国家药品监督管理局": "00001383",
    "国家卫生健康委员会": "00001941",
    "公安部": "00001856",
}
_DEPARTMENTS = ("市场监督管理局", "公安局", "卫生健康局")

# fmt: off
_PROVINCE_ABBR = {
    "11": "京", "12": "津", "13": "冀", "14": "晋", "15": "蒙", "21": "辽", "22": "吉", "23": "黑",
    "31": "沪", "32": "苏", "33": "浙", "34": "皖", "35": "闽", "36": "赣", "37": "鲁", "41": "豫",
    "42": "鄂", "43": "湘", "44": "粤", "45": "桂", "46": "琼", "50": "渝", "51": "川", "52": "贵",
    "53": "云", "54": "藏", "61": "陕", "62": "甘", "63": "青", "64": "宁", "65": "新",
}
# fmt: on


@dataclass(frozen=True, slots=True)
class _LicenseType:
    name: str
    ministry: str
    suffix: str  # three digits after the ministry's USCC
    department: int  # index into _DEPARTMENTS (the county office that issues it)
    holder: str  # "business", "newborn" (born since 1996) or "person"
    share: float

    @property
    def code(self) -> str:
        body = _MINISTRIES[self.ministry]
        first17 = f"11100000{body}{gb11714.calc_check_digit(body)}"
        return first17 + gb32100.calc_check_digit(first17) + self.suffix


_LICENSE_TYPES = (
    _LicenseType("营业执照", "国家市场监督管理总局", "001", 0, "business", 0.35),
    _LicenseType("食品经营许可证", "国家市场监督管理总局", "014", 0, "business", 0.18),
    _LicenseType("药品经营许可证", "国家药品监督管理局", "003", 0, "business", 0.05),
    _LicenseType("出生医学证明", "国家卫生健康委员会", "001", 2, "newborn", 0.22),
    _LicenseType("户籍证明", "公安部", "007", 1, "person", 0.20),
)
_BUSINESS_LICENCE, _FOOD_PERMIT, _DRUG_PERMIT, _BIRTH_CERTIFICATE, _HOUSEHOLD_CERTIFICATE = range(5)
_STATUS = tuple(contract.STATUSES)
_EXPIRED, _REVOKED, _CANCELLED, _MOVED = (_STATUS.index(s) for s in ("05", "07", "04", "06"))
_BIRTH_CERT_FROM = days(1996)


def _candidates(kind: str, k: int, persons: Holders, firms: Holders) -> np.ndarray:
    """Holder candidates (indexes into firms or persons) of one county, else of every county."""
    if kind == "business":
        mask = np.ones(len(firms.county), dtype=bool)
        county = firms.county
    else:
        mask = persons.status != 2
        if kind == "newborn":
            mask &= persons.since >= _BIRTH_CERT_FROM
        county = persons.county
    local = np.flatnonzero(mask & (county == k))
    return local if len(local) else np.flatnonzero(mask)


def _draw(
    rng: np.random.Generator, county: np.ndarray, places: list[Place], persons: Holders, firms: Holders
) -> Cols:
    """Clean license columns (numpy) for licenses issued in ``places[county]``."""
    n = len(county)
    share = np.array([t.share for t in _LICENSE_TYPES])
    type_ = np.zeros(n, dtype=np.int64)
    holder = np.zeros(n, dtype=np.int64)
    for k in range(len(places)):
        rows_k = np.flatnonzero(county == k)
        if not len(rows_k):
            continue
        cands = [_candidates(t.holder, k, persons, firms) for t in _LICENSE_TYPES]
        weights = share * np.array([len(c) > 0 for c in cands])
        if not weights.sum():
            raise ValueError("no people or businesses to hold licenses")
        type_[rows_k] = rng.choice(len(_LICENSE_TYPES), len(rows_k), p=weights / weights.sum())
        for t, cand in enumerate(cands):
            sub = rows_k[type_[rows_k] == t]
            if len(sub):
                holder[sub] = pick(rng, cand, len(sub), unique=t in (_BUSINESS_LICENCE, _BIRTH_CERTIFICATE))

    is_firm = np.array([t.holder == "business" for t in _LICENSE_TYPES])[type_]
    safe = np.where(is_firm, holder, 0)
    est = firms.since[safe] if len(firms.county) else np.zeros(n, dtype=np.int64)
    birth = (
        persons.since[np.where(is_firm, 0, holder)] if len(persons.county) else np.zeros(n, dtype=np.int64)
    )
    last = REF_DAY - 1
    u = rng.random(n)
    recent = np.maximum(est, last - int(6 * DAYS_PER_YEAR))
    permit = (type_ == _FOOD_PERMIT) | (type_ == _DRUG_PERMIT)
    issue = np.select(  # business licences on registration (30% reissued later), births within a month
        [type_ == _BUSINESS_LICENCE, permit, type_ == _BIRTH_CERTIFICATE],
        [
            est + (u * (last - est) * (rng.random(n) < 0.3)).astype(np.int64),
            recent + (u * (last - recent)).astype(np.int64),
            np.minimum(birth + 1 + (u * 30).astype(np.int64), last),
        ],
        last - (u * 3 * 365).astype(np.int64),
    )
    valid_from = np.where(type_ == _BUSINESS_LICENCE, est, issue)
    term = (rng.choice([20, 30], n) * DAYS_PER_YEAR).astype(np.int64)
    valid_until = np.select(  # -1: long-term; most business licences have no fixed term
        [type_ == _BUSINESS_LICENCE, permit, type_ == _HOUSEHOLD_CERTIFICATE],
        [np.where(rng.random(n) < 0.15, valid_from + term, -1), valid_from + 5 * 365, valid_from + 89],
        -1,
    )

    status = rng.choice(len(_STATUS), n, p=[0.95, 0.01, 0.01, 0.02, 0.0, 0.0, 0.0, 0.01])
    status = np.where((valid_until >= 0) & (valid_until < REF_DAY), _EXPIRED, status)
    if len(firms.county):  # a business's licences follow its registration status
        firm_status = np.where(is_firm, firms.status[safe], 0)
        status = np.select(
            [firm_status == 1, firm_status == 2, firm_status == 3], [_REVOKED, _CANCELLED, _MOVED], status
        )

    version = rng.choice([1, 2, 3], n, p=[0.85, 0.12, 0.03])
    length = rng.integers(8, 13, n)
    serial = np.zeros((n, 12), dtype=np.uint8)
    serial[:, :4] = ascii_digits(ymd(issue)[0], 4)

    def draw_serial(rows: np.ndarray) -> None:
        """Serials: the issue year and 4 to 8 random characters (zero bytes pad to 12)."""
        serial[rows, 4:] = np.where(
            np.arange(4, 12) < length[rows, None], ALNUM[rng.integers(0, 36, (len(rows), 8))], 0
        )

    def serial_key(rows: np.ndarray) -> np.ndarray:
        return (ALNUM_VALUE[serial[rows]] + (serial[rows] > 0)) @ (37 ** np.arange(12, dtype=np.int64))

    draw_serial(np.arange(n))
    make_unique(serial_key, draw_serial, n)
    return {
        "county": county,
        "type": type_,
        "holder": holder,
        "issue": issue,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "status": status,
        "version": version,
        "serial": serial,
        "length": length,
        "number": rng.integers(0, 10**6, n),
        "kind_digit": rng.integers(1, 3, n),
        "updated": updated(rng, issue),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _plant(
    rng: np.random.Generator,
    cols: Cols,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> Draft:
    draft = new_draft(rng, cols, "license", rate, segments, textual)
    corrupt_check(draft, rng, 36)
    impossible(draft, rng, "issue_date", cols["issue"])
    planted = draft.rows("validity_order")
    cols["valid_until"][planted] = cols["valid_from"][planted] - rng.integers(1, 366, len(planted))
    identity = ("type", "holder", "serial", "length", "version", "number", "kind_digit")
    copy_identity(draft, (*identity, "issue", "valid_from", "valid_until"))
    return draft


def _cn_dates(values: np.ndarray) -> np.ndarray:
    """UTF-8 byte rows of dates as printed on certificates (2024年03月05日)."""
    y, m, d = ymd(values)
    return byte_rows(len(y), ascii_digits(y, 4), "年", ascii_digits(m, 2), "月", ascii_digits(d, 2), "日")


def _render(draft: Draft, places: list[Place], persons: Holders, firms: Holders) -> pa.Table:
    """The canonical Arrow table of a draft."""
    c = draft.cols
    n = draft.n
    if not n:
        return LICENSE_SCHEMA.empty_table()
    type_ = c["type"]
    county = c["county"]
    t_index = pa.array(type_)
    issuer_index = county * len(_DEPARTMENTS) + np.array([t.department for t in _LICENSE_TYPES])[type_]
    issuer_codes = [government_uscc(p.code, d) for p in places for d in _DEPARTMENTS]
    issuer_names = [p.authority_prefix + d for p in places for d in _DEPARTMENTS]

    # GB/T 36904 identifier: the type and issuer prefix is shared by many rows, so its check state is
    # computed once per (county, type) and only the serial and version are run per row.
    combos = [
        (t, issuer_codes[k * len(_DEPARTMENTS) + t.department])
        for k in range(len(places))
        for t in _LICENSE_TYPES
    ]
    combo = county * len(_LICENSE_TYPES) + type_
    prefix = rows([f"{gbt36904.PREFIX}{t.code}.{issuer}." for t, issuer in combos])[combo]
    state = mod_37_36_states([t.code + issuer for t, issuer in combos])[combo]
    version = ascii_digits(c["version"], 3)
    length = c["length"]
    check = license_check(state, np.hstack([c["serial"], version]), c["shift"])
    tail = byte_rows(n, ".", version, ".", check[:, None])
    positions = np.arange(18)
    rest = np.where(
        positions < length[:, None],
        np.hstack([c["serial"], tail]),
        np.take_along_axis(tail, np.clip(positions - length[:, None], 0, 5), axis=1),
    )
    license_id = strings(np.hstack([prefix, rest]), prefix.shape[1] + length + 6)

    is_firm = np.array([t.holder == "business" for t in _LICENSE_TYPES])[type_]
    firm_names = firms.names if len(firms.names) else pa.array([""])
    firm_codes = firms.codes if len(firms.codes) else pa.array([""])
    person_names = persons.names if len(persons.names) else pa.array([""])
    person_ids = persons.codes if len(persons.codes) else pa.array([""])
    firm_pick = pa.array(np.where(is_firm, c["holder"], 0))
    person_pick = pa.array(np.where(is_firm, 0, c["holder"]))
    firm_mask = pa.array(is_firm)
    holder_name = pc.if_else(firm_mask, firm_names.take(firm_pick), person_names.take(person_pick))
    holder_code = pc.if_else(firm_mask, firm_codes.take(firm_pick), person_ids.take(person_pick))

    division = rows([p.code for p in places])[county]
    abbr = rows([_PROVINCE_ABBR.get(p.code[:2], "中") for p in places])[county]
    seq = ascii_digits(c["number"], 6)
    year = ascii_digits(ymd(c["issue"])[0], 4)
    letter = ALNUM[10 + (ymd(c["issue"])[0] - 1996) % 26][:, None]  # birth certificate series

    def number_of(kind: int, r: np.ndarray) -> pa.Array:
        """The printed license number of rows ``r`` of one license type."""
        if kind == _BUSINESS_LICENCE:
            return holder_code.take(pa.array(r))  # the USCC
        if kind == _FOOD_PERMIT:  # JY + category + division + sequence + check digit
            return text(len(r), "JY", ascii_digits(c["kind_digit"][r], 1), division[r], seq[r],
                        ascii_digits(c["number"][r] % 7, 1))  # fmt: skip
        if kind == _DRUG_PERMIT:  # 青CB0104123
            return text(len(r), abbr[r], "CB", division[r, 2:], seq[r, 3:])
        if kind == _BIRTH_CERTIFICATE:  # Q630121123
            return text(len(r), letter[r], division[r], seq[r, 3:])
        return text(len(r), division[r], year[r], seq[r])  # 户籍证明

    number = by_group(type_, [partial(number_of, k) for k in range(len(_LICENSE_TYPES))])
    until = c["valid_until"]
    has_until = until >= 0
    validity = by_group(  # the end of the surface JSON: 有效期限 and the closing brace
        has_until.astype(np.int8),
        [
            lambda r: text(len(r), '长期"}'),
            lambda r: text(len(r), _cn_dates(c["valid_from"][r]), "至", _cn_dates(until[r]), '"}'),
        ],
    )
    type_name = pa.array([t.name for t in _LICENSE_TYPES]).take(t_index)
    issuer_part = pa.array([f'","发证机关":"{name}","发证日期":"' for name in issuer_names])
    surface = join(
        pa.array([f'{{"证照名称":"{t.name}","证照编号":"' for t in _LICENSE_TYPES]).take(t_index),
        number,
        '","持证主体":"',
        holder_name,
        '","持证主体代码":"',
        holder_code,
        issuer_part.take(pa.array(issuer_index)),
        text(n, _cn_dates(c["issue"]), '","有效期限":"'),
        validity,
    )
    return pa.Table.from_arrays(
        [
            license_id,
            strings(rows([t.code for t in _LICENSE_TYPES])[type_]),
            type_name,
            number,
            holder_name,
            holder_code,
            pc.if_else(firm_mask, "001", "111"),
            pa.array(issuer_names).take(pa.array(issuer_index)),
            pa.array(issuer_codes).take(pa.array(issuer_index)),
            pa.array(c["issue"].astype(np.int32), pa.date32()),
            pa.array(c["valid_from"].astype(np.int32), pa.date32()),
            pa.array(np.where(has_until, until, 0).astype(np.int32), pa.date32(), mask=~has_until),
            strings(division),
            pa.array(_STATUS).take(pa.array(c["status"])),
            surface,
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=LICENSE_SCHEMA,
    )


def make_licenses(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[Place],
    persons: Holders,
    firms: Holders,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[Draft, pa.Table]:
    """Licenses issued in ``places[county]``, defects planted: the draft and its Arrow table."""
    draft = _plant(rng, _draw(rng, county, places, persons, firms), rate, segments, textual)
    return draft, _render(draft, places, persons, firms)


def license_table(
    n: int, *, seed: int = 0, defect_rate: float = 0.0, divisions: Sequence[str] | None = None
) -> pa.Table:
    """``n`` canonical license rows (defects: wrong identifier check, duplicate key, validity order)."""
    places = places_of(divisions)
    rng_people, rng_firms, _, rng = bulk_rngs(seed)
    words = pools(seed)
    size = min(max(n // 2, 100), 200_000)
    persons = helper_persons(rng_people, places, words, size)
    firm_county = rng_firms.integers(0, len(places), size)
    firm_draft, firm_table = make_businesses(rng_firms, firm_county, places, words, persons, 0.0, None, False)
    county = rng.integers(0, len(places), n)
    firms = holders(firm_draft, firm_table, "uscc", "established")
    return make_licenses(rng, county, places, persons, firms, defect_rate, None, False)[1]
