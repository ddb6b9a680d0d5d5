"""Tower tokens: issued once, stored hashed, revocable, re-read by a running server."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from workbench.distribute.tokens import TokenError, TokenStore, token_hash


def test_add_verify_and_store_only_the_hash(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    record, token = store.add("t01", label="ops")
    assert token.startswith(f"wbt_{record.id}_")
    assert store.verify(token) == "t01"
    text = (tmp_path / "tokens.json").read_text()
    assert token not in text and token.split("_", 2)[2] not in text
    assert json.loads(text)["tokens"][0]["hash"] == token_hash(token)
    assert stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode) == 0o600


@pytest.mark.parametrize("bad", ["", "wbt_", "Bearer x", "wbt_000000000000_" + "A" * 43])
def test_wrong_tokens_verify_to_nobody(tmp_path: Path, bad: str) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    store.add("t01")
    assert store.verify(bad) is None


def test_a_changed_secret_with_a_real_id_is_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    _, token = store.add("t01")
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert store.verify(forged) is None


def test_revoke_by_id_or_tower(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    r1, t1 = store.add("t01")
    _, t2 = store.add("t01")
    _, t3 = store.add("t02")
    assert [r.id for r in store.revoke(r1.id)] == [r1.id]
    assert store.verify(t1) is None and store.verify(t2) == "t01"
    assert len(store.revoke("t01")) == 1
    assert store.verify(t2) is None and store.verify(t3) == "t02"
    with pytest.raises(TokenError, match="no token"):
        store.revoke("t01")


def test_another_process_changes_are_seen_without_restart(tmp_path: Path) -> None:
    server_side = TokenStore(tmp_path / "tokens.json")
    assert server_side.verify("wbt_x") is None          # no file yet
    cli_side = TokenStore(tmp_path / "tokens.json")
    record, token = cli_side.add("t07")
    assert server_side.verify(token) == "t07"
    cli_side.revoke(record.id)
    assert server_side.verify(token) is None


@pytest.mark.parametrize("name", ["", "-t", "a b", "t/1", "x" * 65, "tür"])
def test_bad_tower_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(TokenError, match="tower name"):
        TokenStore(tmp_path / "tokens.json").add(name)
    assert not (tmp_path / "tokens.json").exists()
