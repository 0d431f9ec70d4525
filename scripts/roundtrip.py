"""How many notes survive ``decode(encode(piece))``: python scripts/roundtrip.py DIR [--time-mode beat|seconds]
[--voices N|auto] [--voice-events all|implied] [--meter] [--key-mode token|normalize]

For every music file under DIR (recursive), read with ``musicgen.reader.read_piece`` and encoded by the default
``Tokenizer`` of that time mode (with ``--voices``: ``TokenizerConfig(voices=N)``; ``auto`` = the most parts of any
file, at most ``MAX_VOICES``), the notes are compared **on the grid** as multisets of
``(instrument, pitch, start step, end step)``, instrument = GM program or 128 for drums, velocity ignored; with
voices the instrument is ``(voice, program)`` (voice = the note's part, parts from N on sharing voice N-1):

* *in*: the file's notes in the tokenizer's pitch range, start and end rounded to the grid, end at least start + 1
  step (what the tokenizer sees; putting times on the grid is not counted as a loss, it is reported apart as the
  share of notes whose start or end was off the grid);
* *out*: ``tokenizer.decode_arrays(tokenizer.encode(piece))``.

Reported: notes in, notes out, notes kept exactly (multiset intersection of in and out), notes whose onset is kept
(intersection on ``(instrument, pitch, start)``: the note is there but ends earlier), sounding time kept (sum of
out durations / sum of in durations), whether *out* equals the documented rule applied to *in* (of two notes of
the same pitch and instrument, the earlier ends at the later's onset; at one onset the longer is kept; see
``musicgen.tokenizer``), and the events it took. Files that cannot be read are counted and skipped.

With ``--meter`` / ``--key-mode`` (``TokenizerConfig.meter`` / ``.key``) it also reports the TIME_SIG and KEY events
and whether they come back: a file's meters are kept when ``decode_meta`` gives exactly the TIME_SIG events its
``Piece.meters`` call for (``musicgen.meter.meter_events``, those before the last step), its key when the KEY event
is the file's key signature or, without one, the analysis (``musicgen.keys.piece_key``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from musicgen.config import MAX_VOICES, TIME_MODES, TokenizerConfig
from musicgen.corpus import find_music_files
from musicgen.errors import IngestError
from musicgen.keys import piece_key
from musicgen.meter import meter_events, time_signature_of
from musicgen.reader import read_piece
from musicgen.tokenizer import Tokenizer


def grid_notes(tok: Tokenizer, piece) -> list[tuple]:
    """The notes the tokenizer sees: ``(instrument, pitch, start step, end step)`` rows, unsorted; with voices
    ``((voice, program), pitch, start step, end step)``."""
    a, c = piece.arrays, tok.config
    s = tok.to_steps(a.start)
    e = np.maximum(tok.to_steps(a.end), s + 1)
    inst = a.instrument if c.programs else np.zeros_like(a.pitch)
    keep = (a.pitch >= c.min_pitch) & (a.pitch <= c.max_pitch) & (c.programs | ~a.is_drum)
    if c.voices:
        inst = list(zip(np.minimum(a.voice, c.voices - 1)[keep].tolist(), inst[keep].tolist()))
    else:
        inst = inst[keep].tolist()
    return list(zip(inst, a.pitch[keep].tolist(), s[keep].tolist(), e[keep].tolist()))


def decoded_notes(tok: Tokenizer, tokens) -> list[tuple]:
    """``decode_arrays(tokens)`` as rows shaped like ``grid_notes``."""
    d = tok.decode_arrays(tokens)
    inst = list(zip(d["voice"].tolist(), d["instrument"].tolist())) if tok.config.voices else d["instrument"].tolist()
    return list(zip(inst, d["pitch"].tolist(), d["start"].tolist(), d["end"].tolist()))


def merge_rule(notes: list[tuple]) -> list[tuple]:
    """The documented merge rule: per (instrument, pitch), sorted by (start, end), each note ends at the next
    note's start if that comes first; notes left with no length are dropped."""
    rows = sorted(notes)
    out = []
    for i, (inst, pitch, s, e) in enumerate(rows):
        if i + 1 < len(rows) and rows[i + 1][:2] == (inst, pitch):
            e = min(e, rows[i + 1][2])
        if e > s:
            out.append((inst, pitch, s, e))
    return out


def most_voices(files: list[Path], time_mode: str) -> int:
    """The most parts (voices) of any readable file, at most ``MAX_VOICES`` (1 when none is readable)."""
    most = 1
    for path in files:
        try:
            most = max(most, int(read_piece(path, time_mode).arrays.voice.max()) + 1)
        except IngestError:
            continue
    return min(most, MAX_VOICES)


def off_grid(tok: Tokenizer, piece) -> int:
    """Notes whose start or end is more than 1e-6 steps from a grid step."""
    a = piece.arrays
    steps = np.concatenate([a.start, a.end]) * tok._per_unit
    miss = np.abs(steps - np.round(steps)) > 1e-6
    return int((miss[:a.start.size] | miss[a.start.size:]).sum())


def measure(files: list[Path], tok: Tokenizer, per_file: list | None = None) -> dict:
    """Totals over ``files`` (see the module doc); ``per_file`` (a list) receives ``(path, in, out, exact)``."""
    totals = Counter()
    for path in files:
        try:
            piece = read_piece(path, tok.config.time_mode)
            tokens = tok.encode(piece)
        except IngestError:
            totals["skipped"] += 1
            continue
        notes_in = grid_notes(tok, piece)
        notes_out = decoded_notes(tok, tokens)
        cin, cout = Counter(notes_in), Counter(notes_out)
        totals["files"] += 1
        totals["in"] += len(notes_in)
        totals["out"] += len(notes_out)
        totals["exact"] += sum((cin & cout).values())
        totals["onset"] += sum((Counter(n[:3] for n in notes_in) & Counter(n[:3] for n in notes_out)).values())
        totals["time_in"] += sum(e - s for *_, s, e in notes_in)
        totals["time_out"] += sum(e - s for *_, s, e in notes_out)
        totals["rule_ok"] += cout == Counter(merge_rule(notes_in))
        totals["off_grid"] += off_grid(tok, piece)
        totals["read"] += len(piece.arrays.pitch)
        totals["tokens"] += tokens.size
        if tok.config.meter or tok.config.key:
            meta(tok, piece, tokens, notes_out, totals)
        if per_file is not None:
            per_file.append((path, len(notes_in), len(notes_out), sum((cin & cout).values())))
    return dict(totals)


def meta(tok: Tokenizer, piece, tokens, notes_out: list[tuple], totals: Counter) -> None:
    """Count the TIME_SIG / KEY events of one piece and whether they are what its meters and key call for."""
    key, meters = tok.decode_meta(tokens)
    if tok.config.meter:
        _, step, value = meter_events([piece.meters], tok.to_steps, tok.config.steps_per_quarter)
        last = max((e for *_, e in notes_out), default=0)
        want = [(s, *time_signature_of(int(v))) for s, v in zip(step.tolist(), value.tolist()) if s < last]
        totals["time_sig"] += len(meters)
        totals["meters_ok"] += meters == want
        bars = [n * 4 * tok.config.steps_per_quarter / d for _, n, d in meters[:2]]
        totals["pickup"] += len(meters) > 1 and meters[1][0] == bars[0] < bars[1]
    if tok.config.key:
        want_key, source = piece_key(piece)
        totals["key_events"] += 1
        totals["key_ok"] += key == want_key
        totals[f"key_{source}"] += 1


def report(t: dict, where: str, tok: Tokenizer) -> str:
    def pct(a, b):  # never "100.00%" for less than all
        if not b:
            return "-"
        text = f"{100 * a / b:.2f}"
        return f"{100 * a / b:.3f}%" if text == "100.00" and a != b else text + "%"

    n_in = t.get("in", 0)
    c = tok.config
    fields = [f"voices={c.voices}"] * bool(c.voices) + [f"voice_events={c.voice_events!r}"] * (
        c.voice_events != "all") + ["meter=True"] * c.meter + [f"key={c.key!r}"] * bool(c.key)
    settings = f"TokenizerConfig({', '.join(fields)})" if fields else "default TokenizerConfig"
    files = t.get("files", 0)
    extra = []
    if c.meter:
        extra.append(f"TIME_SIG events: {t.get('time_sig', 0)} ({t.get('time_sig', 0) / max(files, 1):.2f} per piece); "
                     f"files opening with a bar shorter than the next (a pickup): {t.get('pickup', 0)}; files whose TIME_SIG "
                     f"events are exactly their meters: {t.get('meters_ok', 0)}/{files}")
    if c.key:
        extra.append(f"KEY events: {t.get('key_events', 0)} (1 per piece; {t.get('key_signature', 0)} from the file's "
                     f"key signature, {t.get('key_analysis', 0)} analysed); files whose KEY is that key: "
                     f"{t.get('key_ok', 0)}/{files}")
    return "\n".join([
        f"round trip encode -> decode_arrays, {where}, time_mode={c.time_mode}, {settings}",
        f"files: {t.get('files', 0)} read, {t.get('skipped', 0)} skipped (unreadable or no notes)",
        f"notes read: {t.get('read', 0)}; start or end off the grid: {t.get('off_grid', 0)}"
        f" ({pct(t.get('off_grid', 0), t.get('read', 0))})",
        f"notes in (on the grid): {n_in}",
        f"notes out: {t.get('out', 0)} ({pct(t.get('out', 0), n_in)} of in; "
        f"{n_in - t.get('out', 0)} vanish: same pitch, instrument and onset as a longer note)",
        f"kept exactly (instrument, pitch, start, end): {t.get('exact', 0)} ({pct(t.get('exact', 0), n_in)})",
        f"onset kept, end cut by a later onset of the same pitch and instrument: "
        f"{t.get('onset', 0) - t.get('exact', 0)}",
        f"sounding time kept: {pct(t.get('time_out', 0), t.get('time_in', 0))}",
        f"files whose output equals the documented merge rule: {t.get('rule_ok', 0)}/{t.get('files', 0)}",
        f"events (tokens with BOS and EOS): {t.get('tokens', 0)}",
    ] + extra)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("dir", help="folder of music files (searched recursively)")
    parser.add_argument("--time-mode", choices=TIME_MODES, default="beat")
    parser.add_argument("--per-file", action="store_true", help="also list every file that loses a note")
    parser.add_argument("--voices", default="0",
                        help="VOICE events: N voices (0 = off), or auto = the most parts of any file")
    parser.add_argument("--voice-events", choices=("all", "implied"), default="all",
                        help="with --voices: VOICE at every change of voice, or only where a NOTE_OFF's pitch does "
                             "not name it (TokenizerConfig.voice_events)")
    parser.add_argument("--meter", action="store_true", help="TIME_SIG events (TokenizerConfig.meter)")
    parser.add_argument("--key-mode", choices=("token", "normalize"), default="", help="KEY event (TokenizerConfig.key)")
    args = parser.parse_args(argv)
    files = find_music_files(args.dir)
    voices = most_voices(files, args.time_mode) if args.voices == "auto" else int(args.voices)
    config = TokenizerConfig(voices=voices) if args.time_mode == "beat" else TokenizerConfig.seconds(voices=voices)
    config = config.replace(meter=args.meter, key=args.key_mode,
                            voice_events=args.voice_events if voices else "all")
    tok = Tokenizer(config)
    rows: list = []
    print(report(measure(files, tok, rows), f"{len(files)} music files under {args.dir}", tok))
    if args.per_file:
        print("file: notes in -> out, kept exactly")
        for path, n_in, n_out, exact in rows:
            if exact < n_in:
                print(f"  {path.relative_to(args.dir)}: {n_in} -> {n_out}, {exact}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
