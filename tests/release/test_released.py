"""A rule's metadata is refreshed against the last release: one version bump per release, CLI and editor alike."""

from __future__ import annotations

from tests.support.signatures import SigRepo
from workbench.cli import main
from workbench.exitcodes import E_OK
from workbench.release.released import latest_release_tag, released_rules
from workbench.release.signature_repository import SignatureRepository
from workbench.rules.parse import parse_file

RULE = "SPAM_GTUBE_TestString"


def _version(sig: SigRepo) -> object:
    return next(r for r in parse_file(sig.rule_file("spam/gtube.yar")).rules if r.name == RULE).meta_value("version")


def test_released_rules_come_from_the_newest_release_tag(sig: SigRepo) -> None:
    path = sig.rule_file("spam/gtube.yar")
    assert released_rules(sig.root, path) is None                      # nothing released yet
    sig.repo.create_tag("signatures-1", message="one")
    assert latest_release_tag(SignatureRepository(sig.root)) == "signatures-1"
    assert set(released_rules(sig.root, path) or {}) == {RULE}
    assert released_rules(sig.root, sig.root / "rules" / "spam" / "new.yar") == {}
    assert released_rules(sig.root, sig.root.parent / "elsewhere.yar") is None


def test_fmt_update_meta_bumps_once_per_release(sig: SigRepo) -> None:
    sig.repo.create_tag("signatures-1", message="one")
    path = sig.rule_file("spam/gtube.yar")
    fmt = ["--home", str(sig.workspace.home), "--signatures", str(sig.root), "rule", "fmt", "--update-meta",
           str(path)]
    path.write_text(path.read_text().replace("filesize < 10MB", "filesize < 12MB"))
    assert main(fmt) == E_OK and _version(sig) == 2
    path.write_text(path.read_text().replace("filesize < 12MB", "filesize < 14MB"))
    assert main(fmt) == E_OK and _version(sig) == 2                     # was 3 before
