"""MIDI → piano-roll PNG, drawn with matplotlib's Agg canvas (pyplot is never imported): time on x (quarter notes
following the tempo map, or seconds) with bar lines from the time signatures, pitch on y with note names, one colour
per instrument, opacity from velocity, drums in a lane of their own below. ``musicgen.render`` (audio, and the
``--png`` option) re-exports ``plot_piano_roll``; the PNG is written atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicgen.errors import UsageError
from musicgen.midi_io import load_midi
from musicgen.piece import seconds_to_beats
from musicgen.safeio import atomic_path


TIME_UNITS = ("beats", "seconds")


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
