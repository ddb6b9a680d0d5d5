"""``workbench doctor``: is this installation fit to take hostile files apart? Libraries, engines, the sandbox."""

from __future__ import annotations

import importlib
import importlib.metadata
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from workbench.dissect.probe import ProbeReport, run_hostile_probe
from workbench.dissect.sandbox import SandboxUnavailable, bwrap_binary, is_sandboxed
from workbench.workspace import Workspace


@dataclass
class Check:
    """One component: whether it works here, its version, and what to do if not."""

    name: str
    ok: bool
    version: str = ""
    detail: str = ""


@dataclass
class DoctorReport:
    checks: list[Check] = field(default_factory=list)
    isolation: str = ""                   # what dissect workers run in on this machine
    probe: ProbeReport | None = None      # the hostile probe in a real worker (None: not run)

    @property
    def ok(self) -> bool:
        return (all(c.ok for c in self.checks) and is_sandboxed(self.isolation)
                and (self.probe is None or self.probe.contained))


def _distribution(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _libmagic() -> Check:
    try:
        import magic

        raw = magic.version()
        magic.from_buffer(b"%PDF-1.7\n", mime=True)
    except (ImportError, OSError, AttributeError) as exc:
        return Check("libmagic", False, detail=f"{type(exc).__name__}: {exc}; install libmagic1")
    return Check("libmagic", True, f"{raw // 100}.{raw % 100}", f"python-magic {_distribution('python-magic')}")


def _libarchive() -> Check:
    try:
        ffi = importlib.import_module("libarchive.ffi")
        number = int(ffi.version_number())
    except (ImportError, OSError, AttributeError) as exc:
        return Check("libarchive", False, detail=f"{type(exc).__name__}: {exc}; install libarchive13 (RAR members)")
    version = f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}"
    return Check("libarchive", True, version, f"libarchive-c {_distribution('libarchive-c')}")


def _yara() -> list[Check]:
    checks = []
    try:
        import yara

        yara.compile(source="rule doctor { condition: true }")
        checks.append(Check("YARA (libyara)", True, str(getattr(yara, "YARA_VERSION", yara.__version__)),
                            f"yara-python {_distribution('yara-python')}"))
    except Exception as exc:
        checks.append(Check("YARA (libyara)", False, detail=f"{type(exc).__name__}: {exc}"))
    try:
        import yara_x

        yara_x.compile("rule doctor { condition: true }")
        checks.append(Check("YARA-X", True, _distribution("yara-x")))
    except Exception as exc:
        checks.append(Check("YARA-X", False, detail=f"{type(exc).__name__}: {exc}"))
    return checks


def _bubblewrap() -> Check:
    binary = bwrap_binary()
    if binary is None:
        return Check("bubblewrap", False, detail="not installed: apt-get install bubblewrap")
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return Check("bubblewrap", False, detail=f"{binary}: {exc.strerror}")
    return Check("bubblewrap", out.returncode == 0, out.stdout.strip().removeprefix("bubblewrap "), binary)


def _seccomp() -> Check:
    # Loading a filter here would bind this process for good: only check the library loads.
    try:
        import pyseccomp

        version = f"libseccomp API {pyseccomp.get_api()}"
    except (ImportError, RuntimeError, OSError) as exc:
        return Check("seccomp", False, detail=f"{exc}; install libseccomp2 and pyseccomp")
    return Check("seccomp", True, _distribution("pyseccomp"), version)


def run_doctor(workspace: Workspace, *, probe: bool = True, sandbox_mode: str = "auto") -> DoctorReport:
    """Check the installation; with ``probe``, run the hostile probe in a real dissect worker."""
    from workbench.dissect.worker import WorkerPool

    report = DoctorReport(checks=[_libmagic(), _libarchive(), *_yara(), _bubblewrap(), _seccomp()])
    pool = WorkerPool(size=2, sandbox=sandbox_mode, shared=False)
    try:
        try:
            report.isolation = pool.isolation
        except SandboxUnavailable as exc:
            report.isolation = f"refused: {exc}"
            return report
        report.checks.append(Check("dissect sandbox", is_sandboxed(report.isolation), detail=report.isolation))
        if probe:
            with tempfile.TemporaryDirectory(prefix="workbench-doctor-") as tmp:
                keys = workspace.state / "keys"
                if not keys.is_dir():
                    keys = Path(tmp) / "state" / "keys"        # a stand-in: the workspace has no keys yet
                scratch = workspace.home if workspace.home.is_dir() else Path(tmp)
                report.probe = run_hostile_probe(pool, keys, scratch)
    finally:
        pool.close()
    return report
