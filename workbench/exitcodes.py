"""Process exit codes of the ``workbench`` command, documented in docs/cli.md."""

from workbench.errors import Kind

E_OK = 0
E_FINDINGS = 1        # the command ran and found what must be acted on (lint errors, failed validation, fsck problems)
E_USAGE = 2           # bad arguments (argparse's own code)
E_NOT_FOUND = 3       # an ID, serial, file or corpus that does not exist or is ambiguous
E_INPUT = 4           # input was rejected (not mail, malformed rule, bad bundle); nothing was lost
E_CONFLICT = 5        # refused because of state: dirty tree, lock held, validation failed before release
E_REMOTE = 6          # a server or repository could not be reached or refused the request
E_LOCAL = 7           # this machine failed the command (disk full, no permission); nothing was lost
E_INTERNAL = 10       # a bug: an unexpected exception

# The one place a kind of error becomes an exit code (``workbench.cli.main`` uses it).
EXIT_CODES: dict[Kind, int] = {
    Kind.USAGE: E_USAGE,
    Kind.NOT_FOUND: E_NOT_FOUND,
    Kind.INPUT: E_INPUT,
    Kind.CONFLICT: E_CONFLICT,
    Kind.REMOTE: E_REMOTE,
    Kind.LOCAL: E_LOCAL,
}
KINDS: dict[int, Kind] = {code: kind for kind, code in EXIT_CODES.items()}
