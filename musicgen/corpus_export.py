"""music21's bundled corpora → MIDI files: real music with no download (``musicgen corpus export NAME DIR``).

Each piece is parsed by music21 in a worker process and written as ``DIR/<safe name>.mid`` at 480 ticks per quarter
(music21 writes 10,080, which puts a long mass movement past tick 1e7, where pretty_midi refuses the file;
``midi_io.resample_midi``), with the score's bars as time signatures (a pickup is a short bar of its own, so reading
the MIDI gives the bars music21 reads in the score; ``scores.score_bars``). An ABC file holding several
tunes is split at its ``X:`` lines, each tune becoming ``<file stem>-<nnnn>.mid`` (nnnn counts tunes from 1), so names
are deterministic. Pieces music21 cannot parse or write are counted and skipped, never fatal. music21's own pickle
cache is bypassed (``forceSource=True, storePickle=False``).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from musicgen.errors import UsageError

#: name -> (music21 composer folder, description, file suffixes kept)
CORPORA: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "bach": ("bach", "J.S. Bach four-part chorales (MusicXML); analyses and kern duplicates left out",
             (".mxl", ".xml", ".krn")),
    "ryans": ("ryansMammoth", "Ryan's Mammoth Collection (1883), fiddle tunes (ABC)", (".abc",)),
    "essen": ("essenFolksong", "Essen folksong collection, German and other European melodies (ABC, many tunes "
                               "per file)", (".abc",)),
    "oneills": ("oneills1850", "O'Neill's Music of Ireland (1850), Irish tunes (ABC, many tunes per file)",
                (".abc",)),
    "palestrina": ("palestrina", "Palestrina mass movements (Humdrum kern)", (".krn",)),
}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ExportReport:
    """What ``export_corpus`` wrote: ``written`` MIDI files, ``failed`` pieces (reason → count)."""

    name: str
    out_dir: Path
    written: int = 0
    failed: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        n_failed = sum(self.failed.values())
        why = ", ".join(f"{n} {r}" for r, n in self.failed.most_common(5))
        return (f"exported {self.written} pieces of {self.name!r} to {self.out_dir}"
                + (f"; {n_failed} failed ({why})" if n_failed else ""))


def _source_files(name: str) -> list[Path]:
    if name not in CORPORA:
        raise UsageError(f"name: unknown corpus {name!r}; expected one of {', '.join(CORPORA)}")
    from music21 import corpus

    composer, _, suffixes = CORPORA[name]
    files = [Path(p) for p in corpus.getComposer(composer) if Path(p).suffix.lower() in suffixes]
    by_stem: dict[str, Path] = {}  # one piece in two encodings (bach: bwv277 .mxl and .krn): keep the preferred one
    for path in sorted(files, key=lambda p: suffixes.index(p.suffix.lower())):
        by_stem.setdefault(path.stem, path)
    return sorted(by_stem.values(), key=lambda p: p.name)


def list_corpora() -> list[tuple[str, str, int]]:
    """``(name, description, number of source files)`` for each exportable corpus."""
    return [(name, CORPORA[name][1], len(_source_files(name))) for name in CORPORA]


def split_abc(text: str) -> list[str]:
    """The tunes of an ABC file, each prefixed with the file header (``musicgen.abc.split_abc``, texts only)."""
    from musicgen.abc import split_abc as split

    return [tune.text for tune in split(text)]


def _pieces(files: list[Path]) -> list[tuple[str, str, str | None]]:
    """``(output name, source path, ABC text or None)`` for every piece, in a fixed order."""
    out = []
    for path in files:
        stem = _UNSAFE.sub("_", path.stem).strip("._") or "piece"
        if path.suffix.lower() == ".abc":
            tunes = split_abc(path.read_text(encoding="utf-8", errors="replace"))
            if len(tunes) > 1:
                out += [(f"{stem}-{i:04d}", str(path), tune) for i, tune in enumerate(tunes, 1)]
                continue
        out.append((stem, str(path), None))
    return out


def score_to_midi(score) -> bytes:
    """A music21 stream as MIDI file bytes at 480 ticks per quarter (music21 writes 10,080; resampled by symusic),
    with the score's real bars as time signatures (``scores.score_bars`` of the score with repeats played out, as
    music21's MIDI has them): a pickup is a short bar (1/4 at 0, then 4/4), where music21 writes 4/4 from 0."""
    import music21

    from musicgen.midi_io import resample_midi
    from musicgen.scores import _expanded, score_bars

    bars = score_bars(_expanded(score)[0])
    return resample_midi(music21.midi.translate.music21ObjectToMidiFile(score).writestr(),
                         time_signatures=bars or None)


def _export_chunk(items: list[tuple[str, str, str | None]]) -> list[tuple[bytes | None, str]]:
    """Worker: parse each piece with music21 and return ``(MIDI bytes, "")`` or ``(None, reason)``."""
    import music21

    out = []
    for _, path, abc_text in items:
        try:
            if abc_text is None:
                score = music21.converter.parse(path, forceSource=True, storePickle=False)
            else:
                score = music21.converter.parse(abc_text, format="abc", forceSource=True, storePickle=False)
            if isinstance(score, music21.stream.Opus):
                score = score.scores[0]
            if not score.flatten().notes:
                out.append((None, "no notes"))
                continue
            out.append((score_to_midi(score), ""))
        except Exception as exc:  # music21 fails in many ways on odd pieces; count and go on
            out.append((None, f"music21 {type(exc).__name__}"))
    return out


def export_corpus(name: str, out_dir: str | Path, limit: int = 0, workers: int = 0,
                  progress: bool = True, every: int = 1) -> ExportReport:
    """Write a bundled music21 corpus as MIDI files into ``out_dir``.

    Args:
        name: one of ``CORPORA`` (``musicgen corpus list``).
        out_dir: folder created if needed; existing files of the same name are replaced atomically.
        limit: export at most this many pieces, the first ones in name order (0 = all).
        every: export every ``every``-th piece in name order, the first included (1 = all): a smaller sample that
            still spans the whole corpus (every movement type of a mass, say); before ``limit``.
        workers: parallel processes (0 = one per core).
        progress: tqdm bar on stderr.
    """
    from tqdm import tqdm

    from musicgen.safeio import atomic_write_bytes, check_output_dir, resolve_workers, run_isolated

    if not isinstance(limit, int) or limit < 0:
        raise UsageError(f"--limit: expected an integer >= 0 (0 = all), got {limit!r}")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise UsageError(f"--every: expected an integer >= 1 (1 = all), got {every!r}")
    workers = resolve_workers(workers)
    out = check_output_dir(out_dir, "out_dir")
    pieces = _pieces(_source_files(name))
    pieces = pieces[::every]
    pieces = pieces[:limit] if limit else pieces
    out.mkdir(parents=True, exist_ok=True)
    report = ExportReport(name=name, out_dir=out)
    with tqdm(total=len(pieces), unit="piece", desc=f"export {name}", file=sys.stderr, disable=not progress) as bar:
        for item, result in run_isolated(_export_chunk, pieces, min(workers, max(1, len(pieces))), chunk=4):
            data, reason = result if result is not None else (None, "music21 crashed")
            if data is None:
                report.failed[reason] += 1
            else:
                atomic_write_bytes(out / f"{item[0]}.mid", data)
                report.written += 1
            bar.update(1)
    return report
