"""render.py: WAV through FluidSynth and the sine fallback, piano-roll PNGs, and the `render` verb.

The music is made by hand: one C4 from 0 to 1 s, silence from 1 to 2 s, a C major triad from 2 to 3 s (120 qpm, so
the same in quarter notes is 0–2, 2–4, 4–6).
"""

import shutil
import wave

import numpy as np
import pretty_midi
import pytest

from conftest import note_gap_chord, png_pixels
from musicgen import render
from musicgen.cli import main
from musicgen.errors import UsageError
from musicgen.render import render_outputs, render_wav, trim_tail

TIM = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # 6 MB: fast to load; any GM SoundFont would pass these tests
SOUNDFONT = next((p for p in (TIM, *render.SOUNDFONT_PATHS) if render.is_soundfont(p)), None)
needs_fluidsynth = pytest.mark.skipif(
    shutil.which("fluidsynth") is None or SOUNDFONT is None,
    reason="FluidSynth or a GM SoundFont is not installed (apt-get install fluidsynth timgm6mb-soundfont)")


def read_wav(path):
    """(samples float in [-1, 1] shape (frames, channels), sample rate)."""
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()).astype(np.float64) / 32768, w.getframerate()


def window_rms(audio, sr, t0, t1):
    """RMS over every channel of audio[t0:t1 seconds]."""
    return float(np.sqrt(np.mean(audio[int(t0 * sr):int(t1 * sr)] ** 2)))


def assert_note_gap_chord(audio, sr):
    """Sounding during both notes (every 100 ms window), near silent in the middle of the gap."""
    peak_rms = max(window_rms(audio, sr, t, t + 0.1) for t in np.arange(0, 3, 0.1))
    for t in [*np.arange(0.0, 0.9, 0.1), *np.arange(2.0, 2.9, 0.1)]:
        assert window_rms(audio, sr, t, t + 0.1) > 0.05 * peak_rms, f"quiet window at {t:.1f} s"
    for t in np.arange(1.5, 1.9, 0.1):
        assert window_rms(audio, sr, t, t + 0.1) < 0.01 * peak_rms, f"sound in the gap at {t:.1f} s"
    assert np.abs(audio).max() == pytest.approx(render.PEAK, abs=2e-3)  # normalized to -1 dBFS


@needs_fluidsynth
@pytest.mark.parametrize("sample_rate", [22050, 44100])
def test_fluidsynth_wav_timing_rate_and_levels(tmp_path, sample_rate):
    out = render_wav(note_gap_chord(), tmp_path / "a.wav", sample_rate=sample_rate, soundfont=SOUNDFONT,
                     require_soundfont=True)
    audio, sr = read_wav(out)
    assert sr == sample_rate and audio.shape[1] == 2
    assert 3.0 <= len(audio) / sr <= 3.5
    assert_note_gap_chord(audio, sr)
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


@needs_fluidsynth
def test_fluidsynth_reads_a_midi_path_and_env_soundfont(tmp_path, monkeypatch):
    note_gap_chord().write(str(tmp_path / "in.mid"))
    monkeypatch.setenv(render.SOUNDFONT_ENV, SOUNDFONT)
    audio, sr = read_wav(render_wav(tmp_path / "in.mid", tmp_path / "sub" / "b.wav", sample_rate=16000))
    assert sr == 16000 and audio.shape[1] == 2 and 3.0 <= len(audio) / sr <= 3.5


def test_fallback_when_env_soundfont_is_missing(tmp_path, monkeypatch):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.warns(render.RenderWarning, match="nope.sf2.*sine"):
        out = render_wav(note_gap_chord(), tmp_path / "c.wav", sample_rate=22050)
    audio, sr = read_wav(out)
    assert sr == 22050 and audio.shape[1] == 1
    assert 3.0 <= len(audio) / sr <= 3.5
    assert_note_gap_chord(audio, sr)
    spectrum = np.abs(np.fft.rfft(audio[: sr // 2, 0]))  # the lone C4: 261.6 Hz
    assert np.argmax(spectrum) * 2 == pytest.approx(pretty_midi.note_number_to_hz(60), abs=2)


def test_fallback_when_fluidsynth_program_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(render.shutil, "which", lambda name: None)
    with pytest.warns(render.RenderWarning, match="fluidsynth program"):
        render_wav(note_gap_chord(), tmp_path / "d.wav", soundfont=TIM if render.is_soundfont(TIM) else None)
    with pytest.raises(UsageError, match="fluidsynth program"):
        render_wav(note_gap_chord(), tmp_path / "e.wav", require_soundfont=True,
                   soundfont=TIM if render.is_soundfont(TIM) else None)


def test_fallback_synth_sounds_drums(tmp_path, monkeypatch):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    pm = pretty_midi.PrettyMIDI()
    kit = pretty_midi.Instrument(program=0, is_drum=True)
    kit.notes += [pretty_midi.Note(100, 36, t, t + 0.1) for t in (0.0, 1.0)]
    pm.instruments.append(kit)
    with pytest.warns(render.RenderWarning):
        audio, sr = read_wav(render_wav(pm, tmp_path / "drums.wav", sample_rate=8000))
    assert window_rms(audio, sr, 0.0, 0.05) > 0.05 and window_rms(audio, sr, 1.0, 1.05) > 0.05
    assert window_rms(audio, sr, 0.3, 0.9) < 1e-3


def test_missing_or_invalid_soundfont_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="--soundfont .*nope.sf2.* does not exist"):
        render_wav(note_gap_chord(), tmp_path / "f.wav", soundfont=tmp_path / "nope.sf2")
    junk = tmp_path / "junk.sf2"
    junk.write_bytes(b"RIFF\0\0\0\0WAVEjunk")
    with pytest.raises(UsageError, match="not a SoundFont"):
        render_wav(note_gap_chord(), tmp_path / "f.wav", soundfont=junk)
    assert not (tmp_path / "f.wav").exists()


def test_require_soundfont_without_one_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.raises(UsageError, match="cannot render with a SoundFont"):
        render_wav(note_gap_chord(), tmp_path / "g.wav", require_soundfont=True)


@pytest.mark.parametrize("rate", [0, 7999, 96001, 44100.0, True])
def test_bad_sample_rate_is_a_usage_error(tmp_path, rate):
    with pytest.raises(UsageError, match="--sample-rate"):
        render_wav(note_gap_chord(), tmp_path / "h.wav", sample_rate=rate)


def test_trim_tail_cuts_silence_and_caps_the_release():
    sr = 1000
    audio = np.zeros((5000, 1))
    audio[:2000] = 1.0  # 2 s of sound, then 3 s of silence
    assert len(trim_tail(audio, 2.0, sr)) == 2000
    audio[:4000] = 1.0  # sound rings on for 2 s past the end: keep 0.5 s of it, faded to 0
    trimmed = trim_tail(audio, 2.0, sr)
    assert len(trimmed) == 2500 and trimmed[1999, 0] == 1.0 and trimmed[-1, 0] == 0.0
    assert len(trim_tail(np.zeros((100, 2)), 1.0, sr)) == 1000  # short audio padded to the end time


def test_empty_midi_renders_a_short_silent_wav(tmp_path, monkeypatch):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    with pytest.warns(render.RenderWarning):
        audio, _ = read_wav(render_wav(pretty_midi.PrettyMIDI(), tmp_path / "empty.wav", sample_rate=8000))
    assert len(audio) <= 4000 and not audio.any()


def test_render_outputs_names_beside_base_and_prints_warning_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    written = render_outputs(note_gap_chord(), tmp_path / "s01.mid", wav=True, png=True, sample_rate=8000)
    assert written == {"wav": tmp_path / "s01.wav", "png": tmp_path / "s01.png"}
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musicgen: warning:") and "nope.sf2" in err[0]
    assert render_outputs(note_gap_chord(), tmp_path / "s02.mid", wav=False, png=tmp_path / "x.png") == \
        {"png": tmp_path / "x.png"}


@needs_fluidsynth
def test_cli_render_writes_both_beside_the_input(tmp_path, capsys):
    midi = tmp_path / "song.mid"
    note_gap_chord().write(str(midi))
    assert main(["render", str(midi), "--soundfont", SOUNDFONT, "--sample-rate", "22050"]) == 0
    audio, sr = read_wav(tmp_path / "song.wav")
    assert sr == 22050 and 3.0 <= len(audio) / sr <= 3.5
    assert png_pixels(tmp_path / "song.png")[1:] == (1200, 600)
    assert "song.wav" in capsys.readouterr().out


def test_cli_render_only_png_to_a_named_file(tmp_path, monkeypatch):
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "nope.sf2"))
    midi = tmp_path / "song.mid"
    note_gap_chord().write(str(midi))
    assert main(["render", str(midi), "--png", str(tmp_path / "roll.png"), "--time-unit", "seconds"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roll.png", "song.mid"]


@pytest.mark.parametrize("make", ["missing", "garbage"])
def test_cli_render_bad_input_exits_2_with_one_line(tmp_path, capsys, make):
    midi = tmp_path / "bad.mid"
    if make == "garbage":
        midi.write_bytes(b"this is not a MIDI file")
    assert main(["render", str(midi)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("musicgen render: error:") and "bad.mid" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if make == "missing" else ["bad.mid"])


def test_cli_missing_soundfont_exits_2(tmp_path, capsys):
    midi = tmp_path / "song.mid"
    note_gap_chord().write(str(midi))
    assert main(["render", str(midi), "--wav", "--soundfont", str(tmp_path / "no.sf2")]) == 2
    assert "--soundfont" in capsys.readouterr().err


def test_a_2000_quarter_piece_exports_renders_and_opens_in_pretty_midi(tmp_path, monkeypatch):
    """music21 writes 10,080 ticks per quarter: 2,000 quarters end past tick 1e7, which pretty_midi refuses."""
    import music21

    from musicgen.corpus_export import score_to_midi

    stream = music21.stream.Stream([music21.tempo.MetronomeMark(number=600)])
    stream.append([music21.note.Note(60 + i % 12, quarterLength=1) for i in range(2000)])
    raw = music21.midi.translate.music21ObjectToMidiFile(stream).writestr()  # as music21 writes it
    (tmp_path / "raw.mid").write_bytes(raw)
    with pytest.raises(ValueError, match="likely corrupt"):
        pretty_midi.PrettyMIDI(str(tmp_path / "raw.mid"))
    (tmp_path / "long.mid").write_bytes(score_to_midi(stream))  # what `musicgen corpus export` writes
    pm = pretty_midi.PrettyMIDI(str(tmp_path / "long.mid"))
    assert pm.resolution == 480 and sum(len(i.notes) for i in pm.instruments) == 2000
    assert pm.get_end_time() == pytest.approx(200.0)
    monkeypatch.setenv(render.SOUNDFONT_ENV, str(tmp_path / "none.sf2"))  # the quick sine fallback
    for name in ("long", "raw"):  # the raw file through ingest's reader (symusic), resampled
        assert main(["render", str(tmp_path / f"{name}.mid"), "--wav", "--sample-rate", "8000"]) == 0
        audio, sr = read_wav(tmp_path / f"{name}.wav")
        assert sr == 8000 and len(audio) / sr == pytest.approx(200.0, abs=0.6)
    assert render.load_midi(tmp_path / "raw.mid").get_end_time() == pytest.approx(200.0)


def two_voices() -> pretty_midi.PrettyMIDI:
    """Two piano tracks (voices), each one C4 held 3 s: voice 0 at 0-3 s, voice 1 at 4-7 s; and a drum track."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    for k in range(2):
        inst = pretty_midi.Instrument(program=0, name=f"voice {k}")
        inst.notes.append(pretty_midi.Note(100, 60, 4.0 * k, 4.0 * k + 3.0))
        pm.instruments.append(inst)
    drums = pretty_midi.Instrument(program=0, is_drum=True)
    drums.notes.append(pretty_midi.Note(100, 36, 0.0, 0.1))
    pm.instruments.append(drums)
    return pm


def test_voice_programs_cycle_over_the_pitched_tracks_of_a_copy():
    pm = two_voices()
    out = render.with_voice_programs(pm, (19,))
    assert [(i.program, i.is_drum) for i in out.instruments] == [(19, False), (19, False), (0, True)]
    assert out.instruments[1].name == "Church Organ (voice 1)"
    assert [i.program for i in pm.instruments] == [0, 0, 0]  # the input is not changed
    assert [i.program for i in render.with_voice_programs(pm, (73, 68)).instruments[:2]] == [73, 68]
    assert render.with_voice_programs(pm, None) is pm
    assert render.parse_voice_programs("73,68,71,70") == (73, 68, 71, 70)
    for bad in ("", "73,,70", "128", "flute"):
        with pytest.raises(UsageError, match="--voice-programs: expected General MIDI programs 0-127"):
            render.parse_voice_programs(bad)


@needs_fluidsynth
def test_cli_render_voice_programs_reach_the_audio(tmp_path, monkeypatch, capsys):
    """Piano decays, a church organ sustains: with --voice-programs 0,19 the end of voice 1's note (organ) keeps
    its level, while voice 0's (piano) fades; the MIDI file is left as it was."""
    monkeypatch.setenv(render.SOUNDFONT_ENV, SOUNDFONT)
    path = tmp_path / "v.mid"
    two_voices().write(str(path))
    before = path.read_bytes()
    assert main(["render", str(path), "--wav", "--voice-programs", "0,19"]) == 0
    audio, sr = read_wav(tmp_path / "v.wav")
    sustain = [window_rms(audio, sr, t0 + 2.5, t0 + 2.9) / window_rms(audio, sr, t0 + 0.1, t0 + 0.5)
               for t0 in (0.0, 4.0)]
    assert sustain[0] < 0.5 < sustain[1], sustain
    assert path.read_bytes() == before
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(path), "--voice-programs", "300"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --voice-programs: expected General MIDI programs 0-127" in err and err.count("\n") == 1


