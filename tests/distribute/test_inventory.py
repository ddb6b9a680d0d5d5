"""The inventory's files: TOML (reviewable, round-trips) and CSV (a CMDB export)."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.distribute.inventory import (
    Inventory,
    InventoryError,
    InventoryTower,
    inventory_toml,
    parse_csv,
    parse_toml,
    read_inventory,
)

TOML = """\
# tower 17 and 18, from the rack plan
[towers]
t17 = ["mx01", "mx02", "mx01"]
"t.18" = ["mx-a.dc2"]
t19 = []
"""


def test_toml_reads_towers_and_their_servers() -> None:
    assert parse_toml(TOML) == {"t17": ["mx01", "mx02"], "t.18": ["mx-a.dc2"], "t19": []}
    assert parse_toml("") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("[towers]\nt17 = [\"mx01\"\n", "inventory: "),                         # not TOML
    ("t17 = [\"mx01\"]\n", "unknown key 't17': the servers go under [towers]"),
    ("towers = [\"t17\"]\n", "towers must be a table"),
    ("[towers]\nt17 = \"mx01\"\n", "towers.t17 must be a list"),
    ("[towers]\nt17 = [\"mx01\", \"mx 02\"]\n", "towers.t17[1]: server name 'mx 02'"),
    ("[towers]\nt17 = [\"mx01\", 3]\n", "towers.t17[1]: server name 3"),
    ("[towers]\n\"-t\" = [\"mx01\"]\n", "tower name '-t'"),
])
def test_toml_mistakes_say_where(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_toml(text)


def test_csv_with_a_header_takes_the_named_columns() -> None:
    text = ("Hostname,Server,Site,TOWER\r\n"
            "h1.example,mx01,dc1,t17\r\n"
            "\r\n"
            "# decommissioned next week\r\n"
            "h2.example, mx02 ,dc1,t17\r\n"
            "h3.example,mx01,dc2,t18\r\n"
            "h1.example,mx01,dc1,t17\r\n")
    assert parse_csv(text) == {"t17": ["mx01", "mx02"], "t18": ["mx01"]}


def test_csv_without_a_header_is_tower_then_server() -> None:
    assert parse_csv("t17,mx01\nt17,mx02,ignored\n") == {"t17": ["mx01", "mx02"]}
    assert parse_csv("") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("tower,server\nt17,mx01\nt17\n", r"inv.csv:3: a row needs a tower and a server"),
    ("tower,server\nt17,mx/01\n", r"inv.csv:2: server name 'mx/01'"),
    ("t 17,mx01\n", r"inv.csv:1: tower name 't 17'"),
])
def test_csv_mistakes_name_the_line(text: str, message: str) -> None:
    with pytest.raises(InventoryError, match=message):
        parse_csv(text, "inv.csv")


def test_read_inventory_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text(TOML, encoding="utf-8")
    (tmp_path / "b.CSV").write_bytes("\ufefftower,server\nt17,mx01\n".encode())   # Excel's BOM
    (tmp_path / "c.txt").write_text("t17,mx01\n", encoding="utf-8")
    (tmp_path / "d.csv").write_bytes(b"t17,mx\xff\n")
    assert read_inventory(tmp_path / "a.toml")["t17"] == ["mx01", "mx02"]
    assert read_inventory(tmp_path / "b.CSV") == {"t17": ["mx01"]}
    with pytest.raises(InventoryError, match=r"a \.toml or a \.csv file"):
        read_inventory(tmp_path / "c.txt")
    with pytest.raises(InventoryError, match="not UTF-8"):
        read_inventory(tmp_path / "d.csv")
    with pytest.raises(FileNotFoundError):
        read_inventory(tmp_path / "missing.toml")


def test_the_toml_form_round_trips() -> None:
    inventory = {"t.18": ["mx-a.dc2"], "t17": ["mx02", "mx01"]}
    text = inventory_toml(inventory)
    assert '"t17" = ["mx01", "mx02"]' in text
    assert parse_toml(text) == {"t.18": ["mx-a.dc2"], "t17": ["mx01", "mx02"]}


def test_the_inventory_document() -> None:
    document = Inventory.from_mapping({"t2": ["b", "a"], "t1": ["x"], "t3": []})
    assert document == Inventory(servers=3, towers=[InventoryTower("t1", ["x"]),
                                                    InventoryTower("t2", ["a", "b"])])
