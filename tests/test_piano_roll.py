"""piano_roll: PNG size and content, opacity from velocity, the drum lane, bar lines from time signatures, the legend,
the tempo map it draws beats with; never pyplot."""

import subprocess
import sys

import pretty_midi
import pytest

from conftest import note_gap_chord, png_pixels
from musicgen import piano_roll
from musicgen.errors import UsageError
from musicgen.piano_roll import plot_piano_roll, pm_tempo_map
from musicgen.piece import seconds_to_beats


def test_pm_tempo_map_follows_tempo_changes(tmp_path):
    beats, qpm = pm_tempo_map(pretty_midi.PrettyMIDI(initial_tempo=120))
    assert (beats.tolist(), qpm.tolist()) == ([0.0], [120.0])
    assert seconds_to_beats([0.0, 1.0, 2.5], beats, qpm).tolist() == [0.0, 2.0, 5.0]
    import mido  # 120 qpm for 4 quarter notes (2 s), then 60 qpm

    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0),
                                      mido.MetaMessage("set_tempo", tempo=1000000, time=4 * 480),
                                      mido.Message("note_on", note=60, velocity=80, time=0),
                                      mido.Message("note_off", note=60, velocity=0, time=480)]))
    mid.save(str(tmp_path / "tempo.mid"))
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "tempo.mid"))
    beats, qpm = pm_tempo_map(pm)
    assert (beats.tolist(), qpm.tolist()) == ([0.0, 4.0], pytest.approx([120.0, 60.0]))
    assert seconds_to_beats([1.0, 2.0, 3.0], beats, qpm).tolist() == pytest.approx([2.0, 4.0, 5.0])


@pytest.mark.parametrize("time_unit", ["beats", "seconds"])
def test_piano_roll_png_size_and_content(tmp_path, time_unit):
    fig = plot_piano_roll(note_gap_chord(), tmp_path / "roll.png", time_unit=time_unit, width=640, height=320,
                          dpi=80)
    image, w, h = png_pixels(tmp_path / "roll.png")
    assert (w, h) == (640, 320)
    assert image[..., :3].std() > 0.05  # not blank
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["B3", "C4", "C#4", "D4", "D#4", "E4", "F4", "F#4", "G4", "G#4"]
    assert ax.get_xlim() == ((0.0, 6.0) if time_unit == "beats" else (0.0, 3.0))
    boxes = ax.collections[0].get_paths()
    assert len(boxes) == 4
    x0, x1 = boxes[0].vertices[:, 0].min(), boxes[0].vertices[:, 0].max()
    assert (x0, x1) == ((0.0, 2.0) if time_unit == "beats" else (0.0, 1.0))
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["Acoustic Grand Piano"]


def test_piano_roll_velocity_sets_opacity_and_drums_get_their_own_lane(tmp_path):
    pm = note_gap_chord()
    pm.instruments[0].notes[0].velocity = 127
    pm.instruments[0].notes[1].velocity = 0
    strings = pretty_midi.Instrument(program=40)
    strings.notes.append(pretty_midi.Note(80, 72, 0.5, 2.5))
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes += [pretty_midi.Note(100, 36, 0.0, 0.1), pretty_midi.Note(100, 42, 0.5, 0.6)]
    pm.instruments += [strings, kit]
    fig = plot_piano_roll(pm, tmp_path / "mix.png", width=800, height=500)
    notes_ax, drums_ax = fig.axes
    alphas = notes_ax.collections[0].get_facecolors()[:, 3]
    assert alphas[0] == pytest.approx(1.0) and alphas[1] == pytest.approx(0.3)
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["Acoustic Grand Piano", "Violin"]
    assert [t.get_text() for t in drums_ax.get_yticklabels()] == ["Bass Drum 1", "Closed Hi Hat"]
    assert png_pixels(tmp_path / "mix.png")[1:] == (800, 500)


def test_piano_roll_never_imports_pyplot(tmp_path):
    code = ("import sys, pretty_midi; from musicgen.piano_roll import plot_piano_roll\n"
            f"plot_piano_roll(pretty_midi.PrettyMIDI(), {str(tmp_path / 'e.png')!r})\n"
            "assert 'matplotlib.pyplot' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_piano_roll_of_empty_midi_and_bad_arguments(tmp_path):
    fig = plot_piano_roll(pretty_midi.PrettyMIDI(), tmp_path / "empty.png", width=300, height=200)
    assert fig.axes[0].texts[0].get_text() == "no notes"
    with pytest.raises(UsageError, match="time_unit .* got 'bars'"):
        plot_piano_roll(note_gap_chord(), time_unit="bars")
    with pytest.raises(UsageError, match="width must be a positive integer, got 0"):
        plot_piano_roll(note_gap_chord(), width=0)


@pytest.mark.parametrize("parts, drums", [(5, False), (8, False), (5, True)])
def test_piano_roll_legend_covers_neither_the_title_nor_the_plot(parts, drums):
    """A five-part chorale's legend took two rows at the top and ran into the title."""
    pm = pretty_midi.PrettyMIDI()
    for k in range(parts):
        inst = pretty_midi.Instrument(program=k, name=f"Voice {k + 1}")
        inst.notes = [pretty_midi.Note(80, 48 + 5 * k + (i % 3), i * 0.5, i * 0.5 + 0.4) for i in range(16)]
        pm.instruments.append(inst)
    if drums:
        kit = pretty_midi.Instrument(program=0, is_drum=True)
        kit.notes = [pretty_midi.Note(100, 36, i * 0.5, i * 0.5 + 0.1) for i in range(16)]
        pm.instruments.append(kit)
    fig = plot_piano_roll(pm, title="BWV 1.6 with a horn")
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    title = [t for t in fig.findobj(lambda a: hasattr(a, "get_text")) if t.get_text() == "BWV 1.6 with a horn"][0]
    assert len(fig.legends[0].get_texts()) == parts
    assert not legend.overlaps(title.get_window_extent(renderer))
    for ax in fig.axes:
        assert not legend.overlaps(ax.get_tightbbox(renderer))  # nor the notes, tick labels or axis label
    assert 0 <= legend.x0 and legend.x1 <= fig.bbox.width and 0 <= legend.y0  # inside the image


@pytest.mark.parametrize("unit, scale", [("beats", 1.0), ("seconds", 0.5)])
def test_bar_lines_follow_the_time_signatures(unit, scale):
    # 120 bpm; a one-quarter pickup bar (1/4), then 4/4, then 3/4 from beat 9: bars at 0, 1, 5, 9, 12
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(80, 60, 0.0, 7.5))
    pm.instruments.append(inst)
    pm.time_signature_changes = [pretty_midi.TimeSignature(1, 4, 0.0), pretty_midi.TimeSignature(4, 4, 0.5),
                                 pretty_midi.TimeSignature(3, 4, 4.5)]
    fig = plot_piano_roll(pm, time_unit=unit)
    bars = sorted({round(float(line.get_xdata()[0]), 6) for ax in fig.axes for line in ax.lines})
    assert bars == [x * scale for x in (0, 1, 5, 9, 12)]


def test_legend_labels_name_a_voice_track_once():
    named = [pretty_midi.Instrument(program=68, name=n) for n in ("Oboe (voice 1)", "alto", "", "Oboe")]
    assert [piano_roll._instrument_label(i) for i in named] == ["Oboe (voice 1)", "Oboe (alto)", "Oboe", "Oboe"]
