"""Bundle → tokens → MIDI: the library call ``sample`` and the CLI handler ``cli_sample``.

Runs on numpy and pretty_midi alone (TensorFlow, Keras, music21 and matplotlib are never imported unless a primer is a
score file or ``--png`` is asked for). The sampling itself is ``sampler.sample_tokens``; this module validates the
settings, loads the bundle and the primer, decodes the tokens and writes the files (atomically, only after every
sample has been made, so nothing is written on failure). What each sidecar says about its sample (key, meter, style,
written tempo, the command that regenerates it) is ``musicgen.sidecar``.

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
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen import __version__, voices
from musicgen.config_sample import MAX_LENGTH, SampleConfig
from musicgen.meter import key_name, parse_key
from musicgen.errors import BundleError, IngestError, UsageError
from musicgen.midi_io import MIDI_SUFFIXES
from musicgen.piece import DRUMS
from musicgen.safeio import atomic_paths, check_output_dir
from musicgen.sidecar import _key_and_meter, regenerate_command, written_tempo  # noqa: F401 (re-exported)

DEFAULT_MODEL = "trained/default"
EVENTS_PER_STEP_CAP = 8  # with --seconds and no --length: at most this many events per grid step


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
    """BOS plus the STYLE, KEY, VOICE, PROGRAM and VELOCITY in force at the primer's end, so a continuation decodes
    alone (no primer). The meter is not repeated: a TIME_SIG at the continuation's start would put a bar line there."""
    return [tokenizer.bos_id] + tokenizer.in_force(primer, ("STYLE", "KEY", "VOICE", "PROGRAM", "VELOCITY"))


def generate(bundle_or_path=None, config: SampleConfig | None = None, *, primer=None, **settings) -> SampleResult:
    """Sample ``config.num_samples`` pieces (``config``: a ``SampleConfig``, or its fields as keywords).

    Returns tokens, MIDI and sidecars; each sidecar's ``settings`` is the config as used (seed, length, tempo and key
    resolved) plus the primer's facts, and its ``regenerate`` line is ``regenerate_command`` of that config.
    """
    from musicgen.sampler import StepModel, sample_tokens

    _usage(config is None or isinstance(config, SampleConfig), f"config: expected a SampleConfig, got {config!r} "
                                                                 f"(pass length=... as a keyword)")
    config = SampleConfig(**settings) if config is None else config.replace(**settings)
    bundle = load_model(bundle_or_path)
    tok = bundle.tokenizer
    key_value = _key_setting(config, tok, bundle.path, primer)
    programs = _program_setting(config, tok, bundle.path)
    primer_tokens, primer_qpm, primer_sha = load_primer(primer, tok)
    if config.program is not None and "PROGRAM" in tok.ranges and primer is None:
        primer_tokens = np.append(primer_tokens, tok.token("PROGRAM", config.program))
    qpm = float(config.tempo or primer_qpm or 120.0)
    cfg = tok.config
    step_seconds = cfg.step_seconds if cfg.time_mode == "seconds" else 60.0 / (qpm * cfg.steps_per_quarter)
    limit_steps = None if config.seconds is None else max(1, math.ceil(config.seconds / step_seconds - 1e-9))
    max_note_steps = max(1, round(config.max_note_length * 60.0 / qpm / step_seconds)) if config.max_note_length \
        else 0
    length = config.length
    if length is None:
        length = 512 if limit_steps is None else min(MAX_LENGTH, max(512, EVENTS_PER_STEP_CAP * limit_steps))
    used = config.replace(length=length, tempo=qpm, seed=secrets.randbits(31) if config.seed is None else config.seed,
                          key=None if config.key is None else key_name(parse_key(config.key)))
    steering = _steering(used, tok, step_seconds, key_value)
    shared = primer is not None or (config.program is not None and "PROGRAM" in tok.ranges)  # one head for all
    styles = _style_setting(used, bundle, primer_tokens if primer is not None else None,
                            1 if shared else used.num_samples)
    if styles is not None and shared:
        from musicgen.styles import with_style

        primer_tokens = with_style(primer_tokens, tok, int(styles[0]))

    voice_caps = voices.sample_voice_caps(used, bundle, primer_tokens if primer is not None else None, used.num_samples,
                                          styles)
    keys = key_value if "KEY" in tok.ranges else None
    if keys is None and "KEY" in tok.ranges and primer is None:  # each sample's KEY from its style's training keys
        from musicgen.keys import METRIC, draw_keys
        from musicgen.styles import draw_for_styles

        keys = draw_for_styles(bundle.metrics, METRIC, draw_keys, used.seed, used.num_samples, styles,
                               bundle.tokenizer_config.styles)
    started = time.perf_counter()
    with one_blas_thread():
        model = StepModel(bundle.weights, bundle.model_config, tokenizer=tok)
        events = sample_tokens(model, bundle.model_config, tok, primer_tokens, length, used.seed,
                               key=keys, num_samples=used.num_samples,
                               temperature=used.temperature, top_k=used.top_k, top_p=used.top_p,
                               max_polyphony=used.max_polyphony, pitch_range=used.pitch_range,
                               allow_eos=used.allow_eos, limit_steps=limit_steps, max_note_steps=max_note_steps,
                               well_formed=used.well_formed, start_state=bundle.start_state, programs=programs,
                               steering=steering, style=None if shared else styles, max_voices=voice_caps)
    head = primer_tokens if used.keep_primer else np.array(_context_tokens(primer_tokens, tok))
    primer_path = str(Path(primer).resolve()) if isinstance(primer, (str, os.PathLike)) else None
    settings = dict(used.to_dict(), primer=primer_path, primer_sha256=primer_sha,
                    primer_events=int(primer_tokens.size - 1))
    decode_program = used.program if used.program is not None else (
        used.instruments[0] if used.instruments and "PROGRAM" not in tok.ranges else None)
    result = SampleResult([], [], [], settings=settings)
    for i, row in enumerate(events):
        full = np.concatenate([head, row[row != tok.pad_id], [tok.eos_id]]).astype(np.int32)
        midi = tok.decode(full, qpm=qpm)
        if decode_program is not None and "PROGRAM" not in tok.ranges:
            for inst in midi.instruments:
                inst.program = decode_program if not inst.is_drum else inst.program
        result.tokens.append(full)
        result.midis.append(midi)
        found = _key_and_meter(full, tok)
        drawn = used.replace(key=found.get("key")) if "KEY" in tok.ranges and primer is None else used
        drawn = drawn.replace(style=found["style"]) if "STYLE" in tok.ranges else drawn
        if voice_caps is not None:
            found["voices"] = int(voice_caps[i])
            drawn = drawn.replace(voices=int(voice_caps[i]))
        result.sidecars.append(dict(**found,
            musicgen_version=__version__, model=str(Path(bundle.path).resolve()),
            model_weights_sha256=bundle.info.get("files", {}).get("weights.npz"),
            model_start_state_sha256=bundle.info.get("files", {}).get("start_state.npz"), seed=used.seed,
            sample_index=i, settings=settings, events=int((row != tok.pad_id).sum()),
            notes=sum(len(inst.notes) for inst in midi.instruments), duration_seconds=round(midi.get_end_time(), 6),
            tempo_written=written_tempo(midi),
            regenerate=regenerate_command(bundle.path, drawn, primer_path)))
    result.seconds = time.perf_counter() - started
    return result


def _key_setting(config: SampleConfig, tok, path, primer) -> int | None:
    """``--key`` checked against the bundle and the other options → its KEY value (None: no key asked). Key-mode
    bundles take it as their KEY event; others as a pitch-class bias of ``key_strength``."""
    if "KEY" in tok.ranges:
        if config.program is not None and primer is None:
            raise UsageError(f"--program: the bundle {str(path)!r} has a key mode, where the event after BOS is a "
                             f"KEY; leave --program out (the model chooses its programs)")
        _usage(config.key_strength is None, f"--key-strength: the bundle {str(path)!r} has KEY events, so --key "
                                            f"picks its KEY event; leave --key-strength out")
        _usage(config.key is None or primer is None, "--key: not with --primer (the primer's own KEY event names "
                                                     "its key)")
    elif config.key_strength is not None:
        _usage(config.key is not None, f"--key-strength: needs --key (got {config.key_strength!r} without a key)")
    return None if config.key is None else parse_key(config.key)


def _style_setting(config: SampleConfig, bundle, primer_tokens, count: int) -> np.ndarray | None:
    """``--style`` checked against the bundle → int64 (count,) STYLE values (None: a bundle without styles). Without
    ``--style``: a primer's own STYLE, else the bundle's recorded default style (``styles.recorded_default``), else
    ``count`` draws from the training pieces' style shares (``styles``)."""
    from musicgen import styles as st

    names, where = bundle.tokenizer_config.styles, f"the bundle {str(bundle.path)!r}"
    if config.style is not None:
        return np.full(count, st.parse_style(config.style, names, where), np.int64)
    if not names:
        return None
    own = None if primer_tokens is None else st.piece_style(primer_tokens, bundle.tokenizer)
    if own is None:
        own = st.recorded_default(bundle.metrics, names)
    if own is not None:
        return np.full(count, own, np.int64)
    return st.draw_styles(st.style_shares(bundle.metrics.get(st.METRIC), names), config.seed, count)


def _program_setting(config: SampleConfig, tok, path) -> list[int] | None:
    """``--instruments``/``--drums`` → the programs (128 = drums) that may start notes, for ``EventRules``; None: all.
    A vocabulary without PROGRAM events takes one instrument (the program its notes are written with)."""
    if config.instruments is None and config.drums is not False:
        return None
    if "PROGRAM" not in tok.ranges:
        _usage(config.instruments is None or len(config.instruments) == 1,
               f"--instruments: the bundle {str(path)!r} has no PROGRAM events, so its notes take one program; "
               f"got {','.join(map(str, config.instruments or ()))}")
        _usage(config.program is None or config.instruments in (None, (config.program,)),
               f"--program: {config.program} is not the program of --instruments {config.instruments}")
        return None
    allowed = list(config.instruments) if config.instruments is not None else list(range(128))
    _usage(config.program is None or config.program in allowed,
           f"--program: {config.program} is not among --instruments {','.join(map(str, allowed))}")
    return allowed + ([DRUMS] if config.drums or (config.drums is None and config.instruments is None) else [])


def _steering(config: SampleConfig, tok, step_seconds: float, key_value: int | None):
    """The density controller and key bias of ``config`` (``controls.Steering``), or None when neither is asked."""
    bias_key = key_value is not None and "KEY" not in tok.ranges
    if config.density is None and not bias_key:
        return None
    from musicgen.controls import DEFAULT_KEY_STRENGTH, Steering

    strength = DEFAULT_KEY_STRENGTH if config.key_strength is None else config.key_strength
    return Steering(tok, config.num_samples, density=config.density, step_seconds=step_seconds,
                    key=key_value if bias_key else None, key_strength=strength)


def sample(bundle_or_path=None, length: int | None = None, temperature: float = 1.0, top_k: int = 0,
           top_p: float = 1.0, seed: int | None = None, primer=None, num_samples: int = 1, **options) -> list:
    """Sample new music from a trained bundle (numpy only; usable from notebooks).

    The arguments become a ``SampleConfig`` (its docstring describes every field); pass ``config=SampleConfig(...)``
    instead to reuse one (keywords given beside it replace its fields).

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
            ``well_formed`` (False: no NOTE_ON/NOTE_OFF consistency masks, see ``rules.EventRules``), ``key`` (a
            key name such as ``"D minor"``: every sample's KEY event in a key-mode bundle, default the model draws
            each; in other bundles a bias of ``key_strength`` nats, default 2, against out-of-scale notes),
            ``instruments`` (GM programs that may start notes, e.g. ``(0, 40, 73)``), ``drums`` (drum notes allowed;
            default: unless ``instruments`` is given), ``density`` (``(low, high)`` notes per second the sample is
            steered into), ``style`` (a style name of a bundle trained with ``styles=True``: every sample's STYLE
            event; default: each sample's style drawn from the training pieces' style shares, see
            ``musicgen.styles``; each sidecar names its style), ``config`` (a whole ``SampleConfig``).

    Returns:
        ``list[pretty_midi.PrettyMIDI]``, one per sample.

    Raises:
        UsageError: an invalid value (naming it), a missing or inconsistent bundle, an unreadable primer.
    """
    config = options.pop("config", None)
    given = dict(length=length, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                 num_samples=num_samples, **options)
    if config is not None:  # only what the caller changed from the signature's defaults replaces the config's
        defaults = dict(length=None, temperature=1.0, top_k=0, top_p=1.0, seed=None, num_samples=1)
        given = {k: v for k, v in given.items() if k not in defaults or v != defaults[k]}
    return generate(bundle_or_path, config, primer=primer, **given).midis


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


def cli_sample(args, config: SampleConfig) -> int:
    """``musicgen sample``: ``config`` (from ``cli.sample_config``) → samples → MIDI + JSON sidecars (and WAV/PNG on
    request). ``args`` gives the model, primer, output and render options."""
    paths = output_paths(args.output, config.num_samples)
    for flag in ("wav", "png"):  # a bad place for them fails now, not after sampling
        if isinstance(getattr(args, flag, None), str):
            check_output_dir(Path(getattr(args, flag)).parent, f"--{flag}")
    result = generate(args.model, config, primer=args.primer)
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
                                     time_unit=getattr(args, "time_unit", "beats"),
                                     voice_programs=getattr(args, "voice_programs", None))
            for out in written.values():
                print(out)
    return 0
