"""Bundle → tokens → MIDI: the library call ``sample`` and the CLI handler ``cli_sample``.

Runs on numpy and pretty_midi alone (TensorFlow, Keras, music21 and matplotlib are never imported unless a primer is a
score file or ``--png`` is asked for). The sampling itself is ``sampler.sample_tokens``; this module validates the
settings, loads the bundle and the primer, decodes the tokens and writes the files (atomically, only after every
sample has been made, so nothing is written on failure).

BLAS runs on one thread while sampling (threadpoolctl): the step matmuls are small, and on a shared 2-core machine a
second OpenBLAS thread spin-waiting for a busy core made a batch of 64 ten times slower (benchmarks/RESULTS.md).

Example::

    import musicgen
    midis = musicgen.sample("trained/default", length=256, temperature=0.9, top_p=0.95, seed=1, num_samples=2)
    midis[0].write("a.mid")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen import __version__
from musicgen.config import SampleConfig
from musicgen.context import key_name, parse_key
from musicgen.errors import BundleError, IngestError, UsageError
from musicgen.midi_io import MIDI_SUFFIXES
from musicgen.safeio import atomic_paths, check_output_dir

DEFAULT_MODEL = "trained/default"
EVENTS_PER_STEP_CAP = 8  # with --seconds and no --length: at most this many events per grid step
# bounds that keep one call's memory and time finite (the sampler holds about 100 kB per sample and 4 B per event)
MAX_LENGTH = 1_000_000  # events per sample
MAX_NUM_SAMPLES = 1024
MAX_SECONDS = 24 * 3600.0
DEFAULT_MAX_NOTE_LENGTH = 8.0  # quarter notes; a fermata'd chorale whole note is 4–6
MAX_TEMPO = 60_000_000.0  # quarter notes per minute: 1 microsecond per quarter, the fastest tempo MIDI can write


@dataclass
class SampleResult:
    """What ``generate`` made: one entry per sample in ``tokens`` (int32 (T,), full sequences that were decoded),
    ``midis`` (``pretty_midi.PrettyMIDI``) and ``sidecars`` (JSON-able dicts)."""

    tokens: list[np.ndarray]
    midis: list
    sidecars: list[dict]
    seconds: float = 0.0
    settings: dict = field(default_factory=dict)


def _usage(cond: bool, message: str) -> None:
    if not cond:
        raise UsageError(message)


def resolve_model_path(path: str | os.PathLike | None) -> Path:
    """``--model`` as given; the default ``trained/default`` is also looked up beside the package's source tree."""
    p = Path(path if path is not None else DEFAULT_MODEL)
    if not p.exists() and str(path or DEFAULT_MODEL) == DEFAULT_MODEL:
        beside = Path(__file__).resolve().parents[1] / DEFAULT_MODEL
        if beside.exists():
            return beside
    _usage(p.exists(), f"--model: no bundle at {str(p)!r} (train one with `musicgen train CORPUS --out {p}`, "
                       f"or pass --model PATH)")
    return p


def load_model(bundle_or_path):
    """A ``Bundle`` as is, or a bundle folder loaded with ``bundle.load_bundle``; problems are ``UsageError``."""
    from musicgen.bundle import Bundle, load_bundle

    if isinstance(bundle_or_path, Bundle):
        return bundle_or_path
    path = resolve_model_path(bundle_or_path)
    try:
        return load_bundle(path)
    except BundleError as exc:
        raise UsageError(f"--model: {exc}") from None


def load_primer(primer, tokenizer) -> tuple[np.ndarray, float | None, str | None]:
    """``primer`` (a MIDI/score path, or an int token array) → ``(tokens without EOS, qpm or None, sha256 or None)``.

    Score files (MusicXML/ABC/kern) import music21. Raises ``UsageError`` naming ``--primer`` for anything unreadable.
    """
    if primer is None:
        return np.array([tokenizer.bos_id], np.int64), None, None
    if isinstance(primer, (str, os.PathLike)):
        from musicgen.reader import read_piece

        path = Path(primer)
        _usage(path.is_file(), f"--primer: no such file {str(path)!r}")
        try:
            piece = read_piece(path, tokenizer.config.time_mode)
            tokens = tokenizer.encode(piece)
        except (IngestError, UsageError) as exc:
            raise UsageError(f"--primer: cannot use {str(path)!r}: {exc}") from None
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        qpm = piece.qpm
    else:
        tokens, qpm, digest = np.asarray(primer), None, None
        _usage(tokens.ndim == 1 and tokens.size > 0 and np.issubdtype(tokens.dtype, np.integer)
               and tokens.min() >= 0 and tokens.max() < tokenizer.vocab_size,
               f"primer: expected a file path or a non-empty 1-D array of ids in [0, {tokenizer.vocab_size})")
    tokens = tokens.astype(np.int64)
    eos = np.flatnonzero(tokens == tokenizer.eos_id)
    tokens = tokens[:eos[0]] if eos.size else tokens
    if tokens.size == 0 or tokens[0] != tokenizer.bos_id:
        tokens = np.concatenate([[tokenizer.bos_id], tokens])
    return tokens, qpm, digest


def one_blas_thread():
    """Context manager limiting BLAS to one thread (no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _context_tokens(primer: np.ndarray, tokenizer) -> list[int]:
    """BOS plus the KEY, VOICE, PROGRAM and VELOCITY in force at the primer's end, so a continuation decodes alone (no
    primer). The meter is not repeated: a TIME_SIG at the continuation's start would put a bar line there."""
    out = [tokenizer.bos_id]
    for name in ("KEY", "VOICE", "PROGRAM", "VELOCITY"):
        if name in tokenizer.ranges:
            first, size = tokenizer.ranges[name]
            hits = primer[(primer >= first) & (primer < first + size)]
            if hits.size:
                out.append(int(hits[-1]))
    return out


def _check_bounds(length, num_samples) -> None:
    _usage(length is None or not isinstance(length, int) or length <= MAX_LENGTH,
           f"length: expected at most {MAX_LENGTH} events per sample, got {length!r}")
    _usage(not isinstance(num_samples, int) or num_samples <= MAX_NUM_SAMPLES,
           f"num_samples: expected at most {MAX_NUM_SAMPLES} samples per call, got {num_samples!r}")


def generate(bundle_or_path=None, length: int | None = None, temperature: float = 1.0, top_k: int = 0,
             top_p: float = 1.0, seed: int | None = None, primer=None, num_samples: int = 1, *,
             seconds: float | None = None, keep_primer: bool = True, max_polyphony: int = 0,
             pitch_range: tuple[int, int] | None = None, allow_eos: bool = False, tempo: float | None = None,
             program: int | None = None, max_note_length: float = DEFAULT_MAX_NOTE_LENGTH,
             well_formed: bool = True, key: str | None = None) -> SampleResult:
    """Sample ``num_samples`` pieces; see ``sample`` for the arguments. Returns tokens, MIDI and sidecars."""
    from musicgen.sampler import StepModel, sample_tokens

    seed = secrets.randbits(31) if seed is None else seed
    _check_bounds(length, num_samples)
    SampleConfig(length=length if length is not None else 1, temperature=temperature, top_k=top_k, top_p=top_p,
                 seed=seed, num_samples=num_samples, max_polyphony=max_polyphony)  # validates, names the field
    _usage(seed >= 0, f"seed: expected an integer >= 0, got {seed!r}")
    _usage(math.isfinite(temperature), f"temperature: expected a finite number > 0, got {temperature!r}")
    _usage(seconds is None or (isinstance(seconds, (int, float)) and 0 < seconds <= MAX_SECONDS),
           f"seconds: expected a positive number up to {MAX_SECONDS:.0f}, got {seconds!r}")
    _usage(tempo is None or (isinstance(tempo, (int, float)) and 0 < tempo <= MAX_TEMPO),
           f"tempo: expected a positive number of quarter notes per minute up to {MAX_TEMPO:.0f}, got {tempo!r}")
    _usage(program is None or (isinstance(program, int) and 0 <= program <= 127),
           f"program: expected a General MIDI program in [0, 127], got {program!r}")
    _usage(isinstance(max_note_length, (int, float)) and 0 <= max_note_length <= MAX_SECONDS,
           f"max_note_length: expected a number of quarter notes >= 0 (0 = no limit), got {max_note_length!r}")
    if pitch_range is not None:
        lo, hi = pitch_range
        _usage(0 <= lo <= hi <= 127, f"pitch_range: expected 0 <= LO <= HI <= 127, got {lo} {hi}")
    bundle = load_model(bundle_or_path)
    tok = bundle.tokenizer
    key_value = _key_setting(key, tok, bundle.path, primer, program)
    primer_tokens, primer_qpm, primer_sha = load_primer(primer, tok)
    if program is not None and "PROGRAM" in tok.ranges and primer is None:
        primer_tokens = np.append(primer_tokens, tok.token("PROGRAM", program))
    qpm = float(tempo or primer_qpm or 120.0)
    cfg = tok.config
    step_seconds = cfg.step_seconds if cfg.time_mode == "seconds" else 60.0 / (qpm * cfg.steps_per_quarter)
    limit_steps = None if seconds is None else max(1, math.ceil(seconds / step_seconds - 1e-9))
    max_note_steps = max(1, round(max_note_length * 60.0 / qpm / step_seconds)) if max_note_length else 0
    if length is None:
        length = 512 if limit_steps is None else min(MAX_LENGTH, max(512, EVENTS_PER_STEP_CAP * limit_steps))

    started = time.perf_counter()
    with one_blas_thread():
        model = StepModel(bundle.weights, bundle.model_config, tokenizer=tok)
        events = sample_tokens(model, bundle.model_config, tok, primer_tokens, length, seed, key=key_value,
                               num_samples=num_samples, temperature=temperature, top_k=top_k, top_p=top_p,
                               max_polyphony=max_polyphony, pitch_range=pitch_range, allow_eos=allow_eos,
                               limit_steps=limit_steps, max_note_steps=max_note_steps, well_formed=well_formed,
                               start_state=bundle.start_state)
    head = primer_tokens if keep_primer else np.array(_context_tokens(primer_tokens, tok))
    settings = dict(length=length, seconds=seconds, temperature=temperature, top_k=top_k, top_p=top_p,
                    num_samples=num_samples, max_polyphony=max_polyphony,
                    pitch_range=list(pitch_range) if pitch_range else None, allow_eos=allow_eos,
                    primer=str(Path(primer).resolve()) if isinstance(primer, (str, os.PathLike)) else None, primer_sha256=primer_sha,
                    primer_events=int(primer_tokens.size - 1), keep_primer=keep_primer, tempo=qpm, program=program,
                    max_note_length=max_note_length, well_formed=well_formed,
                    key=None if key_value is None else key_name(key_value))
    result = SampleResult([], [], [], settings=settings)
    for i, row in enumerate(events):
        full = np.concatenate([head, row[row != tok.pad_id], [tok.eos_id]]).astype(np.int32)
        midi = tok.decode(full, qpm=qpm)
        if program is not None and "PROGRAM" not in tok.ranges:
            for inst in midi.instruments:
                inst.program = program if not inst.is_drum else inst.program
        result.tokens.append(full)
        result.midis.append(midi)
        found = _key_and_meter(full, tok)
        result.sidecars.append(dict(**found,
            musicgen_version=__version__, model=str(Path(bundle.path).resolve()),
            model_weights_sha256=bundle.info.get("files", {}).get("weights.npz"),
            model_start_state_sha256=bundle.info.get("files", {}).get("start_state.npz"), seed=seed, sample_index=i,
            settings=settings, events=int((row != tok.pad_id).sum()),
            notes=sum(len(inst.notes) for inst in midi.instruments), duration_seconds=round(midi.get_end_time(), 6),
            tempo_written=written_tempo(midi),
            regenerate=_command(bundle.path, seed, dict(settings, key=found.get("key") if primer is None else None))))
    result.seconds = time.perf_counter() - started
    return result


def _key_setting(key, tok, path, primer, program) -> int | None:
    """``--key`` checked against the bundle and the other options → its KEY value (None: the model draws it)."""
    if "KEY" in tok.ranges and program is not None and primer is None:
        raise UsageError(f"--program: the bundle {str(path)!r} has a key mode, where the event after BOS is a KEY; "
                         f"leave --program out (the model chooses its programs)")
    if key is None:
        return None
    _usage("KEY" in tok.ranges, f"--key: the bundle {str(path)!r} was trained without a key mode (no KEY events)")
    _usage(primer is None, "--key: not with --primer (the primer's own KEY event names its key)")
    return parse_key(key)


def _key_and_meter(tokens: np.ndarray, tok) -> dict:
    """``{"key": "D minor", "meter": "3/4"}``: the first KEY and TIME_SIG of a sample, for vocabularies that have
    them (None when the sample has none)."""
    from musicgen.tokenizer import time_signature_of

    out = {}
    for name in ("KEY", "TIME_SIG"):
        if name in tok.ranges:
            first, size = tok.ranges[name]
            hits = tokens[(tokens >= first) & (tokens < first + size)]
            value = int(hits[0]) - first if hits.size else None
            if name == "KEY":
                out["key"] = None if value is None else key_name(value)
            else:
                out["meter"] = None if value is None else "{}/{}".format(*time_signature_of(value))
    return out


def written_tempo(midi) -> float:
    """The first tempo of ``midi`` as its MIDI file holds it (whole microseconds per quarter), in quarter notes per
    minute to 3 decimals: ``settings.tempo`` unless it was clamped to what a file can hold (or lowered so the last
    tick fits, see ``midi_io.arrays_to_pretty_midi``)."""
    qpm = float(midi.get_tempo_changes()[1][0])
    return round(60e6 / int(60e6 / qpm), 3)


def _command(model_path, seed: int, s: dict) -> str:
    """The ``musicgen sample`` command line that regenerates a sample (pick it by index from a batch)."""
    parts = ["musicgen", "sample", "--model", str(model_path), "--seed", str(seed), "--length", str(s["length"]),
             "--temperature", repr(s["temperature"]), "--top-k", str(s["top_k"]), "--top-p", repr(s["top_p"]),
             "--num-samples", str(s["num_samples"]), "--tempo", repr(s["tempo"])]
    if s["seconds"] is not None:
        parts += ["--seconds", repr(s["seconds"])]
    if s["max_polyphony"]:
        parts += ["--max-polyphony", str(s["max_polyphony"])]
    if s["max_note_length"] != DEFAULT_MAX_NOTE_LENGTH:
        parts += ["--max-note-length", repr(s["max_note_length"])]
    if s["pitch_range"]:
        parts += ["--pitch-range", str(s["pitch_range"][0]), str(s["pitch_range"][1])]
    if s["allow_eos"]:
        parts.append("--allow-eos")
    if s["primer"]:
        parts += ["--primer", s["primer"]] + ([] if s["keep_primer"] else ["--no-keep-primer"])
    if s["program"] is not None:
        parts += ["--program", str(s["program"])]
    if s.get("key"):  # this sample's key, given or drawn: with the same seed it draws the same events
        parts += ["--key", s["key"]]
    return shlex.join(parts)


def sample(bundle_or_path=None, length: int | None = None, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, seed: int | None = None, primer=None, num_samples: int = 1, **options) -> list:
    """Sample new music from a trained bundle (numpy only; usable from notebooks).

    Args:
        bundle_or_path: a ``Bundle`` or a bundle folder (default ``trained/default``).
        length: events to generate per sample, not counting the primer (None: 512); with ``seconds`` an upper
            bound (None: 8 events per grid step).
        temperature: > 0; divides the logits: < 1 is more conservative, > 1 more adventurous.
        top_k: keep only the k most likely events at each step (0: all).
        top_p: nucleus sampling, keep the most likely events until their probability reaches p, in (0, 1].
        seed: RNG seed; the same seed and settings give the same notes (None: a random seed, see the sidecar).
        primer: MIDI/score file path or int token array to continue.
        num_samples: samples generated together as one batch.
        **options: ``seconds`` (stop each sample after this much music), ``keep_primer`` (True: the primer opens
            the output), ``max_polyphony`` (0: no cap), ``pitch_range`` ((lo, hi) MIDI pitches for new notes),
            ``allow_eos`` (let the model end a sample early), ``max_note_length`` (quarter notes a note may sound
            before its end is forced, default 8; 0: no limit), ``tempo`` (quarter notes per minute written to the
            file, default the primer's or 120), ``program`` (GM program where the model does not choose one),
            ``well_formed`` (False: no NOTE_ON/NOTE_OFF consistency masks, see ``sampler.EventRules``; library only,
            the sidecar's ``regenerate`` line cannot express it), ``key`` (a key name such as ``"D minor"`` for
            every sample of a key-mode bundle; default: the model draws each key; the sidecar records it).

    Returns:
        ``list[pretty_midi.PrettyMIDI]``, one per sample.

    Raises:
        UsageError: an invalid value (naming it), a missing or inconsistent bundle, an unreadable primer.
    """
    return generate(bundle_or_path, length, temperature, top_k, top_p, seed, primer, num_samples,
                    **options).midis


# ------------------------------------------------------------------------------------------------------------ CLI
def output_paths(output: str | os.PathLike, count: int) -> list[Path]:
    """``-o`` → one path per sample: a .mid/.midi file (numbered ``NAME-01.mid`` … when several), or a folder
    (``sample.mid``, or ``sample-01.mid`` … when several)."""
    out = Path(output)
    if out.suffix.lower() in MIDI_SUFFIXES:
        folder, stem, suffix = out.parent, out.stem, out.suffix
        _usage(folder == Path("") or folder.is_dir(), f"-o/--output: folder {str(folder)!r} does not exist")
    else:
        _usage(not out.is_file(), f"-o/--output: {str(out)!r} is a file without a .mid suffix")
        folder, stem, suffix = check_output_dir(out, "-o/--output"), "sample", ".mid"
    if count == 1:
        return [folder / f"{stem}{suffix}"]
    width = max(2, len(str(count)))
    return [folder / f"{stem}-{i + 1:0{width}d}{suffix}" for i in range(count)]


def write_outputs(result: SampleResult, paths: list[Path]) -> None:
    """Write every MIDI file and its JSON sidecar atomically (temporary names first, then renames)."""
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    targets = [t for path in paths for t in (path, path.with_suffix(".json"))]
    with atomic_paths(*targets) as temps:
        for midi, sidecar, path, tmp_mid, tmp_json in zip(result.midis, result.sidecars, paths, temps[::2],
                                                          temps[1::2]):
            midi.write(str(tmp_mid))
            tmp_json.write_text(json.dumps(dict(sidecar, midi=path.name), indent=2, sort_keys=True) + "\n")


def cli_sample(args) -> int:
    """``musicgen sample``: validate, sample, then write MIDI + JSON sidecars (and WAV/PNG on request)."""
    pitch_range = tuple(args.pitch_range) if args.pitch_range else None
    _check_bounds(args.length, args.num_samples)
    SampleConfig(num_samples=args.num_samples)  # validated before the output names are made from it
    paths = output_paths(args.output, args.num_samples)
    for flag in ("wav", "png"):  # a bad place for them fails now, not after sampling
        if isinstance(getattr(args, flag, None), str):
            check_output_dir(Path(getattr(args, flag)).parent, f"--{flag}")
    result = generate(args.model, args.length, args.temperature, args.top_k, args.top_p, args.seed, args.primer,
                      args.num_samples, seconds=args.seconds, keep_primer=args.keep_primer,
                      max_polyphony=args.max_polyphony, pitch_range=pitch_range, allow_eos=args.allow_eos,
                      tempo=args.tempo, program=args.program, max_note_length=args.max_note_length,
                      key=getattr(args, "key", None))
    write_outputs(result, paths)
    events = sum(s["events"] for s in result.sidecars)
    for path, sidecar in zip(paths, result.sidecars):
        print(f"{path}  ({sidecar['events']} events, {sidecar['notes']} notes, {sidecar['duration_seconds']:.1f} s)")
    print(f"sampled {events} events in {result.seconds:.2f} s (seed {result.sidecars[0]['seed']})", file=sys.stderr)
    if getattr(args, "wav", None) or getattr(args, "png", None):
        from musicgen.render import render_outputs

        single = len(paths) == 1
        for midi, path in zip(result.midis, paths):
            written = render_outputs(midi, path, wav=args.wav if single else bool(args.wav),
                                     png=args.png if single else bool(args.png),
                                     soundfont=getattr(args, "soundfont", None),
                                     sample_rate=getattr(args, "sample_rate", 44100),
                                     require_soundfont=getattr(args, "require_soundfont", False),
                                     time_unit=getattr(args, "time_unit", "beats"))
            for out in written.values():
                print(out)
    return 0
