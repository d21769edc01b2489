"""Hostile YAML in ``exchange.yaml`` and mapping files: refused in bounded time and memory, with a code
and ``file:line``, never a stack trace or INTERNAL (alias bombs, deep nesting, huge files, NUL bytes)."""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_config import BASE

from connectors import mapping as mapping_module
from connectors.errors import ExtractError
from connectors.mapping import MAPPING_MAX_BYTES, MAPPING_MAX_DEPTH, MAPPING_MAX_NODES, load_mapping
from schemas.errors import TongbanError
from tongban.cli import main
from tongban.core import config as config_module
from tongban.core.config import (
    CONFIG_MAX_BYTES,
    CONFIG_MAX_DEPTH,
    CONFIG_MAX_NODES,
    ConfigError,
    load_exchange,
)

MB = 1 << 20
#: Refusal bounds, not speed targets: a refused file must cost far less than the attack it carries.
SECONDS, PEAK = 1.0, 50 * MB


@contextmanager
def bounded(seconds: float = SECONDS, peak: int = PEAK) -> Iterator[None]:
    """Fail unless the block runs within ``seconds`` and allocates at most ``peak`` bytes at once."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        _, used = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert used < peak, f"peak {used / MB:.1f} MB"


def _refused(
    load: Callable[[Path], Any], path: Path, error: type[ExtractError] = ExtractError
) -> ExtractError:
    with bounded(), pytest.raises(error) as info:
        load(path)
    return info.value


def _line(err: ExtractError) -> int:
    where, _, line = err.where.rpartition(":")
    assert where and line.isdigit(), err.where
    return int(line)


def _bomb(indent: str, levels: int = 9) -> str:
    """The "billion laughs": each anchor is a list of nine aliases of the one before (9**levels leaves)."""
    lines = [f"{indent}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _with_inline_values(values: str) -> str:
    """BASE with ``values`` (indented lines) under the first system's inline mapping."""
    old = "      columns: {sfzh: id_number, gxsj: updated_at}\n"
    assert BASE.count(old) == 1
    return BASE.replace(old, old + "      values:\n" + values)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Alias bombs
# --------------------------------------------------------------------------------------------------


def test_alias_bomb_in_config_refused_quickly(tmp_path: Path) -> None:
    text = _with_inline_values(_bomb("        "))
    config = _write(tmp_path / "exchange.yaml", text)
    err = _refused(load_exchange, config, ConfigError)
    assert err.code == "CONFIG_TOO_LARGE"
    assert err.where.startswith(f"{config}:")
    # The line of the alias that goes past the bound: one of the bomb's lines.
    assert text.splitlines()[_line(err) - 1].lstrip().startswith("a")
    assert f"{CONFIG_MAX_NODES:,}" in err.message_en and "alias" in err.message_en


def test_alias_bomb_in_mapping_file_refused_quickly(tmp_path: Path) -> None:
    text = "dataset: population\nvalues:\n" + _bomb("  ")
    path = _write(tmp_path / "bomb.mapping.yaml", text)
    err = _refused(load_mapping, path)
    assert err.code == "MAPPING_TOO_LARGE" and err.where.startswith(f"{path}:")
    assert text.splitlines()[_line(err) - 1].startswith("  a")
    assert f"{MAPPING_MAX_NODES:,}" in err.message_en


def test_alias_bomb_in_referenced_mapping_file_refused_quickly(tmp_path: Path) -> None:
    bomb = _write(tmp_path / "bomb.mapping.yaml", "dataset: license\nvalues:\n" + _bomb("  "))
    config = _write(tmp_path / "exchange.yaml", BASE + f"    mapping: {bomb.name}\n")
    err = _refused(load_exchange, config, ConfigError)
    assert err.code == "MAPPING_TOO_LARGE" and err.where.startswith(f"{bomb}:")
    assert "systems[1].mapping" in err.message_en


def test_alias_bomb_with_little_text_per_level_refused(tmp_path: Path) -> None:
    # Two aliases per level but forty levels: 2**40 nodes from a few hundred bytes.
    lines = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 41)]
    path = _write(tmp_path / "m.yaml", "\n".join(lines) + "\n")
    assert _refused(load_mapping, path).code == "MAPPING_TOO_LARGE"


def test_recursive_alias_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.yaml", "dataset: population\nvalues: &v\n  status: [*v]\n")
    err = _refused(load_mapping, path)
    assert (err.code, _line(err)) == ("MAPPING_TOO_DEEP", 3)
    assert "*v" in err.message_en
    config = _write(tmp_path / "exchange.yaml", BASE + "offices: &o [{code: '630104', more: *o}]\n")
    err = _refused(load_exchange, config, ConfigError)
    assert (err.code, _line(err)) == ("CONFIG_TOO_DEEP", BASE.count("\n") + 1)


def test_aliases_count_towards_depth(tmp_path: Path) -> None:
    # Flat text, but each anchor nests the one before: expanded, it is 200 levels deep.
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 201)]
    path = _write(tmp_path / "m.yaml", "\n".join(lines) + "\n")
    err = _refused(load_mapping, path)
    assert err.code == "MAPPING_TOO_DEEP"
    assert _line(err) == MAPPING_MAX_DEPTH - 1  # a{n}, on line n + 1, reaches level n + 3


def test_ordinary_anchors_and_aliases_still_load(tmp_path: Path) -> None:
    text = BASE.replace(
        "    mapping:\n      dataset: population\n", "    mapping: &population\n      dataset: population\n"
    )
    text = text.replace(
        "url: sqlite:///systems/gongan.sqlite", "url: &gongan sqlite:///systems/gongan.sqlite"
    )
    text += (
        "  - name: 630104-gongan-old\n"
        '    node: "630104"\n'
        "    dataset: population\n"
        "    kind: sql\n"
        "    url: *gongan\n"
        "    table: czrk_old\n"
        "    cursor: gxsj\n"
        "    mapping: *population\n"
        "offices:\n"
        "  - {code: '630104', node: '630104', scopes: &scopes [population, license]}\n"
        "  - {code: '630105', node: '630104', scopes: *scopes}\n"
    )
    ex = load_exchange(_write(tmp_path / "exchange.yaml", text))
    new, old = ex.systems["630104-gongan"], ex.systems["630104-gongan-old"]
    assert old.url == new.url and old.mapping.columns == new.mapping.columns == {
        "sfzh": "id_number",
        "gxsj": "updated_at",
    }
    assert [o["scopes"] for o in ex.offices] == [["population", "license"]] * 2
    shared = _write(tmp_path / "m.yaml", "values:\n  a: &codes {'1': x, '2': y}\n  b: *codes\n")
    assert load_mapping(shared).values == {"a": {"1": "x", "2": "y"}, "b": {"1": "x", "2": "y"}}


# --------------------------------------------------------------------------------------------------
# Deep nesting
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [20_000, 200_000])
def test_deep_nesting_in_config_refused_with_line(tmp_path: Path, levels: int) -> None:
    # One bracket per line: the refusal names the line of the first one past the bound. (Composed,
    # 20,000 levels were a RecursionError, 200,000 a crash of the interpreter in libyaml's composer.)
    text = "version: 1\nnodes:\n" + " [\n" * levels + " " + "]" * levels + "\n"
    config = _write(tmp_path / "exchange.yaml", text)
    err = _refused(load_exchange, config, ConfigError)
    assert err.code == "CONFIG_TOO_DEEP"
    # The top mapping is level 1 and the bracket on line n + 2 opens level n + 1.
    assert _line(err) == CONFIG_MAX_DEPTH + 2
    assert str(CONFIG_MAX_DEPTH) in err.message_en


@pytest.mark.parametrize("levels", [20_000, 200_000])
def test_deep_nesting_in_mapping_refused_with_line(tmp_path: Path, levels: int) -> None:
    path = _write(tmp_path / "m.yaml", "dataset: population\nvalues:\n" + " [\n" * levels)
    err = _refused(load_mapping, path)
    assert (err.code, _line(err)) == ("MAPPING_TOO_DEEP", MAPPING_MAX_DEPTH + 2)


def test_deep_inline_mapping_refused_at_its_line(tmp_path: Path) -> None:
    # Deep enough for the mapping's bound, not for the config's: the mapping check names the config line.
    levels = MAPPING_MAX_DEPTH + 5
    assert levels + 5 < CONFIG_MAX_DEPTH
    text = _with_inline_values(
        "        status:\n" + "          [\n" * levels + "          " + "]" * levels + "\n"
    )
    config = _write(tmp_path / "exchange.yaml", text)
    err = _refused(load_exchange, config, ConfigError)
    assert err.code == "MAPPING_TOO_DEEP" and err.where.startswith(f"{config}:")
    first = text.splitlines().index("          [") + 1  # opens level 3 of the mapping (top, values, list)
    assert _line(err) == first + MAPPING_MAX_DEPTH - 2
    assert "systems[0].mapping" in err.message_en


def test_recursion_elsewhere_is_a_coded_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Should anything recursive still overflow (here: a depth bound set too high), it is coded, not INTERNAL.
    monkeypatch.setattr(config_module.reader, "CONFIG_MAX_DEPTH", 10**9)  # the bound the reader reads
    monkeypatch.setattr(mapping_module, "MAPPING_MAX_DEPTH", 10**9)
    text = _with_inline_values("        status: " + "[" * 5000 + "]" * 5000 + "\n")
    config = _write(tmp_path / "exchange.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_exchange(config)
    assert info.value.code in ("CONFIG_TOO_DEEP", "MAPPING_TOO_DEEP")
    path = _write(tmp_path / "m.yaml", "values: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ExtractError) as info2:
        load_mapping(path)
    assert info2.value.code == "MAPPING_TOO_DEEP" and info2.value.where == str(path)


# --------------------------------------------------------------------------------------------------
# Huge files
# --------------------------------------------------------------------------------------------------


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` bytes that takes no room on disk (a hole), starting with valid YAML."""
    with path.open("wb") as out:
        out.write(b"version: 1\n#")
        out.truncate(size)
    return path


def test_oversized_config_refused_without_reading_it(tmp_path: Path) -> None:
    config = _sparse(tmp_path / "exchange.yaml", CONFIG_MAX_BYTES + 1)
    with bounded(peak=MB), pytest.raises(ConfigError) as info:  # far below 16 MiB: never read
        load_exchange(config)
    assert (info.value.code, info.value.where) == ("CONFIG_TOO_LARGE", str(config))
    assert "16 MiB" in info.value.message_en


def test_oversized_mapping_refused_without_reading_it(tmp_path: Path) -> None:
    path = _sparse(tmp_path / "big.mapping.yaml", MAPPING_MAX_BYTES + 1)
    with bounded(peak=MB // 4), pytest.raises(ExtractError) as info:
        load_mapping(path)
    assert (info.value.code, info.value.where) == ("MAPPING_TOO_LARGE", str(path))
    config = _write(tmp_path / "exchange.yaml", BASE + f"    mapping: {path.name}\n")
    with pytest.raises(ConfigError) as info:
        load_exchange(config)
    assert info.value.code == "MAPPING_TOO_LARGE" and "systems[1].mapping" in info.value.message_en


def test_oversized_inline_mapping_refused_at_its_line(tmp_path: Path) -> None:
    # An inline mapping is held to a mapping file's bounds: its size (as UTF-8) over 1 MiB is refused.
    codes = "".join(f'          "{i:07d}": 汉族名称{i:07d}\n' for i in range(MAPPING_MAX_BYTES // 40))
    text = _with_inline_values("        ethnicity:\n" + codes)
    config = _write(tmp_path / "exchange.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_exchange(config)
    err = info.value
    assert (
        err.code == "MAPPING_TOO_LARGE"
        and err.where == f"{config}:{text.splitlines().index('    mapping:') + 2}"
    )
    assert "systems[0].mapping" in err.message_en and "1 MiB" in err.message_en
    assert "bytes, more than the 1 MiB limit" in err.message_en


def test_limit_sized_files_still_read(tmp_path: Path) -> None:
    path = _write(tmp_path / "m.yaml", "dataset: population\n")
    with path.open("a", encoding="utf-8") as out:
        out.write("#" * (MAPPING_MAX_BYTES - path.stat().st_size - 1) + "\n")
    assert path.stat().st_size == MAPPING_MAX_BYTES
    assert load_mapping(path).dataset == "population"


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_endless_device_refused() -> None:
    # No size to stat: reading stops one byte past the limit.
    for load, code in ((load_exchange, "CONFIG_TOO_LARGE"), (load_mapping, "MAPPING_TOO_LARGE")):
        with pytest.raises(TongbanError) as info:
            load(Path("/dev/zero"))
        assert info.value.code == code


# --------------------------------------------------------------------------------------------------
# Characters YAML forbids
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_character_in_config_names_the_line(tmp_path: Path, char: str) -> None:
    # After Chinese text (several bytes a character): the line is right however the parser counts.
    text = BASE.replace('pattern: "*.csv"', f'pattern: "*.c{char}sv"')
    config = _write(tmp_path / "exchange.yaml", text)
    err = _refused(load_exchange, config, ConfigError)
    assert (err.code, err.where) == ("CONFIG_SYNTAX", f"{config}:{BASE.count(chr(10))}")
    assert "position" not in err.message_en


def test_control_character_in_mapping_names_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "m.yaml", "dataset: population\n# 城西区\ncolumns: {sfzh: id_number}\ntable: c\x00zrk\n"
    )
    err = _refused(load_mapping, path)
    assert (err.code, err.where) == ("MAPPING_SYNTAX", f"{path}:4")
    inline = _with_inline_values('        status: {"1": "nor\x00mal"}\n')
    config = _write(tmp_path / "exchange.yaml", inline)
    err = _refused(load_exchange, config, ConfigError)
    assert err.code == "CONFIG_SYNTAX" and _line(err) == inline.splitlines().index("      values:") + 2


def test_windows_line_ends_keep_lines(tmp_path: Path) -> None:
    text = BASE.replace('pattern: "*.csv"', 'pattern: "*.c\x00sv"').replace("\n", "\r\n")
    config = tmp_path / "exchange.yaml"
    config.write_bytes(text.encode("utf-8"))
    err = _refused(load_exchange, config, ConfigError)
    assert err.where == f"{config}:{BASE.count(chr(10))}"


# --------------------------------------------------------------------------------------------------
# Values that cannot be read
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "word"),
    [
        ("table: 2001-13-45", "2001-13-45"),  # looks like a date, is not one
        ("table: " + "1" * 5000, "111"),  # more digits than Python turns into an int
        ("table: !local x", "!local"),  # a tag nothing constructs
        ("encoding: !!float utf", "utf"),
        ("columns: {[a, b]: id_number}", "key"),  # a key that is not text
        ("? {a: b}\n: c", "key"),
    ],
)
def test_unreadable_mapping_values_name_the_line(tmp_path: Path, line: str, word: str) -> None:
    path = _write(tmp_path / "m.yaml", f"dataset: population\n{line}\n")
    with pytest.raises(ExtractError) as info:
        load_mapping(path)
    assert (info.value.code, info.value.where) == ("MAPPING_INVALID", f"{path}:2")
    assert word in info.value.message_en


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  lookback: 10m\n", "  batch_size: " + "9" * 5000 + "\n"),
        ("  lookback: 10m\n", "  retries: !!int x\n"),
    ],
)
def test_unreadable_config_values_name_the_line(tmp_path: Path, old: str, new: str) -> None:
    err = _refused(load_exchange, _write(tmp_path / "exchange.yaml", BASE.replace(old, new)), ConfigError)
    assert (err.code, _line(err)) == ("CONFIG_INVALID", 3)


@pytest.mark.parametrize("value", ["2001-13-45", "!unknown x", "1" + "0" * 5000, "{[a]: b}"])
def test_unreadable_office_values_name_the_line(tmp_path: Path, value: str) -> None:
    text = BASE + f"offices:\n  - code: '630104'\n    since: {value}\n"
    err = _refused(load_exchange, _write(tmp_path / "exchange.yaml", text), ConfigError)
    assert (err.code, _line(err)) == ("CONFIG_INVALID", BASE.count("\n") + 3)


# --------------------------------------------------------------------------------------------------
# Through the CLI: exit 2 with the code, never INTERNAL (exit 3)
# --------------------------------------------------------------------------------------------------


def test_cli_reports_hostile_config_as_unusable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {
        "CONFIG_TOO_LARGE": _with_inline_values(_bomb("        ")),
        "CONFIG_TOO_DEEP": "version: 1\nnodes: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "CONFIG_SYNTAX": BASE.replace("name: 城西区", "name: 城西\x00区"),
    }
    for code, text in cases.items():
        config = _write(tmp_path / "exchange.yaml", text)
        assert main(["status", "--config", str(config)]) == 2, code
        err = capsys.readouterr().err
        assert code in err and f"{config}:" in err
        assert "INTERNAL" not in err and "Traceback" not in err
    config = _sparse(tmp_path / "exchange.yaml", CONFIG_MAX_BYTES + 1)
    assert main(["status", "--config", str(config), "--json"]) == 2
    out, err = capsys.readouterr()
    assert '"code": "CONFIG_TOO_LARGE"' in out and "INTERNAL" not in err


def test_cli_reports_hostile_mapping_as_unusable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(tmp_path / "people.csv", "sfzh\n110101199003074514\n")
    cases = {
        "MAPPING_TOO_LARGE": "dataset: population\nvalues:\n" + _bomb("  "),
        "MAPPING_TOO_DEEP": "dataset: population\nvalues: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "MAPPING_SYNTAX": "dataset: population\ntable: c\x00zrk\n",
        "MAPPING_INVALID": "dataset: population\ntable: 2001-13-45\n",
    }
    for code, text in cases.items():
        mapping = _write(tmp_path / "m.yaml", text)
        assert main(["validate", "population", str(data), "--mapping", str(mapping)]) == 2, code
        err = capsys.readouterr().err
        assert code in err and f"{mapping}:" in err
        assert "INTERNAL" not in err and "Traceback" not in err
