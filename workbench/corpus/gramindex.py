"""The n-gram prefilter index: which hashed byte 4-grams each stored file contains, bit-sliced for fast queries.

Every file gets a one-hash Bloom filter of its 4-grams (ASCII case folded, so
``nocase`` strings need nothing special): ``2**k`` bits, ``k`` chosen per file so
about a third of the bits are set (small files get small filters). Files of one
``k`` share *blocks* stored bucket-major, as BitFunnel's bit-sliced signatures
are: row ``r`` of a block is a bitmap over the block's files, so asking "which
files may contain gram g" reads one row of a few hundred bytes, and a rule's
requirement (``atoms.py``) is a handful of row reads and bitwise ands/ors.

Answers err one way only: a file is ruled out only if some required gram's bit
is clear, and a bit is never clear for a gram the file holds. Files the index
does not hold, or whose filter is nearly full ("saturated"), are always
candidates.

Layout of ``state/gram-index/`` (plain files: a query must load in a millisecond):

- ``FORMAT``: the parameters below; an index built with others is emptied and rebuilt;
- ``blocks/<id>.bits``: a 64-byte header (``WBGRAMS1``, k, width as little-endian
  uint32) then ``2**k`` rows of ``width`` bytes, bit ``7 - s % 8`` of byte ``s // 8``
  being slot ``s``;
- ``blocks/<id>.shas``: the block's files, one 114-byte line per slot
  (``<sha256> <size, 15 digits> <first 16 bytes, hex>``), appended; the first
  bytes answer header checks (``uint16(0) == 0x5A4D``) exactly;
- ``saturated``: files that are always candidates, same lines;
- ``lock``: writers hold it (flock) while they add files. Readers take no lock:
  a writer makes the bits durable (set in place, or a grown copy renamed over the
  block) before it appends the lines that name the new slots, bits of listed slots
  never change, and a torn last line is ignored (and cut by the next writer).
"""

from __future__ import annotations

import functools
import math
import mmap
import os
import shutil
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:     # numpy builds filters and writes blocks; queries read rows as Python ints
    from concurrent.futures import Future  # the thread pool (and logging) only for building

    import numpy as np

from workbench.corpus.atoms import (
    ANYTHING,
    HEAD_BYTES,
    NOTHING,
    AllOf,
    AnyOf,
    Contains,
    Formula,
    HeadIs,
    Nothing,
)
from workbench.durable import file_lock, fsync_path

INDEX_DIR = "gram-index"
GRAM = 4
MULTIPLIER = 0x9E3779B1          # Fibonacci hashing: the top k bits of gram * this
K_MIN, K_MAX = 10, 21            # filters of 128 bytes to 256 KiB per file
DENSITY = 0.30                   # fold the filter in half while it stays at most this full
LOAD = -math.log(1 - DENSITY)    # distinct grams per bit that fill a filter to DENSITY
SATURATED = 0.75                 # fuller than this at K_MAX: the file is always a candidate
MAX_FILE = 512 * 1024 * 1024     # larger files are not read: always candidates
MAX_GRAMS = 16                   # grams looked up per variant (evenly spread; fewer is only weaker)
BLOCK_BYTES = 8 * 1024 * 1024    # a block's size once full
MAX_SLOTS = 4096
PENDING_BYTES = 64 * 1024 * 1024  # filters kept in memory before they are written
_CHUNK = 1 << 22
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_PARAMS = f"v2 gram={GRAM} mult={MULTIPLIER:#x} fold=ascii k={K_MIN}-{K_MAX} d={DENSITY} s={SATURATED}\n"
_MAGIC = b"WBGRAMS1"
_HEADER = 64
_LINE = 114                       # "<sha256> <size:015d> <head:32 hex>\n"

# -- grams ----------------------------------------------------------------------------


def _gram_hashes(folded: bytes) -> np.ndarray:
    """Hashes of every 4-gram of already case-folded bytes (little-endian uint32 * MULTIPLIER)."""
    import numpy as np

    n = len(folded)
    parts = []
    for offset in range(GRAM):            # four aligned views: a strided uint32 view is 30x slower
        count = (n - offset) // GRAM
        if count > 0:
            parts.append(np.frombuffer(folded[offset:offset + GRAM * count], "<u4"))
    if not parts:
        return np.empty(0, np.uint32)
    return np.concatenate(parts) * np.uint32(MULTIPLIER)


def atom_hashes(atom: bytes) -> list[int]:
    """Hashes of up to MAX_GRAMS grams of ``atom``, spread over it (first and last included)."""
    folded = atom.translate(_FOLD)
    count = len(folded) - GRAM + 1
    if count <= 0:
        return []
    if count <= MAX_GRAMS:
        positions: Iterable[int] = range(count)
    else:
        positions = sorted({round(i * (count - 1) / (MAX_GRAMS - 1)) for i in range(MAX_GRAMS)})
    return [(int.from_bytes(folded[p:p + GRAM], "little") * MULTIPLIER) & 0xFFFFFFFF
            for p in positions]


@dataclass(frozen=True)
class FileFilter:
    """One file's filter: ``bits`` packed (``2**k`` bits), or None when saturated."""

    k: int
    bits: np.ndarray | None
    size: int
    head: bytes = b""             # the first HEAD_BYTES bytes


def _first_k(positions: int) -> int:
    if positions <= 0:
        return K_MIN
    return min(K_MAX, max(K_MIN, math.ceil(math.log2(positions / LOAD))))


def _finish(bits: np.ndarray, k: int, size: int, head: bytes) -> FileFilter:
    """Fold the bitmap while it stays sparse; pack it. Saturated filters keep no bits."""
    import numpy as np

    while k > K_MIN:
        half = bits[0::2] | bits[1::2]        # row at k-1 is the row at k shifted right once
        if np.count_nonzero(half) > DENSITY * half.size:
            break
        bits, k = half, k - 1
    if np.count_nonzero(bits) > SATURATED * bits.size:
        return FileFilter(k, None, size, head)
    return FileFilter(k, np.packbits(bits), size, head)


def filter_bytes(data: bytes) -> FileFilter:
    """The filter of a file held in memory."""
    import numpy as np

    k = _first_k(len(data) - GRAM + 1)
    bits = np.zeros(1 << k, np.bool_)
    shift = np.uint32(32 - k)
    for start in range(0, max(1, len(data) - GRAM + 1), _CHUNK):
        chunk = data[start:start + _CHUNK + GRAM - 1].translate(_FOLD)
        bits[_gram_hashes(chunk) >> shift] = True
    return _finish(bits, k, len(data), data[:HEAD_BYTES])


def filter_file(path: Path | str) -> FileFilter:
    """The filter of a file on disk, read in chunks; files over MAX_FILE are saturated unread."""
    import numpy as np

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > MAX_FILE:
            return FileFilter(K_MAX, None, size, fh.read(HEAD_BYTES))
        k = _first_k(size - GRAM + 1)
        bits = np.zeros(1 << k, np.bool_)
        shift = np.uint32(32 - k)
        head = tail = b""
        total = 0
        while chunk := fh.read(_CHUNK):
            if not total:
                head = chunk[:HEAD_BYTES]
            total += len(chunk)
            data = (tail + chunk).translate(_FOLD)
            bits[_gram_hashes(data) >> shift] = True
            tail = data[-(GRAM - 1):]
    return _finish(bits, k, total, head)


# -- the index ------------------------------------------------------------------------


@dataclass
class IndexStats:
    """What ``corpus index`` reports: the index's size next to what it covers."""

    files: int = 0                # contents in the index
    saturated: int = 0            # of which always candidates (too large or too varied)
    bytes_covered: int = 0        # their total size
    index_bytes: int = 0          # block files on disk
    blocks: int = 0
    by_k: dict[int, int] = field(default_factory=dict)    # filter size class (2**k bits) -> files


@dataclass
class BuildReport:
    """What one indexing pass did."""

    indexed: int = 0
    saturated: int = 0
    bytes: int = 0
    errors: dict[str, str] = field(default_factory=dict)   # sha256 -> why it could not be read
    seconds: float = 0.0


def slots_for(k: int) -> int:
    """Files per block of class ``k``: blocks stay near BLOCK_BYTES, 8 to MAX_SLOTS files."""
    return max(8, min(MAX_SLOTS, (BLOCK_BYTES * 8 >> k) // 8 * 8))


def _round8(n: int) -> int:
    return -(-n // 8) * 8


@dataclass
class _Block:
    id: int
    k: int
    width: int                   # bytes per row: capacity / 8
    shas: list[str]
    lines: bytes                 # the slot lines they came from (sizes and first bytes)

    @property
    def sizes(self) -> list[int]:
        return [int(self.lines[i + 65:i + 80]) for i in range(0, len(self.lines), _LINE)]


def _read_lines(path: Path) -> tuple[list[str], list[int]]:
    """sha256s and sizes of a ``.shas``/``saturated`` file; a torn last line is left out."""
    lines = _whole_lines(path)
    return _shas(lines), [int(lines[i + 65:i + 80]) for i in range(0, len(lines), _LINE)]


def _whole_lines(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return b""
    return data[:len(data) - len(data) % _LINE]


def _shas(lines: bytes) -> list[str]:
    text = lines.decode("ascii", "replace")
    return [text[i:i + 64] for i in range(0, len(text), _LINE)]


def _line(sha: str, filt: FileFilter) -> bytes:
    head = filt.head[:HEAD_BYTES].ljust(HEAD_BYTES, b"\0").hex()
    return f"{sha} {min(filt.size, 10**15 - 1):015d} {head}\n".encode("ascii")


def _read_header(path: Path) -> tuple[int, int] | None:
    """(k, width) of a block file, or None when it is not a whole, valid one."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_HEADER)
            size = os.fstat(fh.fileno()).st_size
    except OSError:
        return None
    if len(head) < _HEADER or head[:8] != _MAGIC:
        return None
    k, width = struct.unpack_from("<II", head, 8)
    if not K_MIN <= k <= K_MAX or size != _HEADER + (1 << k) * width:
        return None
    return k, width


def _map(path: Path, k: int, width: int, mode: Literal["r", "r+"]) -> np.ndarray:
    """The rows of a block file, memory-mapped (np.memmap costs 80 us a call; this a tenth)."""
    import numpy as np

    with open(path, "r+b" if mode == "r+" else "rb") as fh:
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_WRITE if mode == "r+"
                           else mmap.ACCESS_READ)
    return np.frombuffer(mapped, np.uint8, count=(1 << k) * width,
                         offset=_HEADER).reshape(1 << k, width)


def _flush(rows: np.ndarray) -> None:
    """msync a writable map from :func:`_map` (then fsync the file: both, to be sure)."""
    base = rows.base
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    if isinstance(base, mmap.mmap):
        base.flush()


class GramIndex:
    """``state/gram-index/``: the filters of stored contents, by sha256."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.blocks_dir = self.folder / "blocks"
        self._write_lock = threading.Lock()
        self._checked = False

    def close(self) -> None:
        """Nothing stays open between calls; kept so the index reads like the other stores."""

    def __enter__(self) -> GramIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> GramIndex:
        """Create the folder, or empty an index built with other parameters. OSError if impossible."""
        if self._checked:
            return self
        format_file = self.folder / "FORMAT"
        try:
            current = format_file.read_text()
        except FileNotFoundError:
            current = ""
        if current != _PARAMS:
            with self._locked():
                try:
                    current = format_file.read_text()
                except FileNotFoundError:
                    current = ""
                if current != _PARAMS:           # not done meanwhile by another process
                    self._wipe()
        self._checked = True
        return self

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time, across threads and processes (never nested)."""
        with self._write_lock, file_lock(self.folder / "lock"):
            yield

    def _wipe(self) -> None:
        """Everything but the lock goes (older layouts included)."""
        for entry in os.scandir(self.folder):
            if entry.name == "lock":
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        self.blocks_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / "FORMAT.tmp"
        tmp.write_text(_PARAMS)
        os.replace(tmp, self.folder / "FORMAT")

    def clear(self) -> None:
        """Forget every file (``corpus index --rebuild``)."""
        self.open()
        with self._locked():
            self._wipe()

    def _block_path(self, block: int, suffix: str = ".bits") -> Path:
        return self.blocks_dir / f"{block:06d}{suffix}"

    def _blocks(self, *, headers: bool) -> list[_Block]:
        """Every block with its listed files (and, with ``headers``, its k and width)."""
        out = []
        try:
            names = sorted(e.name for e in os.scandir(self.blocks_dir) if e.name.endswith(".shas"))
        except FileNotFoundError:
            return []
        for name in names:
            bid = int(name.split(".")[0])
            lines = _whole_lines(self.blocks_dir / name)
            k = width = 0
            if headers:
                head = _read_header(self._block_path(bid))
                if head is not None:
                    k, width = head
            out.append(_Block(bid, k, width, _shas(lines), lines))
        return out

    # -- reading ----------------------------------------------------------------------

    def reader(self) -> IndexReader:
        """A view for queries of the files listed now."""
        self.open()
        saturated = set(_read_lines(self.folder / "saturated")[0])
        blocks = {b.id: (b.shas, b.lines) for b in self._blocks(headers=False)}
        return IndexReader(self, blocks, saturated)

    def indexed(self) -> set[str]:
        """Every sha256 the index holds (saturated ones included)."""
        return set(self.reader().where)

    def stats(self) -> IndexStats:
        self.open()
        out = IndexStats()
        shas, sizes = _read_lines(self.folder / "saturated")
        out.saturated = len(shas)
        out.files += len(shas)
        out.bytes_covered += sum(sizes)
        for block in self._blocks(headers=True):
            out.blocks += 1
            out.files += len(block.shas)
            out.bytes_covered += sum(block.sizes)
            out.by_k[block.k] = out.by_k.get(block.k, 0) + len(block.shas)
            try:
                out.index_bytes += self._block_path(block.id).stat().st_size
            except OSError:
                pass
        return out

    # -- writing ----------------------------------------------------------------------

    def writer(self, threads: int = 0) -> IndexWriter:
        return IndexWriter(self, threads)

    def build(self, files: Sequence[tuple[str, Path | str]], *, threads: int = 1,
              cancel: threading.Event | None = None,
              progress: Callable[[int, int], None] | None = None) -> BuildReport:
        """Index the given (sha256, path) files the index lacks; numpy releases the GIL, so threads help."""
        started = time.monotonic()
        known = self.indexed()
        todo = list(dict((sha, p) for sha, p in files if sha not in known).items())
        report = BuildReport()
        from concurrent.futures import ThreadPoolExecutor  # and logging: not for a query

        with self.writer() as writer, ThreadPoolExecutor(max(1, threads)) as pool:
            def one(item: tuple[str, Path | str]) -> tuple[str, FileFilter | None, str]:
                if cancel is not None and cancel.is_set():
                    return item[0], None, "cancelled"
                try:
                    return item[0], filter_file(item[1]), ""
                except OSError as exc:
                    return item[0], None, exc.strerror or str(exc)

            for done, (sha, filt, problem) in enumerate(pool.map(one, todo), 1):
                if filt is None:
                    if problem != "cancelled":
                        report.errors[sha] = problem
                else:
                    writer.add(sha, filt)
                    report.indexed += 1
                    report.saturated += filt.bits is None
                    report.bytes += filt.size
                if progress is not None:
                    progress(done, len(todo))
        report.seconds = round(time.monotonic() - started, 3)
        return report

    def _commit(self, pending: list[tuple[str, FileFilter]]) -> int:
        """Give each new filter a slot, write the bits, then list the files. Returns files added."""
        self.open()
        with self._locked():
            blocks = self._blocks(headers=True)
            saturated_file = self.folder / "saturated"
            present = set(_read_lines(saturated_file)[0])
            for block in blocks:
                present.update(block.shas)
            fresh: dict[str, FileFilter] = {}
            for sha, filt in pending:
                if sha not in present:
                    fresh.setdefault(sha, filt)
            saturated = [(sha, f) for sha, f in fresh.items() if f.bits is None]
            by_k: dict[int, list[tuple[str, FileFilter]]] = {}
            for sha, filt in fresh.items():
                if filt.bits is not None:
                    by_k.setdefault(filt.k, []).append((sha, filt))
            next_id = max((b.id for b in blocks), default=0) + 1
            for k, members in sorted(by_k.items()):
                limit = slots_for(k)
                open_block = next((b for b in reversed(blocks) if b.k == k and b.width
                                   and len(b.shas) < limit), None)
                while members:
                    if open_block is None:
                        bid, width, used = next_id, 0, 0
                        next_id += 1
                    else:
                        bid, width, used = open_block.id, open_block.width, len(open_block.shas)
                        open_block = None
                    take = members[:limit - used]
                    members = members[len(take):]
                    self._write_block(bid, k, width, used, [f for _, f in take])
                    _append(self._block_path(bid, ".shas"), b"".join(
                        _line(sha, f) for sha, f in take))
            if saturated:
                _append(saturated_file, b"".join(_line(sha, f) for sha, f in saturated))
            fsync_path(self.blocks_dir)
            return len(fresh)

    def _write_block(self, bid: int, k: int, width: int, used: int,
                     filters: list[FileFilter]) -> None:
        """Set the bits of ``filters`` in slots ``used``... of block ``bid``, durably.

        A block that must grow is copied into a new file renamed over the old one;
        otherwise the new slots' columns are written in place (bytes shared with
        listed slots are rewritten with the bits they had).
        """
        path = self._block_path(bid)
        need = used + len(filters)
        if need > width * 8:        # grow by a quarter at least, so many small adds copy little
            new_width = min(slots_for(k), _round8(max(need, width * 8 + width * 2))) // 8
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<II", k, new_width).ljust(_HEADER - len(_MAGIC), b"\0"))
                fh.truncate(_HEADER + (1 << k) * new_width)
            grown = _map(tmp, k, new_width, "r+")
            if width:
                grown[:, :width] = _map(path, k, width, "r")
            _set_columns(grown, used, filters)
            _flush(grown)
            del grown
            fsync_path(tmp)
            os.replace(tmp, path)
        else:
            block = _map(path, k, width, "r+")
            _set_columns(block, used, filters)
            _flush(block)
            del block
            fsync_path(path)


def _append(path: Path, data: bytes) -> None:
    """Append whole lines durably, first cutting a torn last line a crash may have left."""
    with open(path, "ab") as fh:
        size = fh.tell()
        if size % _LINE:
            fh.truncate(size - size % _LINE)
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@functools.cache
def _reverse_bits() -> np.ndarray:
    import numpy as np

    return np.array([int(f"{b:08b}"[::-1], 2) for b in range(256)], np.uint8)


def _set_columns(block: np.ndarray, first: int, filters: list[FileFilter]) -> None:
    """Write filters as columns ``first``, ``first+1``... of a bucket-major block.

    Eight filters make one byte column: byte ``b`` of each (rows 8b..8b+7) forms an
    8x8 bit matrix in a uint64, transposed with three shift-and-mask steps
    (Hacker's Delight 7-3) and bit-reversed into packbits' order; a bool staging
    matrix did the same 4x slower. Slots after the last filter in its byte are cleared.
    """
    import numpy as np

    rows = block.shape[0]
    per_row = rows // 8
    start = first - first % 8
    stop = first + len(filters)
    chunk = max(8, min(256, (1 << 25) // per_row // 8 * 8))     # files per pass: <= 32 MiB
    for lo in range(start, stop, chunk):
        hi = min(lo + chunk, stop)
        hi8 = _round8(hi)
        count = hi8 - lo
        packed = np.zeros((count, per_row), np.uint8)
        for slot in range(max(lo, first), hi):
            bits = filters[slot - first].bits
            assert bits is not None
            packed[slot - lo] = bits
        x = np.ascontiguousarray(packed.reshape(count // 8, 8, per_row).transpose(0, 2, 1)
                                 ).view("<u8")[..., 0]
        for shift, mask in ((7, 0x00AA00AA00AA00AA), (14, 0x0000CCCC0000CCCC),
                            (28, 0x00000000F0F0F0F0)):
            t = (x ^ (x >> np.uint64(shift))) & np.uint64(mask)
            x = x ^ t ^ (t << np.uint64(shift))
        columns = _reverse_bits()[x.byteswap().view(np.uint8)].reshape(count // 8, rows)
        keep = np.zeros(count, np.bool_)
        keep[:max(0, first - lo)] = True                          # listed slots before ``first``
        view = block[:, lo // 8:hi8 // 8]
        view &= np.packbits(keep)
        view |= columns.T



class IndexWriter:
    """Collects filters and writes them in batches.

    ``corpus add`` hands it the bytes it already read; with ``threads`` the filters
    are computed on worker threads (numpy releases the GIL) while the caller goes
    on hashing and storing the next files. Errors surface at the latest on flush.
    """

    def __init__(self, index: GramIndex, threads: int = 0):
        self.index = index
        self.pending: list[tuple[str, FileFilter]] = []
        self.pending_bytes = 0
        self.added = 0
        self._known: set[str] | None = None
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(threads) if threads > 0 else None
        self._running: deque[tuple[str, Future[FileFilter]]] = deque()
        self._limit = 4 * max(1, threads)

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the worker threads (filters not yet flushed are dropped)."""
        if self._pool is not None:
            for _, future in self._running:
                future.cancel()
            self._running.clear()
            self._pool.shutdown(wait=True)
            self._pool = None

    def known(self, sha: str) -> bool:
        if self._known is None:
            self._known = self.index.indexed()
        return sha in self._known

    def add_bytes(self, sha: str, data: bytes) -> bool:
        """Index ``data`` under ``sha`` unless it is there already; True when it will be."""
        if self.known(sha):
            return False
        assert self._known is not None
        self._known.add(sha)
        if self._pool is None:
            self.add(sha, filter_bytes(data))
        else:
            self._running.append((sha, self._pool.submit(filter_bytes, data)))
            while len(self._running) > self._limit or (self._running and self._running[0][1].done()):
                done_sha, future = self._running.popleft()
                self.add(done_sha, future.result())
        return True

    def add_file(self, sha: str, path: Path | str) -> bool:
        if self.known(sha):
            return False
        self.add(sha, filter_file(path))
        return True

    def add(self, sha: str, filt: FileFilter) -> None:
        self.pending.append((sha, filt))
        if self._known is not None:
            self._known.add(sha)
        self.pending_bytes += 0 if filt.bits is None else filt.bits.nbytes
        if self.pending_bytes >= PENDING_BYTES:
            self.flush()

    def flush(self) -> None:
        while self._running:
            sha, future = self._running.popleft()
            self.add(sha, future.result())
        if self.pending:
            self.added += self.index._commit(self.pending)
        self.pending = []
        self.pending_bytes = 0


# -- queries ----------------------------------------------------------------------------


@dataclass
class Selection:
    """Files to query, grouped by block: ``always`` are candidates whatever is asked."""

    always: list[str]
    blocks: list[tuple[int, list[int], list[str]]]

    def every(self) -> set[str]:
        return {*self.always, *(sha for _, _, names in self.blocks for sha in names)}


# A query's bitmaps are Python ints over a block's slots, slot ``s`` being bit
# ``width * 8 - 1 - s`` (the rows' byte order read big-endian): a query reads a few
# rows of a few hundred bytes, where Python's integers do the ands and ors in C,
# and needs no numpy (importing it cost a one-rule re-test more than its scan).


class _BlockView:
    """One block as a query sees it: its rows, and (read when first asked) its files' first bytes."""

    def __init__(self, k: int, width: int, mapped: mmap.mmap, lines: bytes):
        self.k = k
        self.width = width
        self.bits = width * 8
        self.mapped = mapped
        self.lines = lines
        self._rows: dict[int, int] = {}
        self._heads: list[tuple[int, bytes]] | None = None

    def row(self, r: int) -> int:
        got = self._rows.get(r)
        if got is None:
            at = _HEADER + r * self.width
            got = self._rows[r] = int.from_bytes(self.mapped[at:at + self.width], "big")
        return got

    def head_is(self, f: HeadIs, listed: int) -> int | None:
        if self._heads is None:
            self._heads = [(int(self.lines[i + 65:i + 80]), bytes.fromhex(self.lines[i + 81:i + 113].decode()))
                           for i in range(0, len(self.lines), _LINE)]
        if len(self._heads) < listed:
            return None                         # the slot list is shorter than the query's view
        end = f.offset + len(f.data)
        out = 0
        for slot, (size, head) in enumerate(self._heads[:self.bits]):
            if size >= end and head[f.offset:end] == f.data:
                out |= 1 << (self.bits - 1 - slot)
        return out


class IndexReader:
    """Evaluates requirements over the files listed when it was made."""

    def __init__(self, index: GramIndex, blocks: dict[int, tuple[list[str], bytes]],
                 saturated: set[str]):
        self.index = index
        self.block_shas = {bid: shas for bid, (shas, _) in blocks.items()}
        self.lines = {bid: lines for bid, (_, lines) in blocks.items()}
        self.saturated = saturated
        self._where: dict[str, tuple[int, int]] | None = None
        self._blocks: dict[int, _BlockView | None] = {}
        self._hashes: dict[int, tuple[Contains, list[list[int]] | None]] = {}

    @property
    def where(self) -> dict[str, tuple[int, int]]:
        """sha256 -> (block, slot); (-1, -1) for saturated files."""
        if self._where is None:
            self._where = dict.fromkeys(self.saturated, (-1, -1))
            for bid, shas in self.block_shas.items():
                self._where.update(zip(shas, ((bid, slot) for slot in range(len(shas))),
                                       strict=True))
        return self._where

    def __contains__(self, sha: str) -> bool:
        return sha in self.where

    def _block(self, bid: int) -> _BlockView | None:
        if bid not in self._blocks:
            path = self.index._block_path(bid)
            head = _read_header(path)
            try:
                if head is None:
                    self._blocks[bid] = None
                else:
                    with open(path, "rb") as fh:
                        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
                    if len(mapped) < _HEADER + (1 << head[0]) * head[1]:
                        raise ValueError("block shorter than its header says")
                    self._blocks[bid] = _BlockView(head[0], head[1], mapped, self.lines.get(bid, b""))
            except (OSError, ValueError):
                self._blocks[bid] = None      # unreadable: its files stay candidates
        return self._blocks[bid]

    def select(self, shas: Iterable[str]) -> Selection:
        """Group files by block once, for several queries over the same files.

        ``always`` holds the files the index lacks and the saturated ones.
        """
        wanted = shas if isinstance(shas, (set, frozenset)) else set(shas)
        found: set[str] = set()
        blocks = []
        for bid, names in self.block_shas.items():
            if wanted.issuperset(names):          # the usual case, a set operation in C
                slots, picked = list(range(len(names))), names
            else:
                slots = [slot for slot, sha in enumerate(names) if sha in wanted]
                picked = [names[slot] for slot in slots]
            if slots:
                found.update(picked)
                blocks.append((bid, slots, picked))
        return Selection(list(wanted - found), blocks)

    def candidates(self, formula: Formula, shas: Iterable[str] | Selection) -> set[str]:
        """The files among ``shas`` that may satisfy ``formula`` (never fewer than could)."""
        sel = shas if isinstance(shas, Selection) else self.select(shas)
        if formula is ANYTHING:
            return sel.every()
        if isinstance(formula, Nothing):
            return set()
        out = set(sel.always)
        for bid, slots, names in sel.blocks:
            block = self._block(bid)
            hit = None if block is None else self._eval(formula, block, max(slots) + 1 if slots else 0)
            if block is None or hit is None:
                out.update(names)
                continue
            top = block.bits - 1            # slots past the block's width: candidates
            out.update(name for slot, name in zip(slots, names, strict=True)
                       if slot > top or hit >> (top - slot) & 1)
        return out

    def _eval(self, f: Formula, block: _BlockView, listed: int) -> int | None:
        """A bitmap over the block's slots; None means every slot.

        ``listed`` is how many slots the query looks at (header checks read that many
        files' first bytes).
        """
        if isinstance(f, Contains):
            variants = self._variant_hashes(f)
            if variants is None:
                return None
            shift = 32 - block.k
            row = block.row
            out = 0
            for hashes in variants:           # any variant, all of its grams
                grams = row(hashes[0] >> shift)
                for h in hashes[1:]:
                    if not grams:
                        break
                    grams &= row(h >> shift)
                out |= grams
            return out
        if isinstance(f, HeadIs):
            return block.head_is(f, listed)
        if isinstance(f, AllOf):
            acc: int | None = None
            for part in f.parts:
                got = self._eval(part, block, listed)
                if got is not None:
                    acc = got if acc is None else acc & got
                    if not acc:
                        break
            return acc
        if isinstance(f, AnyOf):
            any_of = 0
            for part in f.parts:
                got = self._eval(part, block, listed)
                if got is None:
                    return None
                any_of |= got
            return any_of
        if f is NOTHING or isinstance(f, Nothing):
            return 0
        return None

    def _variant_hashes(self, f: Contains) -> list[list[int]] | None:
        """Each variant's gram hashes; None when some variant has no gram (then the string may
        be anywhere)."""
        got = self._hashes.get(id(f))
        if got is None or got[0] is not f:
            lists = [sorted({h for atom in variant for h in atom_hashes(atom)}) for variant in f.variants]
            got = (f, lists if lists and all(lists) else None)
            self._hashes[id(f)] = got       # the formula is kept with it, so its id stays its own
        return got[1]
