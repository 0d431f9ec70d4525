"""Ingest's worker side: read every piece of a chunk of files, tokenize them, write one entry pack.

``musicgen.corpus.ingest`` runs ``tokenize_chunk`` in crash-isolated worker processes (``safeio.run_isolated``);
``piece_rows`` turns its results into manifest rows; ``expected_pieces`` / ``cost`` size the work before it starts.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from musicgen.cache import PieceResult, piece_key, write_pack
from musicgen.config import TokenizerConfig
from musicgen.midi_io import MAX_SCORE_BYTES, MIDI_SUFFIXES
from musicgen.styles import style_of_key

SCORE_COST = 100  # a MusicXML/kern file through music21 costs about as much as this many MIDI files
ABC_TUNE_COST = 5  # an ABC tune through symusic's reader (abc2midi process + parse)
_X_LINES = re.compile(rb"^[ \t]*X:", re.MULTILINE)
_TOKENIZERS: dict[str, object] = {}


def tokenize_chunk(items: list[tuple[str, str]], config_json: str, pack_dir: str,
                    time_limit_s: int) -> list[list[PieceResult]]:
    """Worker: read every piece of each ``(file path, content key)``, tokenize all at once, write one pack. A key
    with a style (``styles.styled_key``) gives the file's pieces that STYLE event.

    Returns a ``PieceResult`` list per item (a file that cannot be read at all: one entry, index 0, with the
    reason), each naming the pack (``pack``). Any failure of one file or tune (IngestError, a parser bug, the time
    limit) skips that one only.
    """
    from musicgen import midi_io, reader
    from musicgen.errors import IngestError
    from musicgen.tokenizer import Tokenizer

    midi_io.load_symusic_core_only()  # a worker process parses and nothing else: skip symusic's heavy package imports
    if config_json not in _TOKENIZERS:
        _TOKENIZERS[config_json] = Tokenizer(TokenizerConfig.from_json(config_json))
    tokenizer = _TOKENIZERS[config_json]
    read: list[list] = []  # per item: ScorePiece list
    for path, _ in items:
        try:  # reader.read_pieces looked up now: tests replace it; score formats get time_limit_s per tune/parse
            read.append(reader.read_pieces(path, tokenizer.config.time_mode, time_limit_s))
        except IngestError as exc:
            read.append([reader.ScorePiece(0, "", "", None, str(exc) or "unreadable")])
        except Exception as exc:  # a parser bug on one odd file must not stop the run
            read.append([reader.ScorePiece(0, "", "", None,
                                           f"parser error: {type(exc).__name__}: {str(exc)[:160]}")])
    pieces = [sp.piece for file_pieces in read for sp in file_pieces if sp.piece is not None]
    names = tokenizer.config.styles
    styles = [names.index(style_of_key(fkey)) if names else -1
              for (_, fkey), file_pieces in zip(items, read) for sp in file_pieces if sp.piece is not None]
    try:
        encoded = iter(tokenizer.encode_pieces(pieces, styles))
    except Exception:  # find the piece that breaks the batch: encode one by one
        encoded = iter([_encode_one(tokenizer, piece, style) for piece, style in zip(pieces, styles)])
    results = []
    for (_, fkey), file_pieces in zip(items, read):
        out = []
        for sp in file_pieces:
            key = piece_key(fkey, sp.index)
            tokens = next(encoded) if sp.piece is not None else sp.reason
            if isinstance(tokens, np.ndarray):
                out.append(PieceResult(key, sp.index, sp.title, sp.reader, "", tokens, float(sp.piece.qpm)))
            else:
                out.append(PieceResult.skipped(key, str(tokens) or "unreadable", sp.index, sp.title, sp.reader))
        results.append(out)
    pack = write_pack(Path(pack_dir), [p for out in results for p in out])
    return [[p._replace(pack=pack) for p in out] for out in results]


def _encode_one(tokenizer, piece, style: int = -1):
    try:
        return tokenizer.encode_pieces([piece], [style])[0]
    except Exception as exc:
        return f"parser error: {type(exc).__name__}: {str(exc)[:160]}"



def piece_rows(pieces: list[PieceResult], score_format: bool, tokenizer=None) -> list[dict]:
    """Manifest fields of each piece (path, size and status are added by the caller). With a ``tokenizer`` whose
    config has ``key`` / ``meter``, a kept piece's row also names its key (``"tonality": "F major"``, its KEY event)
    and its main meter (``"meter": "4/4"``, of its TIME_SIG events the one in force for the most steps; a pickup's
    short bar rarely is)."""
    rows = []
    for p in pieces:
        row = {"key": p.key}
        if score_format:
            row["index"] = p.index
            row.update({k: v for k, v in (("title", p.title), ("reader", p.reader)) if v})
        row.update(reason=p.reason) if p.reason else row.update(events=int(p.tokens.size))
        if tokenizer is not None and not p.reason:
            row.update(meter_and_key(tokenizer, p.tokens))
        rows.append(row)
    return rows


def meter_and_key(tokenizer, tokens: np.ndarray) -> dict:
    """``{"tonality": …, "meter": …}`` of one piece's tokens, each only when the tokenizer encodes it (see
    ``piece_rows``)."""
    from musicgen.meter import key_name

    c, out = tokenizer.config, {}
    if not (c.key or c.meter):
        return out
    key, meters = tokenizer.decode_meta(tokens)
    if c.key and key is not None:
        out["tonality"] = key_name(key)
    if c.meter and meters:
        ends = [s for s, _, _ in meters[1:]] + [int(tokenizer.decode_arrays(tokens)["end"].max(initial=0))]
        longest = max(range(len(meters)), key=lambda i: (ends[i] - meters[i][0], -i))
        out["meter"] = f"{meters[longest][1]}/{meters[longest][2]}"
    return out


def expected_pieces(path: str) -> int:
    """A cheap guess of how many pieces a file holds (its ``X:`` lines for ABC, else 1): the progress bar's total
    and the scheduling weight."""
    if not path.lower().endswith(".abc"):
        return 1
    try:
        with open(path, "rb") as fh:
            return max(1, len(_X_LINES.findall(fh.read(MAX_SCORE_BYTES + 1))))
    except OSError:
        return 1


def cost(path: str, pieces: int) -> int:
    """Work of a file in MIDI-file units: a music21 parse costs ~``SCORE_COST`` MIDI files, an ABC tune on the fast
    path ~``ABC_TUNE_COST``."""
    if path.lower().endswith(MIDI_SUFFIXES):
        return 1
    return pieces * ABC_TUNE_COST if path.lower().endswith(".abc") else SCORE_COST
