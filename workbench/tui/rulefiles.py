"""The editor's rule-file operations, now ``workbench.rules.rulefile`` (one copy for the CLI and the UI).

Kept as names only, so code written against this module goes on working.
"""

from __future__ import annotations

from workbench.rules.rulefile import default_rule_path, set_rule_status
from workbench.rules.rulefile import merge_rules as merge_into
from workbench.rules.rulefile import write_rule_file as write_atomically

__all__ = ["default_rule_path", "merge_into", "set_rule_status", "write_atomically"]
