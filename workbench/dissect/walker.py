"""Dissection: walk a message (or any file) into an artifact tree, one dissector per node, within limits."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.dissect.dissectors import HEAD_BYTES, DissectContext, Dissector, NodePlan, by_name
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
    Fingerprint,
    Identity,
    Limits,
    worse,
)
from workbench.dissect.sandbox import (
    IN_PROCESS,
    REQUIRE,
    SandboxUnavailable,
    is_sandboxed,
    workspace_mode,
)
from workbench.dissect.worker import (
    WorkerFailed,
    WorkerPool,
    WorkerTimeout,
    default_pool,
    run_steps,
    run_task,
)

if TYPE_CHECKING:
    from workbench.dissect.cache import CatalogEntry, DissectCache
    from workbench.quarantine.object_store import ObjectStore
    from workbench.quarantine.service import Quarantine

DEFAULT_PASSWORDS = ("infected", "password", "VelvetSweatshop", "123", "1234", "12345", "123456",
                     "4321", "1234567890")
NodeCallback = Callable[[Artifact], None]


def _hashes_only(data: bytes) -> Fingerprint:
    """md5 and sha1 without fuzzy hashes or entropy: for inputs over the size limit, or when the
    fingerprint worker failed (hashlib reads bytes, it parses nothing: safe in this process)."""
    return Fingerprint(md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest(), ssdeep="",
                       tlsh="", entropy=0.0, entropy_window=0, entropy_windows=[])


@dataclass
class _Extracted:
    """A child on its way into the tree: its bytes (or its place in the store) and, once the
    parent has hashed it, its sha256. Hashes a worker claims are never used."""

    name: str
    declared_type: str
    segment: str
    note: str
    data: bytes | None                    # None: in the store under ``sha256`` (a cached report's child)
    sha256: str = ""
    stored: bool = False


Outcome = tuple[DissectResult, list[_Extracted], bool]     # result, children, from the report cache


def _type_answer(value: object) -> tuple[str, str, Dissector | None]:
    """The first answer of a node task: ``(magic, mime, dissector)``; anything else is a failure."""
    if (not isinstance(value, tuple) or len(value) != 3 or not all(isinstance(v, str) for v in value)):
        raise WorkerFailed(f"the worker answered {type(value).__name__} for a type")
    description, mime, name = value
    try:
        return description, mime, by_name(name) if name else None
    except KeyError:
        raise WorkerFailed(f"the worker named an unknown dissector {name[:40]!r}") from None


class _Run:
    """One dissection: counters shared by every node of the tree.

    Each node takes two lanes at once: the fingerprint (hashes, ssdeep, TLSH, entropy:
    no parsing) in one worker, and the type plus the dissector in another; children's
    fingerprints start as soon as their parent's dissector hands them over. The tree
    itself is walked in order on the calling thread, so limits, paths and callbacks do
    not depend on which worker finished first.
    """

    def __init__(self, *, limits: Limits, store: ObjectStore | None, cache: DissectCache | None,
                 on_node: NodeCallback | None, pool: WorkerPool | None, lanes: Executor):
        self.limits = limits
        self.store = store
        self.cache = cache
        self.on_node = on_node
        self.pool = pool
        self.lanes = lanes
        self.passwords: list[str] = list(DEFAULT_PASSWORDS)
        self.expanded = 0
        self.children = 0
        self.nodes = 0
        self.problems: list[str] = []
        self.isolation = pool.isolation if pool is not None else IN_PROCESS
        self.identities: dict[str, Identity] = {}        # the same bytes twice in one tree: one identify
        self.fingerprints: dict[str, Future[Fingerprint | str]] = {}

    # -- identity --------------------------------------------------------------------------

    def known_identity(self, sha256: str) -> Identity | None:
        ident = self.identities.get(sha256)
        if ident is None and self.cache is not None:
            cached = self.cache.get_identity(sha256)
            if cached is not None:
                from workbench.dissect.cache import revive

                ident = self.identities[sha256] = revive(Identity, cached)
        return ident

    def fingerprint_soon(self, data: bytes, sha256: str) -> Future[Fingerprint | str]:
        """The fingerprint of ``data``, computing in a worker (once per sha256 per dissection)."""
        future = self.fingerprints.get(sha256)
        if future is None:
            future = self.fingerprints[sha256] = self.lanes.submit(self._fingerprint, data)
        return future

    def _fingerprint(self, data: bytes) -> Fingerprint | str:
        """Runs on a lane thread: the fingerprint, or why there is none."""
        try:
            result = run_task("fingerprint", (data, self.limits.fuzzy_max), limits=self.limits,
                              timeout=self.limits.timeout, pool=self.pool)
        except (WorkerFailed, WorkerTimeout) as exc:
            return f"fingerprint failed: {exc}"
        except Exception as exc:            # a lane thread must not take the walk down with it
            return f"fingerprint failed: {type(exc).__name__}: {exc}"
        if not isinstance(result, Fingerprint):
            return f"fingerprint failed: the worker answered a {type(result).__name__}"
        return result

    def identify_and_dissect(self, data: bytes, sha256: str, plan: NodePlan
                             ) -> tuple[Identity, Dissector | None, Outcome | None]:
        """Fingerprint in one lane; type, choice and dissection in another, as one worker task
        whose first answer is the type, so a dissector that hangs or crashes still leaves the
        node its hashes and type."""
        fingerprint = self.fingerprint_soon(data, sha256)
        limits = self.limits
        notes: list[str] = []
        budget = limits.timeout + max(limits.timeout, limits.slow_timeout)
        d: Dissector | None = None
        outcome: Outcome | None = None
        try:
            with run_steps("node", (data, plan), limits=limits, budget=budget, pool=self.pool) as steps:
                description, mime, d = _type_answer(steps.next(limits.timeout))
                if not steps.done and d is not None:
                    try:
                        result = steps.next(limits.slow_timeout if d.slow else limits.timeout)
                    except (WorkerFailed, WorkerTimeout) as exc:
                        outcome = (self._failure(d, exc), [], False)
                    else:
                        outcome = self._accept(d, sha256, result)
        except (WorkerFailed, WorkerTimeout) as exc:
            # libmagic itself failed: no type, and the dissector (if one is chosen from the
            # declared type, extension or leading bytes) runs on its own.
            description, mime = "", ""
            notes.append(f"identification failed: {exc}")
            d = self._pick(plan, mime, description, data)
            if d is not None and plan.may_dissect:
                outcome = self.run_dissector(d, data, sha256, plan.ctx)
        fp = fingerprint.result()
        if isinstance(fp, str):
            notes.append(fp)
            fp = _hashes_only(data)
        ident = Identity.of(size=len(data), sha256=sha256, magic=description, mime=mime, fingerprint=fp,
                            notes=notes)
        if not notes:
            self.identities[sha256] = ident
            if self.cache is not None:
                self.cache.put_identity(sha256, ident)
        return ident, d, outcome

    @staticmethod
    def _pick(plan: NodePlan, mime: str, magic: str, data: bytes) -> Dissector | None:
        name = plan.pick(mime=mime, magic=magic, head=data[:HEAD_BYTES])
        return by_name(name) if name else None

    # -- one dissector call -----------------------------------------------------------------

    def _cache_key(self, d: Dissector, sha256: str) -> str:
        parts = [sha256, d.name, str(d.version), self.limits.fingerprint()]
        if d.uses_passwords:
            parts.append(hashlib.sha256("\n".join(self.passwords).encode()).hexdigest()[:16])
        return "|".join(parts)

    def run_dissector(self, d: Dissector, data: bytes, sha256: str, ctx: DissectContext) -> Outcome:
        key = self._cache_key(d, sha256)
        if self.cache is not None and self.store is not None:
            row = self.cache.get_report(key)
            if row is not None and row["version"] == d.version:
                from workbench.dissect.cache import revive, unpack

                refs = revive(list[ChildRef], unpack(row["children"]))
                if all(self.store.exists(r.sha256) for r in refs):
                    report = revive(getattr(d, "report_type", Any), unpack(row["report"]))
                    hit = DissectResult(report=report, status=row["status"], reason=row["reason"])
                    return hit, [_Extracted(r.name, r.declared_type, r.segment, r.note, None, r.sha256, True)
                                 for r in refs], True
        timeout = self.limits.slow_timeout if d.slow else self.limits.timeout
        try:
            result: DissectResult = run_task("dissect", (d.name, data, ctx), limits=self.limits,
                                             timeout=timeout, pool=self.pool)
        except (WorkerFailed, WorkerTimeout) as exc:
            return self._failure(d, exc), [], False
        return self._accept(d, sha256, result)

    @staticmethod
    def _failure(d: Dissector, exc: Exception) -> DissectResult:
        status = TIMED_OUT if isinstance(exc, WorkerTimeout) else PARSER_ERROR
        return DissectResult(status=status, reason=f"{d.name}: {exc}")

    def _accept(self, d: Dissector, sha256: str, result: DissectResult) -> Outcome:
        """A dissector's answer: children out of the result, into the store and the report cache."""
        if not isinstance(result, DissectResult) or not all(
                isinstance(c, Child) and type(c.data) is bytes for c in result.children):
            return self._failure(d, WorkerFailed(f"the worker answered a {type(result).__name__}")), [], False
        children = [_Extracted(c.name, c.declared_type, c.segment, c.note, c.data) for c in result.children]
        result.children = []
        caching = (self.cache is not None and self.store is not None and result.cacheable
                   and result.status in (OK, PARTIAL, PARSER_ERROR))
        for c in children:
            assert c.data is not None
            if caching:
                assert self.store is not None
                c.sha256, c.stored = self.store.put_bytes(c.data, durable=False).sha256, True
            else:
                c.sha256 = hashlib.sha256(c.data).hexdigest()
        if caching:
            assert self.cache is not None
            refs = [ChildRef(c.name, c.sha256, len(c.data or b""), c.declared_type, c.segment, c.note)
                    for c in children]
            self.cache.put_report(self._cache_key(d, sha256), sha256=sha256, dissector=d.name,
                                  version=d.version, status=result.status, reason=result.reason,
                                  report=result.report, children=refs)
        self._start_fingerprints(children)
        return result, children, False

    def _start_fingerprints(self, children: list[_Extracted]) -> None:
        """Start the fingerprints of the children the limits will let through, while the walk
        is still busy with their parent and elder siblings."""
        room = self.limits.max_total - self.expanded
        count = self.limits.max_children - self.children
        for c in children:
            size = len(c.data or b"")
            if c.data is None or count <= 0 or size > room:
                break
            count -= 1
            if size > self.limits.max_child:
                continue
            room -= size
            if self.known_identity(c.sha256) is None:
                self.fingerprint_soon(c.data, c.sha256)

    # -- the tree -------------------------------------------------------------------------------

    def node(self, data: bytes, *, name: str, declared: str, segment: str, parent_path: str,
             depth: int, note: str = "", force: str | None = None, sha256: str = "") -> Artifact:
        started = time.perf_counter()
        self.nodes += 1
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        over = depth == 0 and len(data) > self.limits.max_input
        plan = NodePlan(declared=declared, extension=extension(name), force=force or "",
                        may_dissect=depth < self.limits.max_depth,
                        ctx=DissectContext(filename=name, declared_type=declared, mime="", magic="",
                                           limits=self.limits, passwords=list(self.passwords),
                                           budget=max(0, self.limits.max_total - self.expanded),
                                           children_left=max(0, self.limits.max_children - self.children)))
        d: Dissector | None = None
        outcome: Outcome | None = None
        known = None if over else self.known_identity(sha256)
        if over:
            ident = Identity.of(size=len(data), sha256=sha256, magic="", mime="", fingerprint=_hashes_only(data),
                                notes=[f"input over {self.limits.max_input} bytes: not dissected"])
        elif known is None:
            ident, d, outcome = self.identify_and_dissect(data, sha256, plan)
        else:
            ident = known
            d = self._pick(plan, ident.mime, ident.magic, data)
            if d is not None and plan.may_dissect:
                ctx = dataclasses.replace(plan.ctx, mime=ident.mime, magic=ident.magic)
                outcome = self.run_dissector(d, data, sha256, ctx)
        safe = sanitize_filename(name, fallback="")
        path = f"{parent_path}/{segment}" if parent_path else segment
        art = Artifact(
            path=path, filename=name, safe_name=safe, declared_type=declared, magic=ident.magic,
            mime=ident.mime, extension=plan.extension, flags=name_flags(name, declared, ident.mime),
            size=len(data), md5=ident.md5, sha1=ident.sha1, sha256=sha256, ssdeep=ident.ssdeep,
            tlsh=ident.tlsh, entropy=ident.entropy, entropy_window=ident.entropy_window,
            entropy_windows=list(ident.entropy_windows), depth=depth, note=note, notes=list(ident.notes),
            isolation=self.isolation)
        if over:
            self._problem(art, LIMIT_HIT, f"size {len(data)} over the input limit {self.limits.max_input}")
            self._done(art, started)
            return art
        if d is None:
            self._done(art, started)
            return art
        art.dissector, art.dissector_version = d.name, d.version
        if outcome is None:
            self._problem(art, LIMIT_HIT, f"depth limit {self.limits.max_depth}: {d.name} not run")
            self._done(art, started)
            return art
        result, children, cached = outcome
        art.report, art.cached = result.report, cached
        if result.status != OK:
            self._problem(art, result.status, result.reason)
        for word in getattr(result.report, "password_candidates", None) or []:
            if word not in self.passwords:
                self.passwords.append(word)
        self._done(art, started)
        self._descend(art, children, depth)
        return art

    def _descend(self, art: Artifact, children: list[_Extracted], depth: int) -> None:
        used: dict[str, int] = {}
        for index, child in enumerate(children):
            if self.children >= self.limits.max_children:
                self._problem(art, LIMIT_HIT, f"children limit {self.limits.max_children}: "
                                              f"{len(children) - index} more not dissected")
                break
            if child.data is None:
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
            if self.store is not None and not child.stored:
                child.sha256, child.stored = self.store.put_bytes(data, durable=False).sha256, True
            child.data = None                  # the tree below holds the bytes as long as it needs them
            segment = child.segment or sanitize_filename(child.name, fallback=f"child {index + 1}")
            used[segment] = used.get(segment, 0) + 1
            if used[segment] > 1:
                segment = f"{segment}#{used[segment]}"
            art.children.append(self.node(data, name=child.name, declared=child.declared_type,
                                          segment=segment, parent_path=art.path, depth=depth + 1,
                                          note=child.note, sha256=child.sha256))

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
    ``cache``, reports are reused). ``as_message`` forces the message dissector on the root.
    Raises :class:`SandboxUnavailable` when ``limits.sandbox`` is ``require`` and the
    workers are not sandboxed; every node records the isolation its parsers ran in."""
    limits = limits or Limits()
    if limits.isolate and pool is None:
        pool = default_pool(limits.sandbox)
    if pool is not None and limits.sandbox == REQUIRE and not is_sandboxed(pool.isolation):
        raise SandboxUnavailable(f"the dissect sandbox is required but the workers run with {pool.isolation}")
    lanes = ThreadPoolExecutor(max_workers=pool.size if pool is not None else 2,
                               thread_name_prefix="dissect-fingerprint")
    try:
        run = _Run(limits=limits, store=store, cache=cache, on_node=on_node, pool=pool, lanes=lanes)
        started = time.perf_counter()
        sha256 = hashlib.sha256(data).hexdigest()
        root_segment = "message" if as_message else (sanitize_filename(filename, fallback="file"))
        root = run.node(data, name=filename, declared=declared_type, segment=root_segment, parent_path="",
                        depth=0, force="message" if as_message else None, sha256=sha256)
        return _finish(run, root, sha256, started)
    finally:
        # Fingerprints started for children the walk never reached (a limit, an error) are not waited for.
        lanes.shutdown(wait=True, cancel_futures=True)


def dissect_message(quarantine: Quarantine, sha256: str, *, limits: Limits | None = None,
                    on_node: NodeCallback | None = None, use_cache: bool = True,
                    pool: WorkerPool | None = None, cache: DissectCache | None = None,
                    deferred: list[CatalogEntry] | None = None) -> Dissection:
    """Dissect a quarantined message: children go to the quarantine's store, reports to the
    cache in ``state/dissect.sqlite`` and every extracted artifact into the catalog.

    ``cache``: an open cache to use (and leave open), for a caller dissecting many messages.
    With ``deferred``, the message's catalog entry is appended there instead of recorded, and
    the store is not synced: the caller syncs once for many messages and then records their
    entries (:meth:`DissectCache.record_messages`), so the catalog never names a child that a
    crash could lose, and a sync of the whole disk is not paid per message."""
    from workbench.workspace import Workspace

    workspace = Workspace(quarantine.root.parent)
    limits = limits or Limits()
    if limits.sandbox == "auto":
        limits = dataclasses.replace(limits, sandbox=workspace_mode(workspace))   # the workspace setting
    sha = quarantine.resolve(sha256)
    size = quarantine.store.size(sha)
    data = quarantine.store.read(sha, limit=limits.max_input + 1)
    from workbench.dissect.cache import DissectCache

    own = cache is None
    if cache is None:
        cache = DissectCache.open(workspace)
    try:
        result = dissect_bytes(data, "", store=quarantine.store, limits=limits, on_node=on_node,
                               cache=cache if use_cache else None, as_message=True, pool=pool)
        if size > len(data):
            result.root.notes.append(f"only the first {len(data)} of {size} bytes were read")
        rows = [(sha, n.path, n.sha256, n.filename or n.safe_name, n.mime, n.size, n.depth, n.status)
                for n in result.root.walk() if n is not result.root]
        if deferred is None:
            if use_cache and cache.is_recorded(sha, result.status, rows):
                # dissected before and nothing changed: its children are in the store, the
                # catalog and the index's searchable content were written then (an open in
                # the UI waited for a sync of the whole disk and three commits). Dissecting
                # again on purpose (use_cache=False) still writes them all.
                return result
            quarantine.store.sync()
            cache.record_message(sha, result.status, rows)
        else:
            deferred.append((sha, result.status, rows))
        from workbench.dissect.searchable import searchable_content
        from workbench.quarantine.object_store import ObjectNotFound

        def read(digest: str, limit: int) -> bytes:
            try:
                return quarantine.store.read(digest, limit=limit)
            except (OSError, ObjectNotFound):      # not kept (a limit): nothing to search in
                return b""

        content = searchable_content(result.root, read)
        quarantine.index.record_content(sha, body=content.body, names=content.names,
                                        strings=content.strings, hashes=content.hashes)
    finally:
        if own:
            cache.close()
    return result
