"""business (市场主体登记): companies, individual businesses and cooperatives with GB 32100 USCCs (their
GB 11714 organization codes inside), legal representatives drawn from the population, names, scopes.

>>> t = business_table(3, seed=1)
>>> t.num_rows, t.schema.field("registered_capital").type
(3, Decimal128Type(decimal128(18, 4)))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas import business as contract
from tongban.demo.generate.columns import ascii_digits, by_group, byte_rows, join, label, make_unique, strings
from tongban.demo.generate.dates import DAYS_PER_YEAR, REF_DAY, YEAR0, updated, ymd
from tongban.demo.generate.defects import copy_identity, corrupt_check, impossible, new_draft
from tongban.demo.generate.drafts import Cols, Draft, Holders, arrow_schema, bulk_rngs
from tongban.demo.generate.identifiers import ALNUM_VALUE, USCC_ALPHABET, org_check, uscc_check
from tongban.demo.generate.names import Pools, pools
from tongban.demo.generate.places import Place, moved_to, places_of, year_codes
from tongban.demo.generate.population import helper_persons

__all__ = ["BUSINESS_SCHEMA", "business_table"]

BUSINESS_SCHEMA = arrow_schema(contract.DATASET)
_TS = BUSINESS_SCHEMA.field("updated_at").type
_CAPITAL = BUSINESS_SCHEMA.field("registered_capital").type

# (word in a company name, kind of shop of an individual business, business scope)
_INDUSTRIES = (
    ("商贸", "便利店", "日用百货、预包装食品、烟草制品零售"),
    ("餐饮管理", "面馆", "餐饮服务；食品销售"),
    ("建筑工程", "装饰部", "房屋建筑工程施工；建筑装饰装修工程施工"),
    ("农牧业开发", "农资店", "牛羊养殖；饲草种植；农畜产品收购、销售"),
    ("物流", "货运部", "普通货物道路运输；仓储服务（不含危险化学品）"),
    ("信息科技", "电脑维修部", "计算机软硬件技术开发、技术咨询、技术服务；电子产品销售"),
    ("文化传媒", "图文广告部", "广告设计、制作、代理、发布；文化艺术交流活动策划"),
    ("旅游开发", "客栈", "旅游景区开发；旅游信息咨询；住宿服务"),
    ("医药", "药店", "药品零售；医疗器械销售；保健食品销售"),
    ("汽车服务", "汽修部", "机动车维修；汽车零配件销售"),
    ("物业服务", "家政服务部", "物业管理；家政服务；保洁服务"),
    ("新能源", "电器店", "光伏发电项目开发；新能源技术推广服务；家用电器销售"),
    ("服饰", "服装店", "服装鞋帽、针纺织品零售"),
    ("农产品", "粮油店", "粮油、蔬菜、水果、农副产品销售"),
)
# fmt: off
_COOP_PRODUCTS = (
    "牦牛养殖", "藏羊养殖", "青稞种植", "油菜种植", "中药材种植", "马铃薯种植", "蔬菜种植", "生猪养殖",
    "奶牛养殖", "水产养殖", "农机服务", "果蔬种植",
)
# fmt: on

# Entity forms: (name, USCC category char, registered capital choices in 万元, their weights, share)
_FORMS = (
    (
        "有限责任公司",
        1,
        (10, 50, 100, 200, 300, 500, 1000, 2000, 5000),
        (5, 12, 25, 12, 10, 14, 12, 6, 4),
        0.50,
    ),
    ("股份有限公司", 1, (500, 1000, 3000, 5000, 10000), (20, 30, 25, 15, 10), 0.02),
    ("个人独资企业", 1, (1, 5, 10, 30, 50), (15, 25, 30, 20, 10), 0.05),
    ("合伙企业", 1, (10, 100, 500, 1000), (25, 40, 25, 10), 0.03),
    ("个体工商户", 2, (0.5, 1, 2, 3, 5, 10), (15, 25, 20, 15, 15, 10), 0.35),
    ("农民专业合作社", 3, (20, 50, 100, 200, 300), (15, 30, 30, 15, 10), 0.05),
)
_ADULT_DAYS = int(18 * DAYS_PER_YEAR) + 1


def _pick_adults(
    rng: np.random.Generator, persons: Holders, county: np.ndarray, latest_birth: np.ndarray
) -> np.ndarray:
    """Per row, a living person (index into ``persons``) of its county if possible, born early enough."""
    out = np.zeros(len(county), dtype=np.int64)
    alive = np.flatnonzero(persons.status != 2)
    if not len(alive):
        alive = np.arange(len(persons.status))
    for k in np.unique(county).tolist():
        rows = np.flatnonzero(county == k)
        local = alive[persons.county[alive] == k]
        cand = local if len(local) else alive
        cand = cand[np.argsort(persons.since[cand], kind="stable")]
        count = np.searchsorted(persons.since[cand], latest_birth[rows], side="right")
        count = np.where(count > 0, count, len(cand))  # nobody old enough: take anyone
        out[rows] = cand[(rng.random(len(rows)) * count).astype(np.int64)]
    return out


def _draw(
    rng: np.random.Generator, county: np.ndarray, places: list[Place], words: Pools, persons: Holders
) -> Cols:
    """Clean business columns (numpy) for entities registered in ``places[county]``."""
    n = len(county)
    if n and not len(persons.codes):
        raise ValueError("no people to act as legal representatives")
    age = np.minimum(rng.exponential(7.0, n), 30.0)
    established = REF_DAY - 1 - (age * DAYS_PER_YEAR).astype(np.int64)
    year = ymd(established)[0]
    form = rng.choice(len(_FORMS), n, p=np.array([f[4] for f in _FORMS]) / sum(f[4] for f in _FORMS))
    category = np.array([f[1] for f in _FORMS])[form]
    division = np.zeros(n, dtype=np.int64)
    for k, place in enumerate(places):  # USCCs date from 2015: the code in use when the USCC was issued
        rows = county == k
        division[rows] = year_codes(place.code)[np.maximum(year[rows], 2016) - YEAR0]

    new_style = year >= 2016
    body = np.empty((n, 8), dtype=np.uint8)

    def draw_body(rows: np.ndarray) -> None:
        """GB 11714 bodies: 8 digits for codes issued before 2016, ``MA`` + 6 characters since."""
        digits = ascii_digits(rng.integers(0, 10**8, len(rows)), 8)
        ma = byte_rows(len(rows), "MA", USCC_ALPHABET[rng.integers(0, 31, (len(rows), 6))])
        body[rows] = np.where(new_style[rows, None], ma, digits)

    draw_body(np.arange(n))
    make_unique(lambda rows: ALNUM_VALUE[body[rows]] @ (36 ** np.arange(8, dtype=np.int64)), draw_body, n)

    capital = np.zeros(n, dtype=np.float64)
    for i, (_, _, values, weights, _) in enumerate(_FORMS):
        rows = np.flatnonzero(form == i)
        capital[rows] = rng.choice(
            np.array(values, dtype=np.float64), len(rows), p=np.array(weights) / sum(weights)
        )
    odd = rng.random(n) < 0.15
    capital = np.where(odd, np.round(capital * rng.uniform(0.5, 1.5, n), 2), capital)

    status = rng.choice(4, n, p=[0.86, 0.03, 0.07, 0.04])
    return {
        "county": county,
        "established": established,
        "form": form,
        "category": category,
        "division": division,
        "body": body,
        "trade": rng.integers(0, len(words.trades), n),
        "shop_word": rng.integers(0, len(words.shop_words), n),
        "industry": rng.integers(0, len(_INDUSTRIES), n),
        "product": rng.integers(0, len(_COOP_PRODUCTS), n),
        "capital": np.round(capital * 10_000).astype(np.int64),
        "rep": _pick_adults(rng, persons, county, established - _ADULT_DAYS),
        "street": rng.integers(0, len(words.streets), n),
        "house": rng.integers(1, 500, n),
        "status": status,
        "moved_to": moved_to(rng, county, places, status == 3),
        "updated": updated(rng, established),
        "shift": np.zeros(n, dtype=np.int64),
    }


def _plant(
    rng: np.random.Generator,
    cols: Cols,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> Draft:
    draft = new_draft(rng, cols, "business", rate, segments, textual)
    corrupt_check(draft, rng, 31)
    impossible(draft, rng, "established_date", cols["established"])
    copy_identity(draft, ("category", "form", "division", "body"))
    return draft


def _decimal(unscaled: np.ndarray, type_: pa.Decimal128Type) -> pa.Array:
    """decimal128 array from int64 unscaled values."""
    words = np.empty((len(unscaled), 2), dtype=np.int64)
    words[:, 0] = unscaled
    words[:, 1] = np.where(unscaled < 0, -1, 0)
    return pa.Array.from_buffers(type_, len(unscaled), [None, pa.py_buffer(words.tobytes())])


def _render(draft: Draft, places: list[Place], words: Pools, persons: Holders) -> pa.Table:
    """The canonical Arrow table of a draft."""
    c = draft.cols
    n = draft.n
    if not n:
        return BUSINESS_SCHEMA.empty_table()
    category = (c["category"] + 48).astype(np.uint8)[:, None]
    first17 = byte_rows(
        n, "9", category, ascii_digits(c["division"], 6), c["body"], org_check(c["body"])[:, None]
    )
    uscc = strings(np.hstack([first17, uscc_check(first17, c["shift"])[:, None]]))
    county = pa.array(c["county"])
    authority = pa.array([p.authority_prefix for p in places]).take(county)

    def part(values: pa.Array | Sequence[str], key: str) -> Callable[[np.ndarray], pa.Array]:
        pool = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        return lambda r: pool.take(pa.array(c[key][r]))

    short = part([p.province_short for p in places], "county")
    county_name = part([p.name for p in places], "county")
    trade = part(words.trades, "trade")
    industry = part([i[0] for i in _INDUSTRIES], "industry")
    product = part(_COOP_PRODUCTS, "product")
    names = by_group(
        c["form"],
        [
            lambda r: join(short(r), trade(r), industry(r), "有限公司"),
            lambda r: join(short(r), trade(r), industry(r), "股份有限公司"),
            lambda r: join(county_name(r), trade(r), industry(r), "经营部"),
            lambda r: join(short(r), trade(r), industry(r), "合伙企业（有限合伙）"),
            lambda r: join(
                authority.take(pa.array(r)),
                part(words.shop_words, "shop_word")(r),
                part([i[1] for i in _INDUSTRIES], "industry")(r),
            ),
            lambda r: join(county_name(r), trade(r), product(r), "专业合作社"),
        ],
    )
    coop_scope = pa.array(
        [f"组织成员开展{p}；组织收购、销售成员生产的产品；提供技术培训、信息咨询服务" for p in _COOP_PRODUCTS]
    )
    scope = by_group(
        (c["form"] == 5).astype(np.int8),
        [
            part([i[2] for i in _INDUSTRIES], "industry"),
            lambda r: coop_scope.take(pa.array(c["product"][r])),
        ],
    )
    prefix = pa.array([p.address_prefix for p in places]).take(county)
    rep = pa.array(c["rep"])
    moved = c["status"] == 3
    return pa.Table.from_arrays(
        [
            uscc,
            names,
            pa.array([f[0] for f in _FORMS]).take(pa.array(c["form"])),
            persons.names.take(rep),
            persons.codes.take(rep),
            _decimal(c["capital"], _CAPITAL),
            pa.array(c["established"].astype(np.int32), pa.date32()),
            join(authority, "市场监督管理局"),
            pa.array([p.code for p in places]).take(county),
            join(prefix, words.streets.take(pa.array(c["street"])), label(c["house"], "号")),
            scope,
            pa.array(contract.STATUSES).take(pa.array(c["status"])),
            pc.if_else(
                pa.array(moved), strings(ascii_digits(c["moved_to"], 6)), pa.scalar(None, pa.string())
            ),
            pa.array(c["updated"] * 1_000_000, _TS),
        ],
        schema=BUSINESS_SCHEMA,
    )


def make_businesses(
    rng: np.random.Generator,
    county: np.ndarray,
    places: list[Place],
    words: Pools,
    persons: Holders,
    rate: float,
    segments: Sequence[tuple[int, int]] | None,
    textual: bool,
) -> tuple[Draft, pa.Table]:
    """Entities registered in ``places[county]``, defects planted: the draft and its Arrow table."""
    draft = _plant(rng, _draw(rng, county, places, words, persons), rate, segments, textual)
    return draft, _render(draft, places, words, persons)


def business_table(
    n: int, *, seed: int = 0, defect_rate: float = 0.0, divisions: Sequence[str] | None = None
) -> pa.Table:
    """``n`` canonical business rows (defects: wrong USCC check, duplicate key)."""
    places = places_of(divisions)
    rng_people, rng = bulk_rngs(seed)[1:3]
    words = pools(seed)
    persons = helper_persons(rng_people, places, words, min(max(n // 2, 100), 200_000))
    county = rng.integers(0, len(places), n)
    return make_businesses(rng, county, places, words, persons, defect_rate, None, False)[1]
