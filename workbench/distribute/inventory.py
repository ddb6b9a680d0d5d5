"""The fleet inventory's files: the servers each tower should have, read from TOML or CSV, written as TOML.

The store is ``FleetStore`` (table ``expected`` in ``state/fleet.sqlite``); this module
reads what operators keep elsewhere (a file under review in git, a CMDB export) and
checks every name the way tower configs and tokens are checked.

TOML, the reviewable form (``workbench fleet inventory --toml`` writes it)::

    [towers]
    t017 = ["mx01", "mx02", "mx03"]

CSV, what a CMDB exports: a header row naming a ``tower`` and a ``server`` column (other
columns are ignored), or no header and those two as the first columns. Blank lines and
lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import csv
import io
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.distribute.tokens import NAME
from workbench.errors import Kind, WorkbenchError

SUFFIXES = (".toml", ".csv")
MAX_BYTES = 16 * 1024 * 1024


class InventoryError(WorkbenchError):
    """A file that cannot be read as an inventory; the message says where."""

    kind = Kind.INPUT


@dataclass(frozen=True)
class InventoryTower:
    tower: str
    servers: list[str]


@dataclass(frozen=True)
class Inventory:
    """``workbench fleet inventory --json``: the expected servers, tower by tower."""

    servers: int
    towers: list[InventoryTower]

    @classmethod
    def from_mapping(cls, inventory: dict[str, list[str]]) -> Inventory:
        towers = [InventoryTower(t, sorted(inventory[t])) for t in sorted(inventory) if inventory[t]]
        return cls(servers=sum(len(t.servers) for t in towers), towers=towers)


def check_name(kind: str, name: str, where: str = "") -> str:
    """A tower or server name as tower configs and tokens take them; ``where`` starts the error."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise InventoryError(f"{where + ': ' if where else ''}{kind} name {name!r}: 1-64 letters, "
                             "digits, '.', '_' or '-', starting with a letter or digit")
    return name


def read_inventory(path: Path) -> dict[str, list[str]]:
    """tower -> servers from a ``.toml`` or ``.csv`` file (the suffix says which)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InventoryError(f"{path}: an inventory is a .toml or a .csv file")
    with path.open("rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise InventoryError(f"{path}: over {MAX_BYTES // (1024 * 1024)} MiB; not an inventory")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return parse_toml(text, str(path)) if suffix == ".toml" else parse_csv(text, str(path))


def parse_toml(text: str, where: str = "inventory") -> dict[str, list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    unknown = sorted(set(data) - {"towers"})
    if unknown:
        raise InventoryError(f"{where}: unknown key {unknown[0]!r}: the servers go under [towers], "
                             'as t017 = ["mx01", "mx02"]')
    towers = data.get("towers", {})
    if not isinstance(towers, dict):
        raise InventoryError(f"{where}: towers must be a table: [towers] then t017 = [\"mx01\", ...]")
    out: dict[str, list[str]] = {}
    for tower, servers in towers.items():
        check_name("tower", tower, f"{where}: towers")
        if not isinstance(servers, list):
            raise InventoryError(f"{where}: towers.{tower} must be a list of server names")
        out[tower] = _unique([check_name("server", s, f"{where}: towers.{tower}[{n}]")
                              for n, s in enumerate(servers)])
    return out


def parse_csv(text: str, where: str = "inventory") -> dict[str, list[str]]:
    rows = [(n, row) for n, row in enumerate(csv.reader(io.StringIO(text)), start=1)
            if any(cell.strip() for cell in row) and not row[0].lstrip().startswith("#")]
    columns = (0, 1)
    if rows:
        header = [cell.strip().lower() for cell in rows[0][1]]
        if "tower" in header and "server" in header:
            columns = (header.index("tower"), header.index("server"))
            rows = rows[1:]
    out: dict[str, list[str]] = {}
    for n, row in rows:
        if len(row) <= max(columns):
            raise InventoryError(f"{where}:{n}: a row needs a tower and a server")
        tower = check_name("tower", row[columns[0]].strip(), f"{where}:{n}")
        out.setdefault(tower, []).append(check_name("server", row[columns[1]].strip(), f"{where}:{n}"))
    return {tower: _unique(servers) for tower, servers in out.items()}


def _unique(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def inventory_toml(inventory: dict[str, list[str]]) -> str:
    """The TOML form, one tower a line: what ``read_inventory`` reads back."""
    lines = ["# The servers each tower should have (workbench fleet expect --from FILE --replace).",
             "[towers]"]
    for tower in sorted(inventory):
        servers = ", ".join(f'"{s}"' for s in sorted(inventory[tower]))
        lines.append(f'"{tower}" = [{servers}]')
    return "\n".join(lines) + "\n"
