"""The music files of a corpus folder: a recursive scan (links followed, each real folder once) and its checks.

``musicgen.corpus.ingest`` scans with ``_scan`` (music files and the others, which the manifest lists as ignored);
``musicgen.corpus`` re-exports ``find_music_files``.
"""

from __future__ import annotations

import os
from pathlib import Path

from musicgen.errors import UsageError
from musicgen.reader import MUSIC_SUFFIXES

__all__ = ["find_music_files"]


def _scan(root: Path, exclude: Path | None = None) -> tuple[list[str], list[str]]:
    """Relative posix paths under ``root``, sorted: (music files, other files). ``exclude`` (a cache) is skipped.

    Symbolic links are followed, each real folder is walked once (a link back up the tree cannot loop), and an
    unreadable folder or a dangling link is listed like a file (the manifest then says why it was skipped).
    """
    music, other, skip = [], [], str(exclude) if exclude else None
    stack, seen = [(str(root), "")], {os.path.realpath(root)}
    while stack:  # os.scandir on strings: pathlib costs more than the stat calls on a warm rerun
        folder, prefix = stack.pop()
        try:
            it = os.scandir(folder)
        except OSError:
            continue
        with it:
            for entry in it:
                try:
                    is_dir = entry.is_dir()
                except OSError:  # a link loop or a dangling link
                    is_dir = False
                if is_dir:
                    real = os.path.realpath(entry.path)
                    if real != skip and real not in seen:
                        seen.add(real)
                        stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif os.path.splitext(entry.name)[1].lower() in MUSIC_SUFFIXES:
                    music.append(prefix + entry.name)
                else:
                    other.append(prefix + entry.name)
    return sorted(music), sorted(other)


def find_music_files(root: str | Path) -> list[Path]:
    """Every music file under ``root`` (recursive; ``.mid .midi .mxl .musicxml .xml .abc .krn``, any case), sorted."""
    root = _check_corpus_dir(root)
    return [root / rel for rel in _scan(root)[0]]


def _check_corpus_dir(corpus_dir: str | Path) -> Path:
    path = Path(corpus_dir)
    if not path.exists():
        raise UsageError(f"corpus_dir: no such folder: {str(corpus_dir)!r}")
    if not path.is_dir():
        raise UsageError(f"corpus_dir: expected a folder of music files, got a file: {str(corpus_dir)!r}")
    return path
