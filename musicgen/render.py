"""MIDI → WAV audio and piano-roll PNG images.

Audio: the ``fluidsynth`` command-line program with a General MIDI SoundFont (``.sf2``). The SoundFont is, in
order: the ``soundfont`` argument, the ``MUSICGEN_SOUNDFONT`` environment variable, or the first of
``SOUNDFONT_PATHS`` that exists. Without a SoundFont or the program, one warning is given and pretty_midi's
additive sine synthesizer is used instead (drums become short noise bursts), unless ``require_soundfont=True``.
WAV files are 16-bit PCM, peak-normalized to -1 dBFS, 2 channels (FluidSynth) or 1 (fallback), and last the
MIDI end time plus at most ``MAX_TAIL_SECONDS`` of release/reverb tail.

Images: a piano roll drawn with matplotlib's Agg canvas (pyplot is never imported): time on x (quarter notes or
seconds), pitch on y with note names, one colour per instrument, opacity from velocity, drums in a lane of their
own below.

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
from musicgen.piece import seconds_to_beats
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
TIME_UNITS = ("beats", "seconds")


class RenderWarning(UserWarning):
    """Rendering went ahead in a lesser way (e.g. the sine fallback instead of FluidSynth)."""


# ------------------------------------------------------------------------------------------------------ inputs
def load_midi(midi):
    """A ``pretty_midi.PrettyMIDI`` from itself or a path; a missing/unreadable file is a ``UsageError``.

    A file pretty_midi refuses (its last tick past 1e7: a long piece at a fine resolution, as music21 writes) is read
    by ingest's reader (symusic), rewritten at 480 ticks per quarter (``midi_io.resample_midi``) and opened again.
    """
    import io

    import pretty_midi

    if isinstance(midi, pretty_midi.PrettyMIDI):
        return midi
    path = Path(midi)
    if not path.is_file():
        raise UsageError(f"MIDI file {str(path)!r} does not exist")
    try:
        return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise many types for a bad file
        first = exc
    from musicgen.midi_io import resample_midi

    try:
        return pretty_midi.PrettyMIDI(io.BytesIO(resample_midi(path.read_bytes())))
    except Exception:
        raise UsageError(f"cannot read MIDI file {str(path)!r}: {type(first).__name__}: {first}") from None


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


# ---------------------------------------------------------------------------------------------------- piano roll
def pm_tempo_map(pm) -> tuple[np.ndarray, np.ndarray]:
    """``pm``'s tempo map in the form ``midi_io.seconds_to_beats`` takes: where each tempo starts, in quarter notes,
    and its quarter notes per minute, each float64 (k,) (empty when ``pm`` has no tempo: then 120 qpm applies)."""
    change_times, qpms = pm.get_tempo_changes()
    beats = [pm.time_to_tick(t) / pm.resolution for t in change_times]
    return np.asarray(beats, dtype=np.float64), np.asarray(qpms, dtype=np.float64)


def plot_piano_roll(midi, path=None, time_unit: str = "beats", width: int = 1200, height: int = 600,
                    dpi: int = 100, title: str | None = None):
    """Draw a piano roll; return the ``matplotlib.figure.Figure`` and, if ``path`` is given, save it as PNG.

    Args:
        midi: ``pretty_midi.PrettyMIDI`` or path to a MIDI file.
        path: PNG output path, or None to only return the figure.
        time_unit: "beats" (quarter notes, following tempo changes) or "seconds"; either way thin lines across
            the roll mark the bars of the MIDI's time signatures (a 1/4 pickup, then 4/4: lines at 0, 1, 5, 9, …).
        width, height: image size in pixels; dpi: dots per inch (scales the text).
        title: figure title (default: the MIDI file name when ``midi`` is a path).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if time_unit not in TIME_UNITS:
        raise UsageError(f"time_unit must be one of {', '.join(TIME_UNITS)}, got {time_unit!r}")
    for name, value in (("width", width), ("height", height), ("dpi", dpi)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    pm = load_midi(midi)
    if title is None and not hasattr(midi, "instruments"):
        title = Path(midi).name

    def to_x(seconds):
        return seconds_to_beats(seconds, *pm_tempo_map(pm)) if time_unit == "beats" else np.asarray(seconds, np.float64)

    pitched = [inst for inst in pm.instruments if not inst.is_drum and inst.notes]
    drums = [inst for inst in pm.instruments if inst.is_drum and inst.notes]
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    if pitched and drums:
        n_rows = len({n.pitch for inst in drums for n in inst.notes})
        ax_notes, ax_drums = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1 if n_rows <= 6 else 2])
    else:
        ax_notes = ax_drums = fig.subplots()
    if pitched:
        _draw_notes(ax_notes, pitched, to_x)
    if drums:
        _draw_drums(ax_drums, drums, to_x)
    bottom = ax_drums if drums else ax_notes
    bottom.set_xlabel("time (quarter notes)" if time_unit == "beats" else "time (seconds)")
    end = float(to_x(pm.get_end_time())) if pm.get_end_time() > 0 else 1.0
    bottom.set_xlim(0, end)
    for ax in {ax_notes, ax_drums}:  # bar lines from the time signatures (none in the file: 4/4 from 0)
        for bar in to_x(pm.get_downbeats()):
            ax.axvline(bar, color="0.55", linewidth=0.6, zorder=0)
    if not pitched and not drums:
        ax_notes.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax_notes.transAxes)
    if title:
        fig.suptitle(title)
    if path is not None:
        _save_png(fig, path, dpi)
    return fig


def _instrument_label(inst) -> str:
    import pretty_midi

    name = "Drums" if inst.is_drum else pretty_midi.program_to_instrument_name(inst.program)
    if not inst.name or inst.name == name:
        return name
    return inst.name if inst.name.startswith(name) else f"{name} ({inst.name})"  # "Oboe (voice 1)" as it is


def _velocity_colors(rgb, velocities) -> np.ndarray:
    """RGBA per note: opacity 0.3 (velocity 0) to 1.0 (velocity 127)."""
    alpha = 0.3 + 0.7 * np.asarray(velocities, dtype=np.float64) / 127.0
    return np.column_stack([np.tile(rgb, (len(alpha), 1)), alpha])


def _draw_notes(ax, instruments, to_x) -> None:
    import pretty_midi
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    pitches = [n.pitch for inst in instruments for n in inst.notes]
    lo, hi = min(pitches) - 1, max(pitches) + 1
    for p in range(lo, hi + 1):
        if p % 12 in (1, 3, 6, 8, 10):  # black keys, lightly shaded
            ax.axhspan(p - 0.5, p + 0.5, color="0.93", zorder=0, linewidth=0)
    handles = []
    for k, inst in enumerate(instruments):
        rgb = to_rgb(f"C{k % 10}")
        start = to_x([n.start for n in inst.notes])
        stop = to_x([n.end for n in inst.notes])
        pitch = np.array([n.pitch for n in inst.notes], dtype=np.float64)
        boxes = np.stack([np.column_stack([start, pitch - 0.4]), np.column_stack([start, pitch + 0.4]),
                          np.column_stack([stop, pitch + 0.4]), np.column_stack([stop, pitch - 0.4])], axis=1)
        ax.add_collection(PolyCollection(boxes, facecolors=_velocity_colors(rgb, [n.velocity for n in inst.notes]),
                                         edgecolors=[rgb], linewidths=0.4))
        handles.append(Patch(color=rgb, label=_instrument_label(inst)))
    step = 1 if hi - lo <= 24 else 12
    ticks = [p for p in range(lo, hi + 1) if p % step == 0 or (step == 12 and p % 12 == 7 and hi - lo <= 48)]
    ax.set_yticks(ticks, [pretty_midi.note_number_to_name(p) for p in ticks])
    ax.set_ylim(lo - 0.5, hi + 0.5)
    ax.set_ylabel("pitch")
    ax.grid(axis="y", color="0.8", linewidth=0.5)
    ax.set_axisbelow(True)
    # below the time axis: at the top, two rows (five parts and more) ran into the title
    ax.figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize="small",
                     frameon=False)


def _draw_drums(ax, instruments, to_x) -> None:
    import pretty_midi
    from matplotlib.colors import to_rgb

    rows = sorted({n.pitch for inst in instruments for n in inst.notes})
    row_of = {p: i for i, p in enumerate(rows)}
    rgb = to_rgb("0.15")
    for inst in instruments:
        x = to_x([n.start for n in inst.notes])
        y = [row_of[n.pitch] for n in inst.notes]
        ax.scatter(x, y, marker="D", s=18, c=_velocity_colors(rgb, [n.velocity for n in inst.notes]),
                   linewidths=0, label="Drums")
    names = [pretty_midi.note_number_to_drum_name(p) or f"drum {p}" for p in rows]
    ax.set_yticks(range(len(rows)), names, fontsize="small")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_ylabel("drums")
    ax.grid(axis="y", color="0.85", linewidth=0.5)
    ax.set_axisbelow(True)


def _save_png(fig, path, dpi: int) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
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
