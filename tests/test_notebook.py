"""musicgen.show: the piano roll and an embedded audio player for notebooks."""

import sys
import warnings

import pretty_midi
import pytest

import musicgen
from musicgen.errors import UsageError


def _midi():
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    inst = pretty_midi.Instrument(program=0)
    inst.notes += [pretty_midi.Note(90, p, 0.5 * i, 0.5 * i + 0.5) for i, p in enumerate((60, 64, 67))]
    pm.instruments.append(inst)
    return pm


def test_show_returns_the_roll_and_a_wav_player_of_the_music():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure, player = musicgen.show(_midi(), title="three notes", sample_rate=8000, display=False)
    assert figure.axes and figure._suptitle.get_text() == "three notes"
    wav = player.data
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    frames = (len(wav) - 44) // 2  # 16-bit mono PCM after a 44-byte header
    assert 1.5 * 8000 <= frames <= 4 * 8000  # 1.5 s of notes plus at most the release tail


def test_show_displays_both_in_the_running_kernel(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure, player = musicgen.show(_midi(), sample_rate=8000)
    assert shown == [figure, player]
    shown.clear()
    figure, player = musicgen.show(_midi(), audio=False)
    assert player is None and shown == [figure]


def test_show_without_ipython_is_a_one_line_usage_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", None)
    monkeypatch.setitem(sys.modules, "IPython.display", None)
    with pytest.raises(UsageError, match="needs IPython"):
        musicgen.show(_midi(), audio=False)


def test_musicgen_show_is_the_function_not_a_module():
    import musicgen.notebook  # noqa: F401  (importing the module must not shadow the function)

    assert callable(musicgen.show) and musicgen.show.__name__ == "show"
