"""The emergency kill switch end to end: the minimal release without one rule, then published.

``workbench rule disable ID --emergency`` and the rule-health view's kill action both call
``kill_rule``: ``release.emergency.emergency_disable`` makes the signed, recorded release,
and this publishes it to the workspace's update repository, where towers waiting on a
long poll get it at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from workbench.distribute.update_repository import (
    PublishResult,
    UpdateRepository,
    UpdateRepositoryError,
    publish_bundle,
)
from workbench.release.emergency import EmergencyOutcome, emergency_disable
from workbench.workspace import Workspace


@dataclass
class KillOutcome:
    """What the kill switch did: the release, and its publication (None: not published)."""

    emergency: EmergencyOutcome
    published: PublishResult | None
    repository: bool                  # the workspace has an update repository

    def summary(self) -> str:
        """One line for a notice or the command line's last line."""
        e = self.emergency
        if self.published is not None:
            return (f"{e.rule} disabled in {e.tag} (published: towers waiting on the repository "
                    f"get serial {e.serial} now)")
        if self.repository:
            return f"{e.rule} disabled in {e.tag} (not published)"
        return (f"{e.rule} disabled in {e.tag}; no update repository in this workspace: publish "
                f"it with `workbench publish {e.serial}`")


def kill_rule(workspace: Workspace, rule: str, *, message: str = "", publish: bool = True) -> KillOutcome:
    """Take ``rule`` off the fleet: an emergency release without it, published unless
    ``publish`` is false. ``ReleaseRefused`` when it cannot be released (it does not ship,
    its file has uncommitted changes, other rules need it); an ``UpdateRepositoryError``
    after the release says the release exists but was not published."""
    outcome = emergency_disable(workspace, rule, message=message)
    repo = UpdateRepository.for_workspace(workspace)
    published = None
    if publish and repo.exists():
        try:
            published = publish_bundle(repo, Path(outcome.bundle_path))
        except UpdateRepositoryError as exc:
            # the release exists now: say so, in the error's own kind
            raise UpdateRepositoryError(f"released {outcome.tag} but not published: {exc.message}",
                                        kind=exc.kind) from exc
    return KillOutcome(outcome, published, repo.exists())
