"""tongban.config: exchange.yaml loads into nodes, systems and edges, or fails naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

import schemas
from tongban.core.config import (
    ConfigError,
    Exchange,
    connection_url,
    load_exchange,
    parse_duration,
)
from tongban.demo.exchange_yaml import demo_exchange_yaml
from tongban.demo.generate import DEMO_COUNTIES, generate_demo

# Line numbers matter: the error cases below point at lines of this text.
BASE = """\
version: 1
defaults:
  lookback: 10m
nodes:
  - code: 000000
    name: 国家库
    level: national
    library: sqlite:///libraries/000000.sqlite
  - code: 630000
    name: 青海省
    level: province
    parent: "000000"
    library: sqlite:///libraries/630000.sqlite
  - code: 630104
    name: 城西区
    level: county
    parent: "630000"
    library_env: TONGBAN_LIB_630104
systems:
  - name: 630104-gongan
    node: "630104"
    dataset: population
    kind: sql
    url: sqlite:///systems/gongan.sqlite
    table: czrk
    cursor: gxsj
    mapping:
      dataset: population
      columns: {sfzh: id_number, gxsj: updated_at}
  - name: 630104-license
    node: "630104"
    dataset: license
    kind: files
    folder: drop/license
    pattern: "*.csv"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exchange.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _load(tmp_path: Path, text: str = BASE) -> Exchange:
    return load_exchange(_write(tmp_path, text))


def _error(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    return info.value


def _edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return hits[nth - 1]


# --------------------------------------------------------------------------------------------------
# The demo topology
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    base = tmp_path_factory.mktemp("demo")
    manifest = generate_demo(base, population_per_county=50, business_per_county=20, license_per_county=20)
    text = demo_exchange_yaml(base, manifest["systems"], DEMO_COUNTIES)
    (base / "exchange.yaml").write_text(text, encoding="utf-8")
    return load_exchange(base / "exchange.yaml")


def test_demo_topology_loads(demo: Exchange) -> None:
    assert [n.code for n in demo.nodes.values() if n.level == "national"] == ["000000"]
    assert demo.node("000000").name == "国家库"
    assert len(demo.provinces()) == 5 and len(demo.counties()) == 9
    assert demo.node("150000").name == "内蒙古自治区"
    assert [n.code for n in demo.counties("630000")] == ["630104", "630121", "630123", "632523", "632823"]
    assert demo.children("000000") == demo.provinces()
    assert len(demo.systems) == 27
    assert demo.trust_root == "000000"
    assert demo.trust_list == demo.base / "keys" / "trust.json"
    assert demo.spool == demo.base / "spool" and demo.keys_dir == demo.base / "keys"
    assert (demo.lookback_seconds, demo.schedule, demo.retries, demo.batch_size) == (
        600,
        "@hourly",
        2,
        65536,
    )


def test_demo_systems(demo: Exchange) -> None:
    gongan = demo.system("630104-gongan")
    assert (gongan.kind, gongan.dataset, gongan.table, gongan.cursor) == ("sql", "population", "czrk", "gxsj")
    assert demo.system_url("630104-gongan") == f"sqlite:///{demo.base}/systems/630104/gongan.sqlite"
    assert gongan.mapping.columns["sfzh"] == "id_number"
    assert demo.system("630104-scjg").table == "qydj"
    lic = demo.system("630104-license")
    assert (lic.kind, lic.pattern, lic.folder) == (
        "files",
        "*.csv",
        demo.base / "systems/630104/drop/license",
    )
    assert lic.folder is not None and lic.folder.is_dir()
    assert demo.system("150205-license").pattern == "*.parquet"
    assert demo.system("630121-business").kind == "files"
    assert demo.library_url("630104") == f"sqlite:///{demo.base}/libraries/630104.sqlite"


def test_demo_derived_edges(demo: Exchange) -> None:
    edges = demo.edges
    assert len(edges) == 27 + 27 + 15 == 69
    assert len({e.id for e in edges}) == 69
    ids = {e.id for e in edges}
    assert {
        "population.630104-gongan.630104",
        "business.630104-scjg.630104",
        "license.150205-license.150205",
        "population.630104.630000",
        "license.430981.430000",
        "business.630000.000000",
    } <= ids
    # By dataset, then system edges, county -> province, province -> national.
    datasets = [e.dataset for e in edges]
    assert datasets == sorted(datasets, key=["population", "business", "license"].index)
    population = [e for e in edges if e.dataset == "population"]
    assert [e.source_kind for e in population[:9]] == ["system"] * 9
    assert all(demo.node(e.source).level == "county" for e in population[9:18])
    assert all(demo.node(e.source).level == "province" for e in population[18:])
    assert all(e.line is None for e in edges)
    assert all(e.schedule == "@hourly" for e in edges if e.source_kind == "system")
    assert all(e.schedule is None for e in edges if e.source_kind == "node")
    assert len(demo.edges_into("630000", "population")) == 5
    assert len(demo.edges_into("000000")) == 15
    assert demo.datasets_of("000000") == ["population", "business", "license"]
    assert demo.edge("population.630104.630000").target == "630000"


def test_demo_text_is_portable(demo: Exchange) -> None:
    text = demo.path.read_text(encoding="utf-8")
    assert text.startswith("# 通办")
    assert str(demo.base) not in text  # relative paths only: the demo folder can move
    assert "\nedges:" not in text  # derived
    assert "name: 大通回族土族自治县" in text and "sqlite:///libraries/630121.sqlite" in text


def test_unknown_edge_node_and_system(demo: Exchange) -> None:
    with pytest.raises(ConfigError) as info:
        demo.edge("population.630104.63000")
    assert info.value.code == "EDGE_UNKNOWN"
    assert "population.630104.630000" in info.value.message_en
    assert len(info.value.message_en) < 300
    with pytest.raises(ConfigError) as info:
        demo.node("630105")
    assert info.value.code == "NODE_UNKNOWN"
    with pytest.raises(ConfigError) as info:
        demo.system("630104-gongann")
    assert info.value.code == "SYSTEM_UNKNOWN" and "630104-gongan" in info.value.message_en


# --------------------------------------------------------------------------------------------------
# A small valid file
# --------------------------------------------------------------------------------------------------


def test_base_loads_with_unquoted_codes(tmp_path: Path) -> None:
    ex = _load(tmp_path)
    assert list(ex.nodes) == ["000000", "630000", "630104"]  # 000000 unquoted is not the int 0
    assert ex.node("630104").parent == "630000"
    assert ex.node("630104").library is None and ex.node("630104").library_env == "TONGBAN_LIB_630104"
    assert ex.node("630104").line == 14 and ex.system("630104-license").line == 30
    inline = ex.system("630104-gongan").mapping
    assert inline.source == str(tmp_path / "exchange.yaml")  # inline: lines are the config's
    assert (
        inline.columns == {"sfzh": "id_number", "gxsj": "updated_at"} and inline.lines["columns.gxsj"] == 29
    )
    assert ex.schedule == "@hourly" and ex.trust_root == "000000"
    assert [e.id for e in ex.edges] == [
        "population.630104-gongan.630104",
        "population.630104.630000",
        "population.630000.000000",
        "license.630104-license.630104",
        "license.630104.630000",
        "license.630000.000000",
    ]
    assert ex.datasets_of("630000") == ["population", "license"]
    assert ex.offices == []


def test_relative_sqlite_resolution(tmp_path: Path) -> None:
    text = _edit("library: sqlite:///libraries/630000.sqlite", "library: sqlite:////srv/lib/630000.sqlite")
    ex = _load(tmp_path, text)
    assert ex.library_url("000000") == f"sqlite:///{tmp_path}/libraries/000000.sqlite"
    assert ex.library_url("630000") == "sqlite:////srv/lib/630000.sqlite"  # absolute stays
    assert ex.system_url("630104-gongan") == f"sqlite:///{tmp_path}/systems/gongan.sqlite"
    other = tmp_path / "sub"
    other.mkdir()
    moved = load_exchange(_write(other, _edit("sqlite:///systems/gongan.sqlite", "sqlite:///../x.sqlite")))
    assert moved.system_url("630104-gongan") == f"sqlite:///{tmp_path}/x.sqlite"
    memory = load_exchange(_write(other, _edit("sqlite:///systems/gongan.sqlite", '"sqlite:///:memory:"')))
    assert memory.system_url("630104-gongan") == "sqlite:///:memory:"


def test_library_env_read_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TONGBAN_LIB_630104", raising=False)
    ex = _load(tmp_path)  # loading does not need the variable
    with pytest.raises(ConfigError) as info:
        ex.library_url("630104")
    err = info.value
    assert err.code == "CONFIG_ENV_MISSING"
    assert "TONGBAN_LIB_630104" in err.message_en and "630104" in err.message_zh
    assert err.where == f"{tmp_path / 'exchange.yaml'}:14"
    monkeypatch.setenv("TONGBAN_LIB_630104", "postgres://tb:pw@db:5432/county")
    assert ex.library_url("630104") == "postgresql+psycopg://tb:pw@db:5432/county"
    monkeypatch.setenv("TONGBAN_LIB_630104", "sqlite:///libs/630104.sqlite")
    assert ex.library_url("630104") == f"sqlite:///{tmp_path}/libs/630104.sqlite"


def test_conn_id_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = _load(tmp_path, _edit("    url: sqlite:///systems/gongan.sqlite", "    conn_id: gongan_630104"))
    assert ex.system("630104-gongan").conn_id == "gongan_630104"
    monkeypatch.delenv("AIRFLOW_CONN_GONGAN_630104", raising=False)
    with pytest.raises(ConfigError) as info:
        ex.system_url("630104-gongan")
    assert info.value.code == "CONFIG_CONN_MISSING"
    assert "gongan_630104" in info.value.message_en and "AIRFLOW_CONN_GONGAN_630104" in info.value.message_en
    assert info.value.where.endswith(":20")
    monkeypatch.setenv("AIRFLOW_CONN_GONGAN_630104", "mysql://reader:pw@10.1.2.3:3306/gongan")
    assert ex.system_url("630104-gongan") == "mysql+pymysql://reader:pw@10.1.2.3:3306/gongan"
    asked: list[str] = []

    def resolve(conn_id: str) -> str:
        asked.append(conn_id)
        return "postgresql://etl@pg/county"

    assert ex.system_url("630104-gongan", resolve) == "postgresql+psycopg://etl@pg/county"
    assert asked == ["gongan_630104"]
    json_conn = '{"conn_type": "postgres", "host": "pg", "login": "etl", "password": "p@ss", "schema": "db"}'
    monkeypatch.setenv("AIRFLOW_CONN_GONGAN_630104", json_conn)
    assert ex.system_url("630104-gongan") == "postgresql+psycopg://etl:p%40ss@pg/db"

    def broken(conn_id: str) -> str:
        raise LookupError(f"The conn_id `{conn_id}` isn't defined")

    with pytest.raises(ConfigError) as info:
        ex.system_url("630104-gongan", broken)
    assert info.value.code == "CONFIG_CONN_MISSING" and "isn't defined" in info.value.message_en


def test_files_system_has_no_url(tmp_path: Path) -> None:
    ex = _load(tmp_path)
    assert ex.system("630104-license").folder == tmp_path / "drop" / "license"
    with pytest.raises(ConfigError) as info:
        ex.system_url("630104-license")
    assert info.value.code == "CONFIG_INVALID"


def test_table_taken_from_mapping(tmp_path: Path) -> None:
    text = _edit("    table: czrk\n", "").replace("      dataset: population\n", "      table: czrk_v2\n")
    assert _load(tmp_path, text).system("630104-gongan").table == "czrk_v2"


def test_mapping_file(tmp_path: Path) -> None:
    (tmp_path / "license.mapping.yaml").write_text("dataset: license\ncolumns: {zsbh: license_number}\n")
    ex = _load(tmp_path, BASE + "    mapping: license.mapping.yaml\n")
    assert ex.system("630104-license").mapping.columns == {"zsbh": "license_number"}
    bad = tmp_path / "license.mapping.yaml"
    bad.write_text("dataset: license\ncolumns:\n  zsbh: licence_no\n")
    err = _error(tmp_path, BASE + "    mapping: license.mapping.yaml\n")
    assert err.code == "MAPPING_FIELD"
    assert err.where == f"{bad.resolve()}:3"
    assert "systems[1].mapping" in err.message_en and "licence_no" in err.message_en


def test_code_table_typo_inline_is_a_mapping_error_at_its_line(tmp_path: Path) -> None:
    # A value outside the field's code list would reject every row with that local code: refused at load.
    text = _edit(
        "gxsj: updated_at}\n",
        "gxsj: updated_at, ryzt: status}\n      values:\n        status:\n"
        '          "10": normal\n          "21": norml\n',
    )
    err = _error(tmp_path, text)
    assert err.code == "MAPPING_VALUE"
    assert err.where == f"{tmp_path / 'exchange.yaml'}:{_line_of(text, 'norml')}"
    codes = ", ".join(schemas.get("population").field("status").codes)
    for words in ("systems[0].mapping", "values.status", "'21'", "'norml'", "did you mean 'normal'", codes):
        assert words in err.message_en, err
    assert "norml" in err.message_zh and "normal" in err.message_zh
    # Fixed, it loads; a field whose codes are no closed list (moved_to) takes any value.
    fixed = text.replace('"21": norml\n', '"21": moved_out\n        moved_to: {x: anything}\n')
    assert _load(tmp_path, fixed).system("630104-gongan").mapping.values["status"]["21"] == "moved_out"


def test_code_table_typo_in_a_mapping_file_names_file_line_and_code(tmp_path: Path) -> None:
    path = tmp_path / "license.mapping.yaml"
    # An unquoted 01 reads as 1: the closest code is suggested.
    path.write_text("dataset: license\nvalues:\n  status:\n    有效: 01\n    注销: '05'\n", encoding="utf-8")
    err = _error(tmp_path, BASE + "    mapping: license.mapping.yaml\n")
    assert err.code == "MAPPING_VALUE"
    assert err.where == f"{path.resolve()}:4"
    assert "systems[1].mapping" in err.message_en and "'有效' maps to '1'" in err.message_en
    assert "did you mean '01'" in err.message_en
    path.write_text(
        "dataset: license\nvalues:\n  status:\n    有效: '01'\n    注销: '05'\n", encoding="utf-8"
    )
    assert _load(tmp_path, BASE + "    mapping: license.mapping.yaml\n").system("630104-license").mapping


def test_explicit_edges_replace_derivation(tmp_path: Path) -> None:
    text = BASE + (
        "edges:\n"
        '  - {dataset: population, source: 630104-gongan, target: "630104", schedule: "@daily"}\n'
        "  - {dataset: population, source: 630104, target: 630000}\n"
        "  - {dataset: license, source: 000000, target: 630000, schedule: null}\n"
        '  - {dataset: license, source: 630104-license, target: "630104"}\n'
    )
    ex = _load(tmp_path, text)
    assert [(e.id, e.schedule, e.source_kind, e.line) for e in ex.edges] == [
        ("population.630104-gongan.630104", "@daily", "system", 37),
        ("population.630104.630000", None, "node", 38),
        ("license.630104-license.630104", "@hourly", "system", 40),
        ("license.000000.630000", None, "node", 39),
    ]
    assert _load(tmp_path, BASE + "edges: []\n").edges == []


def test_offices_kept_as_dicts(tmp_path: Path) -> None:
    ex = _load(tmp_path, BASE + "offices:\n  - {code: 440300-ck01, node: 000000, scopes: [verify:license]}\n")
    assert ex.offices == [{"code": "440300-ck01", "node": "000000", "scopes": ["verify:license"]}]


# --------------------------------------------------------------------------------------------------
# Errors: code, file:line, field
# --------------------------------------------------------------------------------------------------


def test_typo_names_line_field_and_guess(tmp_path: Path) -> None:
    text = """\
nodes:
  - code: "000000"
    name: 国家库
    level: national
    library: sqlite:///n.sqlite
  - code: "630000"
    parnet: "000000"
    name: 青海省
"""
    err = _error(tmp_path, text)
    assert err.code == "CONFIG_INVALID"
    assert err.where == f"{tmp_path / 'exchange.yaml'}:7"
    assert err.message_en == "unknown field 'parnet' in nodes[1] — did you mean 'parent'?"
    assert "parnet" in err.message_zh and "parent" in err.message_zh


CASES = [
    # (old, new, code, line needle (nth), words the English message must contain)
    (
        "  - code: 630104",
        "  - code: 63014",
        "CONFIG_INVALID",
        ("code: 63014", 1),
        ["nodes[2].code", "6-digit"],
    ),
    ("nodes:", "nodez:", "CONFIG_INVALID", ("nodez:", 1), ["'nodez'", "did you mean 'nodes'"]),
    ("    name: 城西区\n", "", "CONFIG_INVALID", ("code: 630104", 1), ["nodes[2].name is required"]),
    (
        "    level: county",
        "    level: countyy",
        "CONFIG_INVALID",
        ("countyy", 1),
        ["nodes[2].level", "'county'"],
    ),
    ("  lookback: 10m", "  batch_size: lots", "CONFIG_INVALID", ("batch_size", 1), ["defaults.batch_size"]),
    (
        "  lookback: 10m",
        "  lookback: soon",
        "CONFIG_INVALID",
        ("lookback", 1),
        ["defaults.lookback", "'soon'"],
    ),
    ("  lookback: 10m", "  schedule: hourly", "CONFIG_INVALID", ("schedule", 1), ["defaults.schedule"]),
    ("  lookback: 10m", '  schedule: "61 * * * *"', "CONFIG_INVALID", ("schedule", 1), ["defaults.schedule"]),
    ("version: 1", "version: 2", "CONFIG_INVALID", ("version", 1), ["version"]),
    (
        "defaults:\n  lookback: 10m",
        "defaults: 10m",
        "CONFIG_INVALID",
        ("defaults", 1),
        ["defaults must be a mapping"],
    ),
    (
        "    library_env: TONGBAN_LIB_630104",
        "    library_env: TONGBAN_LIB_630104\n    conn_id: lib",
        "CONFIG_INVALID",
        ("conn_id: lib", 1),
        ["nodes[2]", "library_env and conn_id", "exactly one"],
    ),
    ("    library_env: TONGBAN_LIB_630104\n", "", "CONFIG_INVALID", ("code: 630104", 1), ["nodes[2] needs"]),
    (
        "library_env: TONGBAN_LIB_630104",
        "library_env: 1-BAD",
        "CONFIG_INVALID",
        ("1-BAD", 1),
        ["library_env"],
    ),
    (
        "    name: 城西区",
        "    name: 城西区\n    name: 城东区",
        "CONFIG_INVALID",
        ("城东区", 1),
        ["nodes[2].name", "twice"],
    ),
    ("    cursor: gxsj\n", "", "CONFIG_INVALID", ("630104-gongan", 1), ["systems[0].cursor is required"]),
    ("    table: czrk\n", "", "CONFIG_INVALID", ("630104-gongan", 1), ["systems[0] needs a table or query"]),
    (
        '    pattern: "*.csv"',
        "    cursor: gxsj",
        "CONFIG_INVALID",
        ("cursor", 2),
        ["systems[1].cursor", "sql"],
    ),
    (
        "    kind: files",
        "    kind: file",
        "CONFIG_INVALID",
        ("kind: file", 1),
        ["systems[1].kind", "'files'"],
    ),
    (
        "name: 630104-license",
        "name: 630104.license",
        "CONFIG_INVALID",
        ("630104.license", 1),
        ["systems[1].name"],
    ),
    (
        "  - code: 630104\n",
        '  - code: "630000"\n',
        "CONFIG_DUPLICATE",
        ('code: "630000"', 1),
        ["nodes[2].code"],
    ),
    (
        "name: 630104-license",
        "name: 630104-gongan",
        "CONFIG_DUPLICATE",
        ("630104-gongan", 2),
        ["systems[1].name"],
    ),
    (
        'parent: "630000"',
        'parent: "640000"',
        "CONFIG_REFERENCE",
        ("640000", 1),
        ["nodes[2].parent", "'630000'"],
    ),
    (
        'node: "630104"\n    dataset: license',
        'node: "630105"\n    dataset: license',
        "CONFIG_REFERENCE",
        ("630105", 1),
        ["systems[1].node", "630105"],
    ),
    ('parent: "630000"', 'parent: "000000"', "CONFIG_TOPOLOGY", ('parent: "000000"', 2), ["nodes[2].parent"]),
    (
        "    level: province",
        "    level: national",
        "CONFIG_TOPOLOGY",
        ("national", 2),
        ["exactly one national"],
    ),
    ("    level: national", "    level: province", "CONFIG_TOPOLOGY", ("nodes:", 1), ["no national node"]),
    ("  - code: 630104", "  - code: 620104", "CONFIG_TOPOLOGY", ("620104", 1), ["nodes[2].code", "630000"]),
    (
        "    dataset: population\n    kind",
        "    dataset: populaton\n    kind",
        "CONFIG_DATASET",
        ("populaton", 1),
        ["systems[0].dataset", "did you mean 'population'"],
    ),
    (
        "      dataset: population",
        "      dataset: business",
        "CONFIG_DATASET",
        ("mapping:", 1),
        ["systems[0].mapping", "business"],
    ),
    ("      columns: {sfzh", "      colums: {sfzh", "MAPPING_INVALID", ("colums", 1), ["systems[0].mapping"]),
    (
        "gxsj: updated_at}",
        "gxsj: updated}",
        "MAPPING_FIELD",
        ("updated}", 1),
        ["systems[0].mapping", "updated"],
    ),
    ("    folder: drop/license", "    folder: [a]", "CONFIG_INVALID", ("folder", 1), ["systems[1].folder"]),
]


@pytest.mark.parametrize(
    ("old", "new", "code", "needle", "words"), CASES, ids=[c[2] + ":" + c[1] for c in CASES]
)
def test_error_cases(
    tmp_path: Path, old: str, new: str, code: str, needle: tuple[str, int], words: list[str]
) -> None:
    text = _edit(old, new)
    err = _error(tmp_path, text)
    assert err.code == code, err
    assert err.where == f"{tmp_path / 'exchange.yaml'}:{_line_of(text, *needle)}", err
    for word in words:
        assert word in err.message_en, err
    assert err.message_zh


EDGE_CASES = [
    ("{dataset: population, source: 630104-gongann, target: 630104}", "CONFIG_REFERENCE", "edges[0].source"),
    ("{dataset: population, source: 630104-gongan, target: 630105}", "CONFIG_REFERENCE", "edges[0].target"),
    ("{dataset: population, source: 630104, target: 000000}", "CONFIG_TOPOLOGY", "630104 -> 000000"),
    ("{dataset: population, source: 630000, target: 630104}", "CONFIG_TOPOLOGY", "630000 -> 630104"),
    ("{dataset: population, source: 630104-gongan, target: 630000}", "CONFIG_TOPOLOGY", "own node 630104"),
    ("{dataset: license, source: 630104-gongan, target: 630104}", "CONFIG_DATASET", "holds population"),
    ("{dataset: licence, source: 630104, target: 630000}", "CONFIG_DATASET", "did you mean 'license'"),
    (
        "{dataset: license, source: 630104, target: 630000, schedule: often}",
        "CONFIG_INVALID",
        "edges[0].schedule",
    ),
    (
        "{dataset: license, source: 630104, target: 630000, when: daily}",
        "CONFIG_INVALID",
        "'when' in edges[0]",
    ),
]


@pytest.mark.parametrize(("edge", "code", "words"), EDGE_CASES)
def test_edge_errors(tmp_path: Path, edge: str, code: str, words: str) -> None:
    err = _error(tmp_path, BASE + f"edges:\n  - {edge}\n")
    assert err.code == code, err
    assert err.where == f"{tmp_path / 'exchange.yaml'}:37", err
    assert words in err.message_en, err


def test_duplicate_edge(tmp_path: Path) -> None:
    edge = "  - {dataset: population, source: 630104, target: 630000}\n"
    err = _error(tmp_path, BASE + "edges:\n" + edge + edge)
    assert (err.code, err.where.rsplit(":", 1)[1]) == ("CONFIG_DUPLICATE", "38")
    assert "population.630104.630000" in err.message_en and "line 37" in err.message_en
    err = _error(tmp_path, BASE + "edges: {}\n")
    assert (err.code, err.where.rsplit(":", 1)[1]) == ("CONFIG_INVALID", "36")
    assert "edges must be a list" in err.message_en


def test_password_in_file_refused_without_echo(tmp_path: Path) -> None:
    text = _edit("url: sqlite:///systems/gongan.sqlite", "url: postgresql://etl:hunter2@db/gongan")
    err = _error(tmp_path, text)
    assert (err.code, err.where.rsplit(":", 1)[1]) == ("CONFIG_INVALID", "24")
    assert "systems[0].url" in err.message_en and "password" in err.message_en
    assert "hunter2" not in str(err.as_dict())


def test_missing_mapping_file_points_at_reference(tmp_path: Path) -> None:
    err = _error(tmp_path, BASE + "    mapping: nowhere.mapping.yaml\n")
    assert err.code == "MAPPING_NOT_FOUND"
    assert err.where == f"{tmp_path / 'exchange.yaml'}:36"
    assert "systems[1].mapping" in err.message_en and "nowhere.mapping.yaml" in err.message_en


def test_not_found_syntax_and_empty(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_exchange(tmp_path / "absent.yaml")
    assert (info.value.code, info.value.where) == ("CONFIG_NOT_FOUND", str(tmp_path / "absent.yaml"))
    err = _error(tmp_path, "version: 1\nnodes:\n  - {code: 1\n  - x: [\n")
    assert err.code == "CONFIG_SYNTAX" and err.where.rsplit(":", 1)[1].isdigit()
    err = _error(tmp_path, "version: 1\nnodes:\n  - code: '1'\n\tname: x\n")
    assert (err.code, err.where.rsplit(":", 1)[1]) == ("CONFIG_SYNTAX", "4")
    assert _error(tmp_path, "# nothing\n").code == "CONFIG_INVALID"
    assert _error(tmp_path, "- a\n- b\n").code == "CONFIG_INVALID"


def test_config_error_is_a_catalogued_error(tmp_path: Path) -> None:
    from schemas.errors import TongbanError

    err = _error(tmp_path, _edit("nodes:", "nodez:"))
    assert isinstance(err, TongbanError) and err.permanent
    assert err.as_dict()["code"] == "CONFIG_INVALID"


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (45, 45), ("90", 90), (0, 0)],
)
def test_parse_duration(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-5", "1.5h", "10M", "m10", "10 m", True, -1, "１０m", None])
def test_parse_duration_rejects(text: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("uri", "url"),
    [
        ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql+psycopg://u@h/db?sslmode=require"),
        ("mysql://u:p@h/db", "mysql+pymysql://u:p@h/db"),
        ("sqlite:///rel/x.sqlite", "sqlite:///rel/x.sqlite"),
        ("sqlite:////abs/x.sqlite", "sqlite:////abs/x.sqlite"),
        ("postgres://u@h/db?__extra__=%7B%7D&sslmode=disable", "postgresql+psycopg://u@h/db?sslmode=disable"),
        ("mysql+mysqldb://u@h/db", "mysql+mysqldb://u@h/db"),
    ],
)
def test_connection_url(uri: str, url: str) -> None:
    assert connection_url(uri) == url


def test_connection_url_rejects_without_echo() -> None:
    with pytest.raises(ValueError) as info:
        connection_url("user:secret@host/db")
    assert "secret" not in str(info.value)
