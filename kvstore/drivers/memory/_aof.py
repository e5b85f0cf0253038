"""The append-only file: the memory driver's writes on disk, replayed on start.

In the spirit of Redis's AOF: every acknowledged write is appended to a file, the file is
replayed when the driver opens it, and a rewrite compacts it into the commands that rebuild
the current keyspace.

Unit of durability
    One record holds every write one batch or one script applied (what the driver's lock
    covers, expired keys' ``DEL`` included), so a crash never leaves half a batch on disk,
    and a batch is acknowledged (``execute``/``run`` return) only once its record has been
    written, and, under ``fsync="always"``, flushed to the disk.

fsync policies
    ``always``: ``fdatasync`` before acknowledging: an acknowledged write survives a power
    cut. ``everysec`` (default): a background thread syncs about once a second: a power cut
    loses at most about a second of writes. ``no``: the OS syncs when it likes. Under every
    policy the record is written (``write(2)``) before acknowledging, so a process killed
    even by SIGKILL loses no acknowledged write.

File format, version 1 (all integers unsigned little-endian)
    =========  =====  ==============================================================
    offset     size   content
    =========  =====  ==============================================================
    0          8      magic ``89 4B 56 41 4F 46 0D 0A`` (``\\x89KVAOF\\r\\n``)
    8          4      format version: 1
    12         4      CRC-32 of bytes 0-11
    16         ...    records, back to back, to the end of the file
    =========  =====  ==============================================================

    Each record:

    =========  =====  ==============================================================
    0          4      payload length ``n``
    4          4      CRC-32 of the payload
    8          4      CRC-32 of bytes 0-7 of the record (so a damaged length is caught)
    12         n      payload
    =========  =====  ==============================================================

    The payload is a MessagePack array ``[now, commands]``: ``now`` is the batch's clock
    reading (milliseconds since the epoch, an integer), ``commands`` an array of commands,
    each an array of binary strings: the upper-case command name, then its arguments.
    Commands are recorded as ``._journal`` rewrites them (relative expiries made absolute,
    generated stream ids spelled out); replay runs them through the driver's own command
    handlers with the clock at ``now``, so they do exactly what they did then. A rewritten
    file holds the same kind of records: ``SET``, ``HSET``, ``SADD``, ``ZADD``, ``XADD``
    (with explicit ids; an added-then-deleted entry restores a stream's last id) and
    ``PEXPIREAT``, with ``now`` 0, then the writes made while it was written.

    Readers refuse any other magic, and any version other than theirs, with a clear error;
    a format change bumps the version.

Recovery rules on opening
    * A last record cut short (fewer than 12 bytes left, a length running past the end of
      the file, or a bad payload checksum on the record that ends the file) is what an
      interrupted write leaves: it is dropped with a :class:`RuntimeWarning` naming its
      offset, and the file is truncated to the last good record before anything is
      appended. A record header that fails its checksum with only zero bytes after it
      (space the file system allocated but never filled) is dropped the same way.
    * Any other bad record (a bad checksum or undecodable payload with more data after it)
      raises :class:`~kvstore.errors.PersistenceError` naming its offset: nothing is skipped
      silently. Nothing is loaded from such a file.

Locking
    The driver holds an exclusive ``flock`` on the file while open; a second driver, in this
    process or another, gets :class:`~kvstore.errors.PersistenceError` at once. A rewrite
    locks the new file before renaming it over the old one, and an opener checks that the
    file it locked is still the one at the path, so the lock survives rewrites.

Rewrite
    ``await driver.rewrite()``, or automatically when the file has grown past
    ``auto_rewrite_ratio`` times its size after the last rewrite (or opening) and past
    ``auto_rewrite_min_size`` bytes. It copies the keyspace a chunk at a time (see
    ``._rewrite``), each chunk under the driver's lock, and writes the new file (named
    ``<file>.rewrite``) outside it; writes made meanwhile go to the old file as usual and
    are also kept in a buffer appended to the new file, which is then synced and renamed
    over the old one under the lock. A crash at any point leaves a complete old or new file.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import struct
import threading
import warnings
import weakref
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, NoReturn, TypeAlias, get_args
from urllib.parse import parse_qsl

import msgspec

from kvstore.drivers.memory._errors import ReplyError
from kvstore.drivers.memory._rewrite import Capture, rebuild
from kvstore.drivers.memory._table import TABLE
from kvstore.errors import PersistenceError, UnsupportedError

if TYPE_CHECKING:
    from types import TracebackType

    from kvstore.drivers.memory._keyspace import Keyspace

__all__ = ["FORMAT_VERSION", "AppendOnlyFile", "FsyncPolicy", "parse_url"]

FsyncPolicy: TypeAlias = Literal["always", "everysec", "no"]

#: The version of the file format this module reads and writes.
FORMAT_VERSION: Final = 1
MAGIC: Final = b"\x89KVAOF\r\n"

_RECORD = struct.Struct("<III")  # length, CRC-32 of the payload, CRC-32 of the 8 bytes before
_U32 = struct.Struct("<I")
_MAX_PAYLOAD = 0xFFFF_FFFF

_log = logging.getLogger(__name__)
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(tuple[int, list[list[bytes]]])
# fdatasync skips metadata that reading the data back does not need (Linux); elsewhere fsync.
_sync = getattr(os, "fdatasync", os.fsync)

_REWRITE_BUDGET = 5_000  # elements copied per hold of the lock during a rewrite (~1.5 ms)
_RECORD_TARGET = 1 << 20  # bytes of commands per record in a rewritten file
_SMALL_BUFFER = 64  # buffered records left for the final, locked, step of a rewrite
_FLUSH_INTERVAL = 1.0  # seconds, for fsync="everysec"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _header() -> bytes:
    head = MAGIC + _U32.pack(FORMAT_VERSION)
    return head + _U32.pack(zlib.crc32(head))


HEADER: Final = _header()


def frame(now: int, commands: list[list[bytes]]) -> bytes:
    """One record: the header of :data:`_RECORD` and the payload."""
    payload = _encoder.encode((now, commands))
    if len(payload) > _MAX_PAYLOAD:
        raise ValueError(f"a batch of {len(payload)} bytes is too large for one record")
    lengths = _U32.pack(len(payload)) + _U32.pack(zlib.crc32(payload))
    return lengths + _U32.pack(zlib.crc32(lengths)) + payload


def parse_url(url: str) -> tuple[str | None, dict[str, Any]]:
    """Split a ``memory://`` URL into its file path (None: no file) and its options.

    Everything after ``memory://`` up to a ``?`` is the path, taken literally: ``memory:///
    abs/data.aof`` is absolute, ``memory://data/kv.aof`` relative to the working directory.
    The query may set ``fsync``.

    Raises:
        ValueError: not a memory URL, an unknown option, or options without a path.
    """
    scheme, sep, rest = url.partition("://")
    if scheme.lower() != "memory" or not sep:
        raise ValueError(f"not a memory URL: {url!r}")
    location, _, query = rest.partition("?")
    options: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    for name in options.keys() - {"fsync"}:
        raise ValueError(f"unknown option {name!r} in {url!r}: memory URLs take fsync only")
    path = location if location.strip("/") else None
    if path is None and options:
        raise ValueError(f"{url!r} names no file, so it takes no options")
    if "fsync" in options:
        check_policy(options["fsync"])
    return path, options


def check_policy(fsync: str) -> FsyncPolicy:
    """``fsync`` if it names a policy.

    Raises:
        ValueError: it does not.
    """
    if fsync not in get_args(FsyncPolicy):
        raise ValueError(f"fsync must be 'always', 'everysec' or 'no', not {fsync!r}")
    return fsync  # type: ignore[return-value]  # checked just above


class AppendOnlyFile:
    """The file behind one memory driver; also the driver's lock.

    Entering it takes the driver's lock and starts a batch; the driver's journal collects
    the batch's writes (:meth:`journal`); leaving it writes them as one record (and syncs
    under ``always``) before the lock is released, so a batch returns to its caller only
    once it is in the file. Opening replays the file into ``keyspace``.

    Args:
        path: The file; created, with its directories, if missing.
        keyspace: The driver's (empty) keyspace.
        fsync: ``"always"``, ``"everysec"`` or ``"no"`` (see the module docstring).
        auto_rewrite_min_size: No automatic rewrite below this many bytes; None: never.
        auto_rewrite_ratio: Rewrite once the file is this many times its size after the
            last rewrite (or opening).

    Raises:
        PersistenceError: the file is locked, not an append-only file of this version, or
            corrupt (see the module docstring), or it or its directory cannot be created,
            opened or read (the ``OSError`` is its ``__cause__``).
    """

    __slots__ = (
        "__weakref__",
        "_auto",
        "_base_size",
        "_closed",
        "_dirty",
        "_failed",
        "_fd",
        "_flusher",
        "_keyspace",
        "_lock",
        "_min_size",
        "_pending",
        "_policy",
        "_ratio",
        "_rewrite_lock",
        "_rewriting",
        "_size",
        "_stop",
        "path",
    )

    def __init__(
        self,
        path: str | os.PathLike[str],
        keyspace: Keyspace,
        *,
        fsync: FsyncPolicy = "everysec",
        auto_rewrite_min_size: int | None = 16 << 20,
        auto_rewrite_ratio: float = 2.0,
    ) -> None:
        self._policy = check_policy(fsync)
        self.path = Path(path).absolute()
        self._keyspace = keyspace
        self._lock = threading.Lock()
        self._pending: list[list[bytes]] = []
        self._min_size = auto_rewrite_min_size
        self._ratio = auto_rewrite_ratio
        self._rewriting: Capture | None = None
        self._rewrite_lock = threading.Lock()  # one rewrite at a time
        self._auto: threading.Thread | None = None
        self._closed = True  # until the file is open and loaded
        self._failed: BaseException | None = None
        self._dirty = False
        self._stop = threading.Event()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot("create its directory", exc) from exc
        try:
            self._fd = _open_locked(self.path)
        except OSError as exc:
            raise self._cannot("open it", exc) from exc
        try:
            self._size = self._base_size = self._load()
            self._remove(self._temp_path())  # left behind by a rewrite that crashed
        except OSError as exc:
            os.close(self._fd)
            raise self._cannot("load it", exc) from exc
        except BaseException:
            os.close(self._fd)
            raise
        self._closed = False
        self._flusher: threading.Thread | None = None
        if self._policy == "everysec":
            self._flusher = threading.Thread(
                target=_flush_every_second,
                args=(weakref.ref(self), self._stop),
                name=f"kvstore-aof-fsync {self.path}",
                daemon=True,
            )
            self._flusher.start()

    # --- the driver's lock --------------------------------------------------------------

    def __enter__(self) -> None:
        self._lock.acquire()
        if self._closed or self._failed is not None:
            self._lock.release()
            raise self._unusable()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever the batch raised, the writes it applied are in memory: record them.
        try:
            if self._pending:
                self._commit()
        finally:
            self._lock.release()

    def journal(self, words: list[bytes]) -> None:
        """Take one applied write of the running batch (the driver's journal)."""
        self._pending.append(words)

    def _commit(self) -> None:
        commands, self._pending = self._pending, []
        now = self._keyspace.now
        try:
            record = frame(now, commands)
            _write_all(self._fd, record)
            if self._policy == "always":
                _sync(self._fd)
        except (OSError, ValueError) as exc:
            self._fail(exc)
        self._size += len(record)
        self._dirty = True
        if self._rewriting is not None:
            self._rewriting.record(now, commands)
        elif self._should_rewrite():
            self._auto = threading.Thread(
                target=self._auto_rewrite, name=f"kvstore-aof-rewrite {self.path}", daemon=True
            )
            self._auto.start()

    def _fail(self, exc: BaseException) -> NoReturn:
        """A record could not be written: memory and file now differ, so refuse all else."""
        self._failed = exc
        with contextlib.suppress(OSError):  # drop whatever part of the record got written
            os.ftruncate(self._fd, self._size)
        raise PersistenceError(
            f"could not append a record ({exc}); the batch was applied in memory only and "
            "this driver now refuses commands: reopen the file to get back what it holds",
            path=str(self.path),
        ) from exc

    def _cannot(self, action: str, exc: OSError) -> PersistenceError:
        # A user's mistake as often as not (a directory, a path under a file, no permission):
        # say what failed on which path, as an error of kvstore's, not a bare OSError.
        where = f" ({exc.filename})" if exc.filename and exc.filename != str(self.path) else ""
        return PersistenceError(
            f"cannot {action}: {exc.strerror or exc}{where}", path=str(self.path)
        )

    def _unusable(self) -> PersistenceError:
        if self._closed:
            return PersistenceError("the driver is closed", path=str(self.path))
        return PersistenceError(
            f"an earlier write to the file failed ({self._failed}); reopen it",
            path=str(self.path),
        )

    # --- opening and replay -------------------------------------------------------------

    def _load(self) -> int:
        """Check the header and replay every record; returns the end of the last good one."""
        fd, size = self._fd, os.fstat(self._fd).st_size
        if size == 0:
            self._write_header()
            return len(HEADER)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as view:
            head = bytes(view[: len(HEADER)])
            if head != HEADER:
                if size < len(HEADER) and HEADER.startswith(head):
                    # A crash while the file was being created: nothing was ever stored.
                    self._warn_torn(0, size)
                    os.ftruncate(fd, 0)
                    self._write_header()
                    return len(HEADER)
                raise self._bad_header(head)
            # The mmap, not a memoryview of it: slices are copies, so no traceback can keep
            # a buffer exported and stop the mmap from closing.
            end = self._replay(view, size)
        if end < size:
            os.ftruncate(fd, end)
            _sync(fd)
        return end

    def _write_header(self) -> None:
        _write_all(self._fd, HEADER)
        _sync(self._fd)
        _sync_directory(self.path.parent)

    def _bad_header(self, head: bytes) -> PersistenceError:
        if len(head) < len(HEADER) or head[:8] != MAGIC:
            problem = "is not a kvstore append-only file (its first bytes are not the magic)"
        else:
            version = _U32.unpack_from(head, 8)[0]
            if zlib.crc32(head[:12]) != _U32.unpack_from(head, 12)[0]:
                problem = "has a damaged header (checksum mismatch at offset 0)"
            else:
                problem = (
                    f"has format version {version}, and this kvstore reads version "
                    f"{FORMAT_VERSION} only"
                )
        return PersistenceError(problem, path=str(self.path), offset=0)

    def _replay(self, view: mmap.mmap, size: int) -> int:
        """Apply every record after the header; returns where the last good one ends."""
        ks, table = self._keyspace, TABLE
        crc32, unpack, decode = zlib.crc32, _RECORD.unpack_from, _decoder.decode
        offset = len(HEADER)
        while offset < size:
            if size - offset < _RECORD.size:
                return self._warn_torn(offset, size)
            length, payload_crc, head_crc = unpack(view, offset)
            if crc32(view[offset : offset + 8]) != head_crc:
                if not any(view[offset:size]):  # zeros to the end: allocated, never written
                    return self._warn_torn(offset, size)
                raise self._corrupt(offset, "the record header's checksum does not match")
            start, end = offset + _RECORD.size, offset + _RECORD.size + length
            if end > size:
                return self._warn_torn(offset, size)
            payload = view[start:end]
            if crc32(payload) != payload_crc:
                if end == size:
                    return self._warn_torn(offset, size)
                raise self._corrupt(offset, "the payload's checksum does not match")
            try:
                now, commands = decode(payload)
            except msgspec.DecodeError as exc:
                raise self._corrupt(offset, f"the payload does not decode ({exc})") from None
            ks.now = now
            for words in commands:
                impl = table.get(words[0]) if words else None
                if impl is None or not impl.write:
                    raise self._corrupt(offset, f"{words[:1]!r} is not a write command")
                try:
                    impl.handler(ks, words[1:])
                except (ReplyError, IndexError, ValueError) as exc:
                    name = impl.name
                    raise self._corrupt(offset, f"{name} fails on replay ({exc})") from None
            offset = end
        return offset

    def _corrupt(self, offset: int, problem: str) -> PersistenceError:
        return PersistenceError(
            f"corrupt record at offset {offset}: {problem}. More data follows, so this is not "
            "an interrupted write and nothing was loaded; to keep only the records before it, "
            f"truncate a copy of the file to {offset} bytes",
            path=str(self.path),
            offset=offset,
        )

    def _warn_torn(self, offset: int, size: int) -> int:
        warnings.warn(
            f"{self.path}: dropped an incomplete last record at offset {offset} "
            f"({size - offset} bytes, left by an interrupted write); the file now ends there",
            RuntimeWarning,
            stacklevel=2,
        )
        return offset

    # --- fsync="everysec" ---------------------------------------------------------------

    def _sync_if_dirty(self) -> bool:
        """One tick of the ``everysec`` flusher; whether to go on."""
        if not self._dirty:
            return True
        self._dirty = False  # before syncing: a write racing the sync marks it again
        with self._lock:
            if self._closed or self._failed is not None:
                return False
            # A duplicate survives a rewrite closing the original while this syncs, and
            # the sync itself runs without the driver's lock.
            fd = os.dup(self._fd)
        try:
            _sync(fd)
        except OSError as exc:
            _log.error("kvstore: cannot sync %s: %s; refusing further commands", self.path, exc)
            with self._lock:
                self._failed = exc
            return False
        finally:
            os.close(fd)
        return True

    # --- rewrite ------------------------------------------------------------------------

    def _should_rewrite(self) -> bool:
        return (
            self._min_size is not None
            and self._size >= self._min_size
            and self._size >= self._ratio * self._base_size
            and not self._closed
            and (self._auto is None or not self._auto.is_alive())
        )

    def _auto_rewrite(self) -> None:
        if not self._rewrite_lock.acquire(blocking=False):
            return  # a rewrite is running already
        try:
            self._rewrite()
        except _ClosedError:
            pass
        except Exception:
            _log.exception("kvstore: rewriting %s failed; the old file stays in use", self.path)
            with self._lock:  # wait for more growth before trying again
                self._base_size = self._size
        finally:
            self._rewrite_lock.release()

    def rewrite(self) -> None:
        """Compact the file into the commands that rebuild the keyspace (blocking).

        Writers are held up only for short moments (see the module docstring); call it from
        a worker thread to keep an event loop serving them.

        Raises:
            PersistenceError: the driver was closed, or the new file could not be written (the
                old one stays in use).
        """
        with self._rewrite_lock:
            try:
                self._rewrite()
            except _ClosedError:
                raise self._unusable() from None
            except OSError as exc:
                raise PersistenceError(
                    f"the rewrite failed ({exc}); the old file stays in use", path=str(self.path)
                ) from exc

    def _temp_path(self) -> Path:
        return self.path.with_name(self.path.name + ".rewrite")

    def _rewrite(self) -> None:
        temp = self._temp_path()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
        try:
            # Locked before it is renamed into place, so the file at the path is always locked.
            _flock(fd)
            self._fill(fd)
        except BaseException:
            if fd != self._fd:  # not swapped in yet
                os.close(fd)
                self._remove(temp)
            raise

    def _fill(self, fd: int) -> None:
        """Write the new file to ``fd`` and swap it in (see the module docstring)."""
        out = _Output(fd)
        out.write(HEADER)
        ks = self._keyspace
        with self._lock:
            self._check_open()
            capture = self._rewriting = Capture(ks)
        try:
            index = 0
            while index < len(capture.keys):
                with self._lock:
                    self._check_open()
                    index, copies = capture.take(ks, index, _REWRITE_BUDGET)
                for copy in copies:  # serialised without the lock
                    for words in rebuild(copy):
                        out.command(words)
            out.end_record()
            while True:  # catch up with the writes made meanwhile, still without the lock
                with self._lock:
                    records, capture.buffer = capture.buffer, []
                for now, commands in records:
                    out.write(frame(now, commands))
                if len(records) <= _SMALL_BUFFER:
                    break
            out.flush()
            os.fsync(fd)  # the bulk of the syncing, without the lock
            with self._lock:
                self._check_open()
                for now, commands in capture.buffer:
                    out.write(frame(now, commands))
                out.flush()
                os.fsync(fd)
                os.replace(self._temp_path(), self.path)
                old, self._fd = self._fd, fd
                self._size = self._base_size = out.size
                self._rewriting = None
                self._dirty = False
                os.close(old)  # releases the old file's lock: the new one holds it now
                # Before any batch is acknowledged from the new file: a power cut must not
                # bring the old one back.
                _sync_directory(self.path.parent)
        finally:
            if self._rewriting is capture:
                with self._lock:
                    self._rewriting = None

    def _check_open(self) -> None:
        if self._closed or self._failed is not None:
            raise _ClosedError

    @staticmethod
    def _remove(path: Path) -> None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

    # --- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the background threads, sync the file and release it. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        for thread in (self._flusher, self._auto):
            if thread is not None:
                thread.join()
        with self._rewrite_lock:  # a rewrite run elsewhere stops at its next chunk
            pass
        try:
            if self._failed is None:
                _sync(self._fd)
        finally:
            os.close(self._fd)  # releases the lock

    def __del__(self) -> None:
        # A driver dropped without aclose(): release the file as an unclosed file object
        # does, so that it can be opened again. Every record is written already; only the
        # final sync is missing. (No thread keeps this object alive: the flusher holds a
        # weak reference.)
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        warnings.warn(
            f"unclosed memory driver file {self.path}", ResourceWarning, stacklevel=2, source=self
        )
        os.close(self._fd)


def _flush_every_second(ref: weakref.ref[AppendOnlyFile], stop: threading.Event) -> None:
    """The ``everysec`` flusher thread (holding ``ref`` only while it syncs)."""
    while not stop.wait(_FLUSH_INTERVAL):
        aof = ref()
        if aof is None or not aof._sync_if_dirty():
            return
        del aof


class _ClosedError(Exception):
    """The driver was closed (or failed) while a rewrite ran."""


class _Output:
    """Buffered writes of a rewritten file, with commands grouped into records."""

    __slots__ = ("_buffer", "_commands", "_fd", "_weight", "size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._commands: list[list[bytes]] = []
        self._weight = 0
        self.size = 0

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.size += len(data)
        if len(self._buffer) >= _RECORD_TARGET:
            self.flush()

    def command(self, words: list[bytes]) -> None:
        self._commands.append(words)
        self._weight += sum(map(len, words)) + len(words)
        if self._weight >= _RECORD_TARGET:
            self.end_record()

    def end_record(self) -> None:
        if self._commands:
            # now=0: the clock is read by no rebuilding command but PEXPIREAT, which must not
            # find a live key's deadline in the past.
            self.write(frame(0, self._commands))
            self._commands, self._weight = [], 0

    def flush(self) -> None:
        _write_all(self._fd, self._buffer)
        self._buffer.clear()


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _sync_directory(path: Path) -> None:
    """Make a file's creation or renaming in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _flock(fd: int) -> None:
    """Take the exclusive lock of the file ``fd`` is open on, without waiting.

    Raises:
        BlockingIOError: someone else holds it.
        UnsupportedError: no ``flock`` on this system (Windows).
    """
    try:
        import fcntl
    except ImportError:  # imported here so that the driver itself still works without it
        raise UnsupportedError(
            "the memory driver keeps files only where fcntl.flock exists"
        ) from None
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _open_locked(path: Path) -> int:
    """Open (creating) ``path`` for appending, holding its exclusive lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | _CLOEXEC, 0o644)
        try:
            _flock(fd)
        except BlockingIOError:
            os.close(fd)
            raise PersistenceError(
                "the file is in use by another driver (in this process or another); "
                "only one may have it open at a time",
                path=str(path),
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            current = os.stat(path)
        except FileNotFoundError:
            current = None
        opened = os.fstat(fd)
        if current is not None and (current.st_ino, current.st_dev) == (
            opened.st_ino,
            opened.st_dev,
        ):
            return fd
        # A rewrite renamed a new file over the one we opened (or it was deleted): retry.
        os.close(fd)
