"""MIDI → WAV audio and piano-roll PNG images (the picture is drawn by ``musicgen.piano_roll``, re-exported here).

Audio: the ``fluidsynth`` command-line program with a General MIDI SoundFont (``.sf2``). The SoundFont is, in
order: the ``soundfont`` argument, the ``MUSICGEN_SOUNDFONT`` environment variable, or the first of
``SOUNDFONT_PATHS`` that exists. Without a SoundFont or the program, one warning is given and pretty_midi's
additive sine synthesizer is used instead (drums become short noise bursts), unless ``require_soundfont=True``.
WAV files are 16-bit PCM, peak-normalized to -1 dBFS, 2 channels (FluidSynth) or 1 (fallback), and last the
MIDI end time plus at most ``MAX_TAIL_SECONDS`` of release/reverb tail.

Images: ``musicgen.piano_roll.plot_piano_roll`` (matplotlib's Agg canvas; pyplot is never imported).

Both accept a ``pretty_midi.PrettyMIDI`` or a path to a MIDI file. Writes are atomic (temporary file, then
``os.replace``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
import wave
from pathlib import Path

import numpy as np

from musicgen.errors import MusicgenError, UsageError
from musicgen.midi_io import load_midi  # noqa: F401 (also re-exported: its old home)
from musicgen.piano_roll import TIME_UNITS, plot_piano_roll, pm_tempo_map  # noqa: F401 (re-exported)
from musicgen.safeio import atomic_path

SOUNDFONT_ENV = "MUSICGEN_SOUNDFONT"
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/default-GM.sf2",  # Debian/Ubuntu: the system's chosen GM SoundFont
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",  # Debian fluid-soundfont-gm
    "/usr/share/sounds/sf2/TimGM6mb.sf2",  # Debian timgm6mb-soundfont
    "/usr/share/soundfonts/default.sf2",  # Arch, Fedora
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",  # macOS Homebrew
    "/usr/local/share/soundfonts/default.sf2",
)
MAX_TAIL_SECONDS = 0.5
PEAK = 10 ** (-1 / 20)  # -1 dBFS
SAMPLE_RATE_RANGE = (8000, 96000)  # what FluidSynth accepts


class RenderWarning(UserWarning):
    """Rendering went ahead in a lesser way (e.g. the sine fallback instead of FluidSynth)."""


def is_soundfont(path: str | Path) -> bool:
    """True if ``path`` is a readable SoundFont 2 file (RIFF ``sfbk`` header)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return head[:4] == b"RIFF" and head[8:12] == b"sfbk"


def find_soundfont(soundfont: str | Path | None = None) -> tuple[Path | None, str | None]:
    """The SoundFont to use, and why none was found (``(path, None)`` or ``(None, reason)``).

    An explicit ``soundfont`` that is missing or not a SoundFont is a ``UsageError``; a bad
    ``MUSICGEN_SOUNDFONT`` is only a reason (the caller warns and falls back).
    """
    if soundfont is not None:
        if not is_soundfont(soundfont):
            what = "does not exist" if not Path(soundfont).exists() else "is not a SoundFont 2 (.sf2) file"
            raise UsageError(f"--soundfont {str(soundfont)!r} {what}")
        return Path(soundfont), None
    env = os.environ.get(SOUNDFONT_ENV)
    if env:
        if is_soundfont(env):
            return Path(env), None
        return None, f"{SOUNDFONT_ENV}={env!r} is not a readable SoundFont 2 file"
    for candidate in SOUNDFONT_PATHS:
        if is_soundfont(candidate):
            return Path(candidate), None
    return None, ("no General MIDI SoundFont found (install fluid-soundfont-gm or timgm6mb-soundfont, "
                  f"or set {SOUNDFONT_ENV} / --soundfont)")


# ------------------------------------------------------------------------------------------------------- audio
def render_wav(midi, path, sample_rate: int = 44100, soundfont=None, require_soundfont: bool = False) -> Path:
    """Render ``midi`` to a 16-bit PCM WAV file at ``path``; returns the path.

    Args:
        midi: ``pretty_midi.PrettyMIDI`` or path to a MIDI file.
        path: output ``.wav`` path (parent folders are created).
        sample_rate: frames per second, 8000..96000.
        soundfont: ``.sf2`` path; default ``$MUSICGEN_SOUNDFONT`` or the first of ``SOUNDFONT_PATHS``.
        require_soundfont: raise ``UsageError`` instead of warning and using the sine fallback.

    The file lasts ``midi.get_end_time()`` seconds plus at most ``MAX_TAIL_SECONDS`` (the audible release tail,
    faded out). Warns ``RenderWarning`` (one line) when it falls back to the sine synthesizer.
    """
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
            or not SAMPLE_RATE_RANGE[0] <= sample_rate <= SAMPLE_RATE_RANGE[1]:
        raise UsageError(f"--sample-rate must be an integer in {SAMPLE_RATE_RANGE[0]}..{SAMPLE_RATE_RANGE[1]}, "
                         f"got {sample_rate!r}")
    sample_rate = int(sample_rate)
    pm = load_midi(midi)
    sf2, reason = find_soundfont(soundfont)
    program = shutil.which("fluidsynth")
    if sf2 is not None and program is None:
        sf2, reason = None, "the fluidsynth program is not installed (apt-get install fluidsynth)"
    if sf2 is None:
        if require_soundfont:
            raise UsageError(f"cannot render with a SoundFont: {reason}")
        warnings.warn(f"{reason}; using the plain sine synthesizer", RenderWarning, stacklevel=2)
        audio = synthesize_fallback(pm, sample_rate)
    else:
        audio = _fluidsynth(program, sf2, pm, midi, sample_rate)
    audio = trim_tail(audio, pm.get_end_time(), sample_rate)
    return write_wav(path, audio, sample_rate)


def _fluidsynth(program: str, sf2: Path, pm, midi, sample_rate: int) -> np.ndarray:
    """Stereo float audio, shape (frames, 2), from the fluidsynth program."""
    with tempfile.TemporaryDirectory(prefix="musicgen-render-") as tmp:
        if isinstance(midi, (str, os.PathLike)):
            mid = Path(midi).resolve()
        else:
            mid = Path(tmp) / "in.mid"
            pm.write(str(mid))
        raw = Path(tmp) / "out.raw"
        cmd = [program, "-ni", "-q", "-F", str(raw), "-T", "raw", "-O", "float", "-E", "cpu",
               "-r", str(sample_rate), str(Path(sf2).resolve()), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0 or not raw.exists():
            lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
            detail = lines[-1] if lines else f"exit status {proc.returncode}"
            raise MusicgenError(f"fluidsynth failed on {mid.name!r} with {sf2.name!r}: {detail}")
        data = np.fromfile(raw, dtype=np.float32)
    return data[: len(data) // 2 * 2].reshape(-1, 2).astype(np.float64)


def synthesize_fallback(pm, sample_rate: int) -> np.ndarray:
    """Mono float audio, shape (frames, 1): pretty_midi's sine synthesis plus noise bursts for drums."""
    length = int(np.ceil((pm.get_end_time() + MAX_TAIL_SECONDS) * sample_rate)) + 1
    audio = np.zeros(length)
    if any(not inst.is_drum and inst.notes for inst in pm.instruments):
        tone = pm.synthesize(fs=sample_rate, normalize=False)[:length]
        audio[: len(tone)] += tone
    rng = np.random.default_rng(0)  # deterministic drums
    burst = int(0.08 * sample_rate)
    decay = np.exp(-np.arange(burst) / (0.015 * sample_rate))
    for inst in pm.instruments:
        if not inst.is_drum:
            continue
        for note in inst.notes:
            start = int(note.start * sample_rate)
            n = min(burst, length - start)
            if n > 0:  # same scale as pretty_midi's tones: velocity / (instruments * 2**15)
                gain = note.velocity / (len(pm.instruments) * 2 ** 15)
                audio[start:start + n] += gain * decay[:n] * rng.uniform(-1, 1, n)
    return audio[:, None]


def trim_tail(audio: np.ndarray, end_time: float, sample_rate: int, threshold_db: float = -60.0) -> np.ndarray:
    """Cut ``audio`` (frames, channels) to ``end_time`` seconds plus the audible tail (≤ ``MAX_TAIL_SECONDS``).

    The tail ends where the level stays below ``threshold_db`` relative to the peak; what remains of it is faded
    out linearly so the cut does not click. Audio shorter than ``end_time`` is padded with silence.
    """
    end = int(round(end_time * sample_rate))
    cap = end + int(MAX_TAIL_SECONDS * sample_rate)
    if len(audio) < end:
        audio = np.concatenate([audio, np.zeros((end - len(audio), audio.shape[1]))])
    level = np.abs(audio[end:cap]).max(axis=1) if len(audio) > end else np.zeros(0)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    loud = np.flatnonzero(level > peak * 10 ** (threshold_db / 20)) if peak > 0 else np.zeros(0, int)
    stop = end + (int(loud[-1]) + 1 if loud.size else 0)
    audio = audio[:stop].copy()
    fade = stop - end
    if fade > 0:
        audio[end:] *= np.linspace(1.0, 0.0, fade)[:, None]
    return audio


def write_wav(path, audio: np.ndarray, sample_rate: int) -> Path:
    """Peak-normalize ``audio`` (frames, channels) to -1 dBFS and write 16-bit PCM atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    scaled = audio * (PEAK / peak) if peak > 0 else audio
    pcm = np.clip(np.round(scaled * 32767), -32768, 32767).astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(audio.shape[1])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


# ---------------------------------------------------------------------------------------------------------- CLI
def add_render_options(parser) -> None:
    """Add ``--wav [OUT] --png [OUT] --soundfont --require-soundfont --sample-rate --time-unit`` to ``parser``.

    ``args.wav`` / ``args.png`` are None (not asked), True (asked: name beside the MIDI file) or an output path;
    pass them to ``render_outputs``.
    """
    parser.add_argument("--wav", nargs="?", const=True, default=None, metavar="OUT.wav",
                        help="write WAV audio (default name: beside the MIDI file, .wav)")
    parser.add_argument("--png", nargs="?", const=True, default=None, metavar="OUT.png",
                        help="write a piano-roll image (default name: beside the MIDI file, .png)")
    parser.add_argument("--soundfont", default=None, metavar="PATH",
                        help=f"General MIDI .sf2 SoundFont (default: ${SOUNDFONT_ENV} or a system one)")
    parser.add_argument("--require-soundfont", action="store_true",
                        help="fail instead of falling back to the plain sine synthesizer")
    parser.add_argument("--sample-rate", type=int, default=44100, help="WAV frames per second")
    parser.add_argument("--time-unit", choices=TIME_UNITS, default="beats", help="piano-roll time axis")
    parser.add_argument("--voice-programs", type=_voice_programs_arg, default=None, metavar="P,P,…",
                        help="render the MIDI file's k-th pitched track (a voice of a --voices model: soprano, alto, "
                             "…) with General MIDI program P_k, the list repeating, so the voices can be told apart; "
                             "e.g. 73,68,71,70 (flute, oboe, clarinet, bassoon) or 52,53,52,53 (choir). The MIDI file "
                             "itself is not changed")


def parse_voice_programs(text: str) -> tuple[int, ...]:
    """``"73,68,71,70"`` → ``(73, 68, 71, 70)`` (order kept); ``UsageError`` naming ``--voice-programs`` otherwise."""
    from musicgen.controls import parse_programs

    return parse_programs(text, "--voice-programs", "73,68,71,70")


def _voice_programs_arg(text: str) -> tuple[int, ...]:
    import argparse

    try:
        return parse_voice_programs(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def with_voice_programs(midi, programs) -> "pretty_midi.PrettyMIDI":
    """A copy of ``midi`` (PrettyMIDI or path) whose k-th pitched instrument (file order, drums skipped) has program
    ``programs[k % len(programs)]`` and that program's name (+ `` (voice k)``); ``programs`` None or empty: ``midi``
    loaded, unchanged."""
    import copy

    import pretty_midi

    pm = load_midi(midi)
    if not programs:
        return pm
    if pm is midi:  # the caller's object: change a copy (a path was just read, so its PrettyMIDI is ours)
        pm = copy.deepcopy(pm)
    pitched = [inst for inst in pm.instruments if not inst.is_drum]
    for k, inst in enumerate(pitched):
        inst.program = int(programs[k % len(programs)])
        inst.name = f"{pretty_midi.program_to_instrument_name(inst.program)} (voice {k})"
    return pm


def render_outputs(midi, base_path, wav=True, png=True, soundfont=None, sample_rate: int = 44100,
                   require_soundfont: bool = False, time_unit: str = "beats",
                   voice_programs=None) -> dict[str, Path]:
    """Write the WAV and/or PNG for ``midi``; returns ``{"wav": path, "png": path}`` for what was written.

    ``wav`` / ``png``: False/None (skip), True (``base_path`` with suffix ``.wav`` / ``.png``) or a path.
    ``voice_programs``: General MIDI programs for the pitched tracks in order (``with_voice_programs``), or None.
    Render warnings are printed as one line each on stderr (``musicgen: warning: …``).
    """
    base = Path(base_path)
    if voice_programs:
        midi = with_voice_programs(midi, voice_programs)
    written: dict[str, Path] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RenderWarning)
        if wav:
            out = base.with_suffix(".wav") if wav is True else Path(wav)
            written["wav"] = render_wav(midi, out, sample_rate=sample_rate, soundfont=soundfont,
                                        require_soundfont=require_soundfont)
        if png:
            out = base.with_suffix(".png") if png is True else Path(png)
            plot_piano_roll(midi, out, time_unit=time_unit, title=base.name)
            written["png"] = out
    for w in caught:
        if issubclass(w.category, RenderWarning):
            print(f"musicgen: warning: {w.message}", file=sys.stderr)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return written


def wav_seconds(path) -> float:
    """Duration of a WAV file in seconds."""
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def cli_render(args) -> int:
    """``musicgen render FILE.mid [--wav [OUT]] [--png [OUT]] …``: both outputs when neither flag is given."""
    midi_path = Path(args.midi)
    pm = load_midi(midi_path)  # fails early, one line, before any output is written
    wav, png = args.wav, args.png
    if wav is None and png is None:
        wav = png = True
    written = render_outputs(pm, midi_path, wav=wav, png=png, soundfont=args.soundfont,
                             sample_rate=args.sample_rate, require_soundfont=args.require_soundfont,
                             time_unit=args.time_unit, voice_programs=args.voice_programs)
    if "wav" in written:
        print(f"wrote {written['wav']} ({wav_seconds(written['wav']):.2f} s, {args.sample_rate} Hz)")
    if "png" in written:
        print(f"wrote {written['png']}")
    return 0
