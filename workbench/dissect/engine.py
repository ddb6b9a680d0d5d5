"""Dissection: walk a message (or any file) into an artifact tree, one dissector per node, within limits."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.dissect.cache import DissectCache, revive
from workbench.dissect.identify import extension, name_flags, sanitize_filename
from workbench.dissect.model import (
    LIMIT_HIT,
    OK,
    PARSER_ERROR,
    PARTIAL,
    TIMED_OUT,
    Artifact,
    Child,
    ChildRef,
    Dissection,
    DissectResult,
    Identity,
    Limits,
    worse,
)
from workbench.dissect.registry import DissectContext, Dissector, by_name, choose
from workbench.dissect.worker import WorkerFailed, WorkerPool, WorkerTimeout, run_task

if TYPE_CHECKING:
    from workbench.quarantine.service import Quarantine
    from workbench.quarantine.store import ObjectStore

DEFAULT_PASSWORDS = ("infected", "password", "VelvetSweatshop", "123", "1234", "12345", "123456",
                     "4321", "1234567890")
NodeCallback = Callable[[Artifact], None]


def _hash_only(data: bytes, note: str) -> Identity:
    """Identity without libmagic or fuzzy hashes, for inputs over the size limit."""
    return Identity(size=len(data), md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(),
                    sha256=hashlib.sha256(data).hexdigest(), ssdeep="", tlsh="", magic="", mime="",
                    entropy=0.0, entropy_window=0, entropy_windows=[], notes=[note])


class _Run:
    """One dissection: counters shared by every node of the tree."""

    def __init__(self, *, limits: Limits, store: ObjectStore | None, cache: DissectCache | None,
                 on_node: NodeCallback | None, pool: WorkerPool | None):
        self.limits = limits
        self.store = store
        self.cache = cache
        self.on_node = on_node
        self.pool = pool
        self.passwords: list[str] = list(DEFAULT_PASSWORDS)
        self.expanded = 0
        self.children = 0
        self.nodes = 0
        self.problems: list[str] = []

    # -- identity --------------------------------------------------------------------------

    def identify(self, data: bytes, sha256: str) -> Identity:
        if self.cache is not None:
            cached = self.cache.get_identity(sha256)
            if cached is not None:
                return revive(Identity, cached)
        try:
            ident = run_task("identify", (data, self.limits.fuzzy_max), limits=self.limits,
                             timeout=self.limits.timeout, pool=self.pool)
        except (WorkerFailed, WorkerTimeout) as exc:
            return _hash_only(data, f"identification failed: {exc}")
        if self.cache is not None:
            self.cache.put_identity(sha256, ident)
        return ident

    # -- one dissector call -----------------------------------------------------------------

    def _cache_key(self, d: Dissector, sha256: str) -> str:
        parts = [sha256, d.name, str(d.version), self.limits.fingerprint()]
        if d.uses_passwords:
            parts.append(hashlib.sha256("\n".join(self.passwords).encode()).hexdigest()[:16])
        return "|".join(parts)

    def run_dissector(self, d: Dissector, data: bytes, sha256: str, ctx: DissectContext
                      ) -> tuple[DissectResult, list[Child | ChildRef], bool]:
        key = self._cache_key(d, sha256)
        if self.cache is not None and self.store is not None:
            row = self.cache.get_report(key)
            if row is not None and row["version"] == d.version:
                refs = revive(list[ChildRef], json.loads(row["children"]))
                if all(self.store.exists(r.sha256) for r in refs):
                    report = revive(getattr(d, "report_type", Any), json.loads(row["report"]))
                    hit = DissectResult(report=report, status=row["status"], reason=row["reason"])
                    return hit, list(refs), True
        timeout = self.limits.slow_timeout if d.slow else self.limits.timeout
        try:
            result: DissectResult = run_task("dissect", (d.name, data, ctx), limits=self.limits,
                                             timeout=timeout, pool=self.pool)
        except WorkerTimeout as exc:
            return DissectResult(status=TIMED_OUT, reason=f"{d.name}: {exc}"), [], False
        except WorkerFailed as exc:
            return DissectResult(status=PARSER_ERROR, reason=f"{d.name}: {exc}"), [], False
        children: list[Child | ChildRef] = list(result.children)
        if self.cache is not None and self.store is not None and result.status in (OK, PARTIAL, PARSER_ERROR):
            refs = []
            for c in result.children:
                put = self.store.put_bytes(c.data, durable=False)
                refs.append(ChildRef(c.name, put.sha256, len(c.data), c.declared_type, c.segment, c.note))
            self.cache.put_report(key, sha256=sha256, dissector=d.name, version=d.version,
                                  status=result.status, reason=result.reason, report=result.report,
                                  children=refs)
        result.children = []
        return result, children, False

    # -- the tree -------------------------------------------------------------------------------

    def node(self, data: bytes, *, name: str, declared: str, segment: str, parent_path: str,
             depth: int, note: str = "", force: str | None = None) -> Artifact:
        started = time.perf_counter()
        self.nodes += 1
        sha256 = hashlib.sha256(data).hexdigest()
        over = depth == 0 and len(data) > self.limits.max_input
        ident = (_hash_only(data, f"input over {self.limits.max_input} bytes: not dissected")
                 if over else self.identify(data, sha256))
        safe = sanitize_filename(name, fallback="")
        path = f"{parent_path}/{segment}" if parent_path else segment
        art = Artifact(
            path=path, filename=name, safe_name=safe, declared_type=declared, magic=ident.magic,
            mime=ident.mime, extension=extension(name), flags=name_flags(name, declared, ident.mime),
            size=ident.size, md5=ident.md5, sha1=ident.sha1, sha256=ident.sha256, ssdeep=ident.ssdeep,
            tlsh=ident.tlsh, entropy=ident.entropy, entropy_window=ident.entropy_window,
            entropy_windows=ident.entropy_windows, depth=depth, note=note, notes=list(ident.notes))
        if over:
            self._problem(art, LIMIT_HIT, f"size {len(data)} over the input limit {self.limits.max_input}")
            self._done(art, started)
            return art
        d = by_name(force) if force else choose(mime=ident.mime, magic=ident.magic, declared=declared,
                                                 extension=art.extension, head=data[:16])
        if d is None:
            self._done(art, started)
            return art
        art.dissector, art.dissector_version = d.name, d.version
        if depth >= self.limits.max_depth:
            self._problem(art, LIMIT_HIT, f"depth limit {self.limits.max_depth}: {d.name} not run")
            self._done(art, started)
            return art
        ctx = DissectContext(filename=name, declared_type=declared, mime=ident.mime, magic=ident.magic,
                             limits=self.limits, passwords=list(self.passwords),
                             budget=max(0, self.limits.max_total - self.expanded),
                             children_left=max(0, self.limits.max_children - self.children))
        result, children, cached = self.run_dissector(d, data, sha256, ctx)
        art.report, art.cached = result.report, cached
        if result.status != OK:
            self._problem(art, result.status, result.reason)
        for word in getattr(result.report, "password_candidates", None) or []:
            if word not in self.passwords:
                self.passwords.append(word)
        self._done(art, started)
        self._descend(art, children, depth)
        return art

    def _descend(self, art: Artifact, children: list[Child | ChildRef], depth: int) -> None:
        used: dict[str, int] = {}
        for index, child in enumerate(children):
            if self.children >= self.limits.max_children:
                self._problem(art, LIMIT_HIT, f"children limit {self.limits.max_children}: "
                                              f"{len(children) - index} more not dissected")
                break
            if isinstance(child, ChildRef):
                assert self.store is not None
                data = self.store.read(child.sha256)
            else:
                data = child.data
            if len(data) > self.limits.max_child:
                self._problem(art, LIMIT_HIT, f"{child.name or 'child'}: {len(data)} bytes over the "
                                              f"child limit {self.limits.max_child}")
                continue
            if self.expanded + len(data) > self.limits.max_total:
                self._problem(art, LIMIT_HIT, f"total expanded bytes limit {self.limits.max_total}: "
                                              f"{len(children) - index} children not dissected")
                break
            self.expanded += len(data)
            self.children += 1
            if self.store is not None and isinstance(child, Child):
                self.store.put_bytes(data, durable=False)
            segment = child.segment or sanitize_filename(child.name, fallback=f"child {index + 1}")
            used[segment] = used.get(segment, 0) + 1
            if used[segment] > 1:
                segment = f"{segment}#{used[segment]}"
            art.children.append(self.node(data, name=child.name, declared=child.declared_type,
                                          segment=segment, parent_path=art.path, depth=depth + 1,
                                          note=child.note))

    def _problem(self, art: Artifact, status: str, reason: str) -> None:
        art.status = worse(art.status, status)
        art.reason = f"{art.reason}; {reason}" if art.reason else reason

    def _done(self, art: Artifact, started: float) -> None:
        art.elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        if self.on_node is not None:
            self.on_node(art)


def _finish(run: _Run, root: Artifact, message_sha256: str, started: float) -> Dissection:
    problems = [f"{n.path}: {n.status}: {n.reason}" for n in root.walk() if n.status != OK]
    return Dissection(root=root, message_sha256=message_sha256, nodes=run.nodes,
                      expanded_bytes=run.expanded, elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
                      limits=run.limits, problems=problems)


def dissect_bytes(data: bytes, filename: str = "", *, store: ObjectStore | None = None,
                  limits: Limits | None = None, on_node: NodeCallback | None = None,
                  cache: DissectCache | None = None, declared_type: str = "",
                  as_message: bool = False, pool: WorkerPool | None = None) -> Dissection:
    """Dissect any file. With ``store``, extracted children are written to it (and, with
    ``cache``, reports are reused). ``as_message`` forces the message dissector on the root."""
    limits = limits or Limits()
    run = _Run(limits=limits, store=store, cache=cache, on_node=on_node, pool=pool)
    started = time.perf_counter()
    root_segment = "message" if as_message else (sanitize_filename(filename, fallback="file"))
    root = run.node(data, name=filename, declared=declared_type, segment=root_segment, parent_path="",
                    depth=0, force="message" if as_message else None)
    return _finish(run, root, hashlib.sha256(data).hexdigest(), started)


def dissect_message(quarantine: Quarantine, sha256: str, *, limits: Limits | None = None,
                    on_node: NodeCallback | None = None, use_cache: bool = True,
                    pool: WorkerPool | None = None) -> Dissection:
    """Dissect a quarantined message: children go to the quarantine's store, reports to the
    cache in ``state/dissect.sqlite`` and every extracted artifact into the catalog."""
    from workbench.workspace import Workspace

    limits = limits or Limits()
    sha = quarantine.resolve(sha256)
    size = quarantine.store.size(sha)
    data = quarantine.store.read(sha, limit=limits.max_input + 1)
    workspace = Workspace(quarantine.root.parent)
    cache = DissectCache.open(workspace)
    try:
        result = dissect_bytes(data, "", store=quarantine.store, limits=limits, on_node=on_node,
                               cache=cache if use_cache else None, as_message=True, pool=pool)
        if size > len(data):
            result.root.notes.append(f"only the first {len(data)} of {size} bytes were read")
        rows = [(sha, n.path, n.sha256, n.filename or n.safe_name, n.mime, n.size, n.depth, n.status)
                for n in result.root.walk() if n is not result.root]
        cache.record_message(sha, result.status, rows)
        quarantine.store.sync()
    finally:
        cache.close()
    return result
