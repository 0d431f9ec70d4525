"""Crash-safe file writes and crash-isolated process pools.

* ``atomic_paths`` / ``atomic_path``: the one way musicgen writes a file. The caller writes temporary files beside
  the targets, which ``os.replace`` them when the block ends, so a reader (or a run killed with ``kill -9``) sees
  the old file or the whole new one. ``atomic_write_bytes`` / ``atomic_write_text`` / ``save_npz`` use it.
* ``CacheLock``: an exclusive ``flock`` on a folder, which also clears temporary files left by killed runs.
* ``run_isolated``: a ``ProcessPoolExecutor`` map in which a worker dying (segfault in a parser, out of memory) loses
  no other item's result and names the item that killed it.
* ``time_limit``: stop a slow call after N seconds (SIGALRM; for the main thread of a worker process).
* ``save_pack`` / ``load_pack``: many keyed int32 arrays (and per-key columns) in one atomic npz, checked on load.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np

from musicgen.errors import UsageError


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _temp_beside(path: Path, keep_suffix: bool = False) -> Path:
    """``.NAME.PID.RANDOM.tmp`` in the folder of ``path`` (plus ``path``'s suffixes when ``keep_suffix``, for
    writers that choose the format by extension: Keras ``.keras`` / ``.weights.h5``, matplotlib ``.png``)."""
    suffix = "".join(path.suffixes) if keep_suffix else ""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{suffix}")


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike, keep_suffix: bool = True) -> Iterator[list[Path]]:
    """``with atomic_paths(a, b) as (tmp_a, tmp_b): write the temporaries`` → they replace ``a`` and ``b``.

    The temporaries sit beside their targets (same file system, so ``os.replace`` is atomic) and keep the targets'
    suffixes unless ``keep_suffix=False``. The renames happen only after the whole block succeeded, in the order
    given; on an exception (or ``KeyboardInterrupt``) no target is touched and every temporary is removed.
    """
    targets = [Path(p) for p in paths]
    temps = [_temp_beside(p, keep_suffix) for p in targets]
    try:
        yield temps
        for tmp, target in zip(temps, targets):
            os.replace(tmp, target)
    finally:
        for tmp in temps:
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, keep_suffix: bool = True) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write tmp`` → ``tmp`` replaces ``p`` (see ``atomic_paths``)."""
    with atomic_paths(path, keep_suffix=keep_suffix) as (tmp,):
        yield tmp


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    with atomic_path(path, keep_suffix=False) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_npz(path: str | os.PathLike, **arrays) -> None:
    """``np.savez`` made atomic: a reader sees the old file or the whole new one, never a partial one."""
    with atomic_path(path, keep_suffix=False) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def save_pack(path: Path, keys: list[str], arrays: list[np.ndarray], **columns: np.ndarray) -> None:
    """One atomic npz of ragged int32 arrays: ``keys`` unicode (m), ``offsets`` int64 (m+1), ``values`` int32 (all
    arrays concatenated), plus each column (first axis m) under its name."""
    offsets = np.zeros(len(arrays) + 1, np.int64)
    np.cumsum([a.size for a in arrays], out=offsets[1:])
    values = np.concatenate(arrays).astype(np.int32) if arrays else np.zeros(0, np.int32)
    save_npz(path, keys=np.array(keys, dtype=np.str_), offsets=offsets, values=values, **columns)


def load_pack(path: Path, columns: tuple[str, ...], max_value: int):
    """``(keys, arrays, {column: array})`` of a ``save_pack`` file, or None when it is missing, damaged or
    inconsistent (offsets not covering the values, a column of the wrong length, values outside [0, max_value))."""
    try:
        with np.load(path, allow_pickle=False) as z:
            keys, offsets, values = z["keys"], z["offsets"], z["values"]
            cols = {name: z[name] for name in columns}
    except Exception:  # missing, truncated, not a zip, bytes flipped (CRC), arrays missing
        return None
    n = keys.shape[0] if keys.ndim == 1 else -1
    if not (keys.dtype.kind == "U" and values.dtype == np.int32 and values.ndim == 1 and offsets.dtype == np.int64
            and offsets.shape == (n + 1,) and offsets[0] == 0 and offsets[-1] == values.size
            and np.all(np.diff(offsets) >= 0) and all(c.shape[:1] == (n,) for c in cols.values())
            and (values.size == 0 or 0 <= values.min() <= values.max() < max_value)):
        return None
    return keys.tolist(), np.split(values, offsets[1:-1]), cols


class TimeLimitExceeded(BaseException):
    """Raised by ``time_limit``; a BaseException so that no library's ``except Exception`` swallows it."""


class time_limit:
    """``with time_limit(seconds): ...`` raises ``TimeLimitExceeded`` after ``seconds`` (an int; 0 = no limit).

    SIGALRM-based: use it in the main thread of a process that owns its alarm (an ingest worker). A no-op where
    there is no SIGALRM (Windows).
    """

    def __init__(self, seconds: int):
        self.seconds = seconds if hasattr(signal, "SIGALRM") else 0

    @staticmethod
    def _expired(signum, frame):
        raise TimeLimitExceeded

    def __enter__(self):
        if self.seconds > 0:
            self.previous = signal.signal(signal.SIGALRM, self._expired)
            signal.alarm(self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds > 0:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, self.previous)


class CacheLock:
    """An exclusive lock on ``DIR/.lock`` so two ingests into one cache folder take turns.

    A POSIX record lock (``lockf``): it belongs to this process alone, so forked workers do not inherit it, and it
    is released when the process dies, even by ``kill -9``.
    """

    def __init__(self, folder: Path):
        self.path = folder / ".lock"

    def __enter__(self):
        self.file = open(self.path, "a")
        try:
            import fcntl

            fcntl.lockf(self.file, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock, atomic writes still keep every file whole
            pass
        for stale in [*self.path.parent.glob(".*.tmp"), *self.path.parent.glob("entries/*/.*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a killed run; we hold the lock, so nobody is writing them
        return self

    def __exit__(self, *exc):
        self.file.close()


def _start_method() -> str:
    import multiprocessing as mp

    # fork is fastest, but forking a process that runs TensorFlow's threads can deadlock the child
    method = "forkserver" if "tensorflow" in sys.modules else "fork"
    return method if method in mp.get_all_start_methods() else "spawn"


def _die_with_parent() -> None:
    """Worker initializer (Linux): get SIGKILL when the parent dies, so ``kill -9`` of a run leaves no orphans."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans exit when their queue closes
        pass


def _pool(workers: int) -> ProcessPoolExecutor:
    import multiprocessing as mp

    return ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context(_start_method()),
                               initializer=_die_with_parent)


def run_isolated(fn, items, workers: int, *args, chunk: int = 16):
    """Yield ``(item, result)`` for each item, computed as ``fn([item, …], *args)`` in worker processes.

    ``items``: a list, or any sequence whose slices are lists (made when their chunk is sent out). Items go out in
    chunks (at most ``chunk`` each), at most ``4 * workers`` chunks waiting at a time (memory: those chunks, not
    every item). When a worker dies (segfault, out of memory, ``os._exit``) the pool breaks: the items it had not
    finished are rerun one per fresh process, and an item that kills its process again yields ``result=None``.
    Results come in completion order.
    """
    size = max(1, min(chunk, -(-len(items) // (4 * workers))))
    chunks = (items[i:i + size] for i in range(0, len(items), size))
    lost = []
    with _pool(workers) as ex:
        futures = {}
        for c in chunks:
            try:
                futures[ex.submit(fn, c, *args)] = c
            except BrokenProcessPool:  # a worker died: this chunk and those after it are rerun below
                lost.extend(c)
                continue
            if len(futures) >= 4 * workers:
                yield from _drain(futures, lost, wait_one=True)
        yield from _drain(futures, lost, wait_one=False)
    for item in lost:
        with _pool(1) as ex:
            try:
                result = ex.submit(fn, [item], *args).result()[0]
            except BrokenProcessPool:
                result = None
        yield item, result


def _drain(futures: dict, lost: list, wait_one: bool):
    """Yield the results of ``futures`` (future -> its chunk) as they finish, dropping each once yielded (memory per
    chunk); with ``wait_one`` stop after the first finished chunk. A broken pool's chunks go to ``lost``."""
    for fut in as_completed(list(futures)):
        done = futures.pop(fut)
        try:
            results = fut.result()
        except BrokenProcessPool:
            lost.extend(done)
            results = None
        del fut
        if results is not None:
            yield from zip(done, results)
        if wait_one:
            return


def check_output_dir(folder: str | os.PathLike, flag: str) -> Path:
    """Raise ``UsageError`` naming ``flag`` when ``folder`` cannot be a folder to write into: it is a file, or a file
    stands where one of its parent folders would be. Returns ``folder`` as a Path (nothing is created)."""
    folder = Path(folder)
    for p in (folder, *folder.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == folder else f"is inside {str(p)!r}, which is a file"
                raise UsageError(f"{flag}: {str(folder)!r} {where}; expected a folder")
            return folder
    return folder


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity where the OS has one, else the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_workers(workers: int) -> int:
    if not isinstance(workers, int) or workers < 0:
        raise UsageError(f"--workers: expected an integer >= 0 (0 = one per core), got {workers!r}")
    return workers or available_cores()
