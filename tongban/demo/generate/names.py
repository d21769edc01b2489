"""Word pools: people's names (Han from Faker zh_CN, Tibetan and Mongolian by hand), streets, villages,
and the trade names of businesses; built once per seed.

>>> p = pools(1)
>>> p.name_start.shape, len(p.villages) == 40 * len(VILLAGE_SUFFIXES)
((3, 2), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
from faker import Faker

# fmt: off
_TIBETAN_MALE = (
    "扎西", "多杰", "才让", "索南", "旦增", "尼玛", "贡保", "更登", "洛桑", "桑杰", "仁青", "加措",
    "东智", "拉加", "完玛", "南杰", "格桑", "昂秀",
)
_TIBETAN_FEMALE = (
    "卓玛", "拉毛", "措吉", "央金", "德吉", "白玛", "卓嘎", "才措", "旺姆", "央措", "拉姆", "吉毛",
    "梅朵", "卓措",
)
_MONGOL_MALE = (
    "巴特尔", "额尔敦", "那日苏", "朝鲁", "宝音", "巴雅尔", "布和", "苏和", "孟和", "达来",
    "阿拉坦", "特木尔", "乌力吉", "毕力格", "额尔德木图",
)
_MONGOL_FEMALE = (
    "其其格", "娜仁", "乌兰", "萨仁", "图雅", "高娃", "其木格", "斯琴高娃", "塔娜", "格日乐",
    "乌云", "娜布其", "阿茹娜", "萨日娜",
)
# fmt: on
VILLAGE_SUFFIXES = ("庄", "沟", "湾", "寨", "堡", "台", "滩", "岔")


@dataclass(frozen=True)
class Pools:
    """Words drawn by index; ``names`` holds six groups one after another."""

    names: pa.Array  # name groups one after another, see ``name_start``/``name_size``
    name_start: np.ndarray  # (3 groups: Han, Tibetan, Mongolian) x (2 sexes: male, female)
    name_size: np.ndarray
    streets: pa.Array
    villages: pa.Array
    trades: pa.Array  # 字号 of companies
    shop_words: pa.Array  # 字号 of individual businesses (王记, 鸿泰...)


def _unique(make: Callable[[], str], size: int, *, ok: Callable[[str], bool] = lambda s: True) -> list[str]:
    seen: dict[str, None] = {}
    for _ in range(size * 20):
        value = make()
        if ok(value):
            seen.setdefault(value, None)
        if len(seen) >= size:
            break
    return list(seen)


@cache
def pools(seed: int) -> Pools:
    """The word pools of a seed (Faker is seeded with it; the same seed gives the same words)."""
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    han_m = _unique(fake.name_male, 2000)
    han_f = _unique(fake.name_female, 2000)
    tib_m = [*_TIBETAN_MALE, *(a + b for a in _TIBETAN_MALE for b in _TIBETAN_MALE if a != b)]
    tib_f = [*_TIBETAN_FEMALE, *(a + b for a in _TIBETAN_MALE for b in _TIBETAN_FEMALE)]
    surnames = _unique(fake.last_name, 120, ok=lambda s: len(s) == 1)
    mon_m = [*_MONGOL_MALE, *(s + m for s in surnames[:20] for m in _MONGOL_MALE)]
    mon_f = [*_MONGOL_FEMALE, *(s + m for s in surnames[:20] for m in _MONGOL_FEMALE)]
    groups = [han_m, han_f, tib_m, tib_f, mon_m, mon_f]
    sizes = np.array([len(g) for g in groups], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    streets = _unique(fake.street_name, 400)
    villages = [f"{s}家{x}村" for s in surnames[:40] for x in VILLAGE_SUFFIXES]
    words = [
        w
        for w in _unique(fake.company_prefix, 200)
        if len(w) == 2 and all("\u4e00" <= c <= "\u9fff" for c in w)
    ]
    given = _unique(fake.first_name_male, 300, ok=lambda s: len(s) == 2)
    base = list(dict.fromkeys([*words, *given]))
    rng = np.random.default_rng(seed)
    pairs = rng.integers(0, len(base), (600, 2))
    trades = list(dict.fromkeys([*base, *(base[a] + base[b] for a, b in pairs.tolist() if a != b)]))
    shop_words = [*(s + "记" for s in surnames), *base]
    return Pools(
        names=pa.array([n for g in groups for n in g], pa.string()),
        name_start=starts.reshape(3, 2),
        name_size=sizes.reshape(3, 2),
        streets=pa.array(streets, pa.string()),
        villages=pa.array(villages, pa.string()),
        trades=pa.array(trades, pa.string()),
        shop_words=pa.array(shop_words, pa.string()),
    )
