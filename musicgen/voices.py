"""Voices: choose ``TokenizerConfig.voices`` (N, or ``auto``) at ingest and record the corpus's
``voice_polyphony``; count the training pieces' voices and draw each sample's voice cap from them.

``musicgen ingest DIR --voices N|auto`` (and ``musicgen train DIR --voices …``) tokenize with VOICE events and then
measure, from the tokens themselves, each piece's *voice polyphony*: the most notes one of its voices sounds at once
(on the grid, after decoding: a legato overlap of one grid step counts). The smallest cap that at least
``POLYPHONY_SHARE`` (98%) of the pieces keep is stored in the cache's ``tokenizer.json`` as ``voice_polyphony`` and
travels into the bundle, where ``EventRules`` caps each voice at it: 1 means the parts of the corpus are monophonic
(a few odd pieces aside), so a sample keeps one note per voice. The Bach chorales (/work/data/bach): 406 of 410 pieces
have monophonic parts, so 1. ``auto`` is the most voices any piece uses, at most ``MAX_VOICES`` (15 for the chorales).

How: the corpus is first ingested with ``voices = N`` (``auto``: ``MAX_VOICES``) and no polyphony recorded; when the
measured config differs, the entry packs are shared with it (the same ids: a smaller N only drops VOICE ids no
piece uses; with meter or key, whose ranges follow VOICE, the packs are rewritten with the new ids) and ingest runs
again with it, reusing every pack, so each
file is parsed once. A rerun parses nothing but rewrites tokens.npz and the manifest twice.

Voices at sampling (``voice_counts``, ``draw_voice_caps``): a model trained on a corpus that is mostly four-part (the
Bach chorales: 365 of 410 files) but holds a few pieces of 5-15 parts drifts into many-part textures more often than
its corpus does, and there its notes hang until ``max_note_length`` ends them (docs/quality_default.md). So
``musicgen train`` records how many training pieces use each number of voices (``metrics.json`` → ``voice_pieces``,
``{"4": 270, "5": 12, ...}``) and ``musicgen sample`` draws each sample's cap from those counts: the sample writes
VOICE events 0..cap-1 only (``rules.EventRules(max_voices=...)``), so its texture is distributed like the corpus's.
``--voices N`` fixes the cap, ``--voices 0`` lifts it, a primer's own voices set it; a bundle without the record
samples without a cap.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from musicgen.config import MAX_VOICES, TokenizerConfig
from musicgen.errors import UsageError

AUTO = "auto"
POLYPHONY_SHARE = 0.98  # voice_polyphony: the smallest cap that at least this share of the pieces keep
METRIC = "voice_pieces"  # metrics.json: {voices used (as a string): training pieces}
VOICES_SALT = 0x70CE5  # mixed into the sample seed for the cap draws: the event draws stay as they were


def parse_voices(text: str) -> int | str:
    """``--voices`` value: an integer in [0, MAX_VOICES] (0 = off) or ``"auto"``; else ``UsageError``."""
    if str(text).strip().lower() == AUTO:
        return AUTO
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = -1
    if not 0 <= n <= MAX_VOICES:
        raise UsageError(f"--voices: expected an integer in [0, {MAX_VOICES}] or 'auto', got {text!r}")
    return n


def voice_stats(tokenizer, pieces) -> tuple[int, np.ndarray]:
    """``(voices used, polyphony)`` of token pieces: 1 + the highest voice of any decoded note (0 without notes), and
    int64 (n,): per piece, the most notes sounding at once in one of its voices (decoded, on the grid; a note that
    ends on the step another starts does not overlap it; 0 for a piece without notes)."""
    used, most = 0, np.zeros(len(pieces), np.int64)
    for i, tokens in enumerate(pieces):
        a = tokenizer.decode_arrays(tokens)
        if not a["pitch"].size:
            continue
        used = max(used, int(a["voice"].max()) + 1)
        n = a["pitch"].size  # +1 at each start, -1 at each end; per voice, ends before starts at one step
        time = np.concatenate([a["start"], a["end"]])
        is_start = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
        order = np.lexsort((is_start, time, np.tile(a["voice"], 2)))
        most[i] = np.cumsum(2 * is_start[order] - 1).max()  # each voice's events sum to 0
    return used, most


def polyphony_cap(polyphony: np.ndarray, share: float = POLYPHONY_SHARE) -> int:
    """The smallest cap k >= 1 that at least ``share`` of the pieces keep (``polyphony <= k``); 1 when empty."""
    values = np.sort(np.asarray(polyphony, np.int64))
    if not values.size:
        return 1
    return max(1, int(values[max(0, int(np.ceil(share * values.size)) - 1)]))


def _id_map(source: TokenizerConfig, target: TokenizerConfig) -> np.ndarray | None:
    """int64 (source vocab,): each id of ``source``'s vocabulary as ``target``'s id of the same event (a VOICE
    beyond target's last shares it, as encoding does), or None when the ids are the same (the ranges after VOICE,
    TIME_SIG, KEY and STYLE, move when the number of voices does)."""
    from musicgen.tokenizer import Tokenizer

    a, b = Tokenizer(source), Tokenizer(target)
    if not (source.meter or source.key or source.styles) or a.ranges == b.ranges:
        return None
    out = np.zeros(a.vocab_size, np.int64)
    for i in range(a.vocab_size):
        name, value = a.describe(i)
        out[i] = b.token(name, min(value, target.voices - 1) if name == "VOICE" else value)
    return out


def _share_packs(out: Path, source: TokenizerConfig, target: TokenizerConfig) -> None:
    """Make the entry packs of ``source`` those of ``target`` too (hard links where possible, else copies; rewritten
    with ``target``'s ids when they differ)."""
    from musicgen.cache import config_hash
    from musicgen.safeio import save_npz

    src, dst = out / "entries" / config_hash(source), out / "entries" / config_hash(target)
    dst.mkdir(parents=True, exist_ok=True)
    remap = _id_map(source, target)
    for pack in src.glob("*.npz"):
        if (dst / pack.name).exists():
            continue
        if remap is not None:
            try:
                with np.load(pack, allow_pickle=False) as z:
                    arrays = {k: z[k] for k in z.files}
                arrays["values"] = remap[arrays["values"]].astype(np.int32)
            except Exception:  # a damaged pack: left out, its files are tokenized again
                continue
            save_npz(dst / pack.name, **arrays)
            continue
        try:
            os.link(pack, dst / pack.name)
        except OSError:
            shutil.copyfile(pack, dst / pack.name)


def ingest_voices(corpus_dir, out_dir=None, config: TokenizerConfig | None = None, voices: int | str = AUTO,
                  workers: int = 0, progress: bool = True, voice_events: str | None = None, **engine):
    """``corpus.ingest`` with voices; returns ``(IngestReport, TokenizerConfig, polyphony)``: the config the cache now
    holds and ``voice_stats``'s int64 (kept pieces,) most notes at once in one voice of each piece.

    Args:
        corpus_dir, out_dir, workers, progress: as ``corpus.ingest``; ``engine`` (``engine``, ``beam_options``)
            too.
        config: the base tokenizer config (its ``voices`` and ``voice_polyphony`` are replaced).
        voices: N >= 1, or ``"auto"`` (the most voices any piece uses).
        voice_events: ``"all"`` or ``"implied"`` (``TokenizerConfig.voice_events``); None: ``config``'s.
    """
    from musicgen.cache import load_tokens
    from musicgen.corpus import ingest
    from musicgen.tokenizer import Tokenizer

    voices = parse_voices(voices)
    if voices == 0:
        raise UsageError("--voices: expected at least 1 voice or 'auto' here, got 0")
    base = config or TokenizerConfig()
    probe = base.replace(voices=MAX_VOICES if voices == AUTO else voices, voice_polyphony=0,
                         voice_events=voice_events or base.voice_events)
    report = ingest(corpus_dir, out_dir, probe, workers=workers, progress=progress, **engine)
    used, polyphony = voice_stats(Tokenizer(probe), load_tokens(report.out_dir).pieces)
    final = probe.replace(voices=max(used, 1) if voices == AUTO else voices, voice_polyphony=polyphony_cap(polyphony))
    if final != probe:
        _share_packs(report.out_dir, probe, final)
        parsed = report.tokenized
        report = ingest(corpus_dir, out_dir, final, workers=workers, progress=progress, **engine)
        report.tokenized, report.reused = report.tokenized + parsed, report.reused - parsed
    return report, final, polyphony


def tokens_with_voices(source, config: TokenizerConfig | None, voices: int | str, progress: bool = False,
                       voice_events: str | None = None):
    """``corpus.tokens_for`` with ``--voices`` (and ``--voice-events``, None: the default or the cache's): a music
    folder is ingested by ``ingest_voices`` (0: voices off); a token cache is used as is when its voices agree
    (``auto``: any N >= 1), else ``UsageError``."""
    from musicgen.corpus import is_token_cache, tokens_for

    voices = parse_voices(voices)
    if is_token_cache(source):
        tokens = tokens_for(source, None)
        have = tokens.tokenizer_config.voices
        if (voices == AUTO and have == 0) or (voices != AUTO and have != voices):
            raise UsageError(f"--voices: token cache {str(source)!r} was made with voices={have}, wanted {voices}; "
                             f"ingest the music folder with the wanted setting instead")
        if voice_events is not None and voice_events != tokens.tokenizer_config.voice_events:
            raise UsageError(f"--voice-events: token cache {str(source)!r} was made with voice_events="
                             f"{tokens.tokenizer_config.voice_events!r}; ingest the music folder with the wanted "
                             f"setting instead")
        if config is not None and config.time_mode != tokens.tokenizer_config.time_mode:
            return tokens_for(source, config)  # names the differing fields
        return tokens
    if voices == 0:
        if voice_events == "implied":
            raise UsageError("--voice-events: implied needs --voices N (N >= 1) or auto")
        return tokens_for(source, (config or TokenizerConfig()).replace(voices=0, voice_polyphony=0,
                                                                        voice_events="all"), progress=progress)
    _, final, _ = ingest_voices(source, None, config, voices, progress=progress, voice_events=voice_events)
    return tokens_for(source, final, progress=progress)


def describe(config: TokenizerConfig, polyphony: np.ndarray | None = None) -> str:
    """One line on the voices of ``config`` for the CLI; ``polyphony`` (``voice_stats``'s) adds how many pieces keep
    the cap."""
    if not config.voices:
        return "voices: off"
    cap = ("one note at a time in each voice (monophonic parts)" if config.voice_polyphony == 1
           else f"at most {config.voice_polyphony} notes at once in one voice")
    if polyphony is not None:
        cap += f" in {int((polyphony <= config.voice_polyphony).sum())} of {len(polyphony)} pieces"
    return f"voices: {config.voices}, {cap}"


def piece_voices(tokens, tokenizer) -> int:
    """Voices a piece uses: 1 + its highest VOICE value (int ids, shape (T,)); 0 without VOICE events."""
    values = tokenizer.values_of(tokens, "VOICE")
    return int(values.max()) + 1 if values.size else 0


def voice_counts(pieces: Iterable, tokenizer) -> dict[str, int]:
    """``{voices used: pieces}`` over token pieces, keys as strings in increasing order (JSON object keys); pieces
    without VOICE events are left out, so a vocabulary without voices gives ``{}``."""
    counts: dict[int, int] = {}
    for tokens in pieces:
        n = piece_voices(tokens, tokenizer)
        if n:
            counts[n] = counts.get(n, 0) + 1
    return {str(n): counts[n] for n in sorted(counts)}


def draw_voice_caps(counts: dict | None, seed: int, count: int) -> np.ndarray | None:
    """int64 (count,): a voice cap per sample drawn from ``counts`` (``voice_counts``' form) by an RNG of its own
    (seed mixed with ``VOICES_SALT``; draw i depends on ``seed`` and i alone); None without counts. The draw maps
    onto the counts in their dict order: a bundle's ``metrics.json`` holds them as JSON sorts its keys ("12" before
    "4"), which is the order ``musicgen sample`` draws in."""
    from musicgen.styles import draw_counted

    return draw_counted(counts, int, seed, count, VOICES_SALT)


def sample_voice_caps(config, bundle, primer_tokens, count: int, styles=None) -> np.ndarray | None:
    """``config.voices`` (a ``SampleConfig``'s, ``--voices``) checked against the bundle → int64 (count,) voice caps
    (None: no cap). Without ``--voices``: a primer's own voices, else ``count`` draws from the training pieces' voice
    counts (``voice_pieces``, recorded by ``musicgen train``; a bundle without them gets no cap), each from its
    sample's style's pieces where ``styles`` (STYLE values, one or one per sample) and the bundle's per-style counts
    say (``styles.draw_for_styles``)."""
    tok = bundle.tokenizer
    if "VOICE" not in tok.ranges:
        if config.voices:
            raise UsageError(f"--voices: the bundle {str(bundle.path)!r} has no VOICE events (trained without "
                             f"--voices); leave --voices out")
        return None
    if config.voices is not None:
        return np.full(count, config.voices, np.int64) if config.voices else None
    own = 0 if primer_tokens is None else piece_voices(primer_tokens, tok)
    if own:
        return np.full(count, own, np.int64)
    from musicgen.styles import draw_for_styles

    return draw_for_styles(bundle.metrics, METRIC, draw_voice_caps, config.seed, count, styles,
                           bundle.tokenizer_config.styles)
