"""piece: ``Note`` validates itself; beats ⇄ seconds through a tempo map, by hand and as inverses (hypothesis)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.piece import Note, beats_to_seconds, seconds_to_beats


def test_note_validates_itself():
    Note(60, 0.0, 0.5, 1)
    for bad in [dict(pitch=128), dict(start=1.0), dict(end=-1.0), dict(velocity=0), dict(program=128),
                dict(start=float("nan"))]:
        args = dict(pitch=60, start=0.0, end=0.5, velocity=80) | bad
        with pytest.raises(ValueError):
            Note(**args)


def test_beats_to_seconds_piecewise():
    got = beats_to_seconds(np.array([0.0, 2.0, 4.0, 6.0]), np.array([0.0, 4.0]), np.array([120.0, 60.0]))
    assert got.tolist() == [0.0, 1.0, 2.0, 4.0]
    assert beats_to_seconds(np.array([3.0]), np.array([]), np.array([])).tolist() == [1.5]


def test_seconds_to_beats_piecewise():
    # 120 qpm for beats 0-4 (2 s), then 60 qpm; no map is 120 qpm; a first change at beat 2 also holds before it
    got = seconds_to_beats(np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 4.0]), np.array([120.0, 60.0]))
    assert got.tolist() == [0.0, 2.0, 4.0, 6.0]
    assert seconds_to_beats(np.array([1.5]), np.array([]), np.array([])).tolist() == [3.0]
    assert seconds_to_beats(np.array([1.0, 3.0]), np.array([2.0]), np.array([90.0])).tolist() == [1.5, 4.5]


@settings(max_examples=200, deadline=None)
@given(beats=st.lists(st.floats(0, 1e4), min_size=1, max_size=20),
       tempo=st.lists(st.tuples(st.floats(0, 1e3), st.floats(1, 1e3)), min_size=0, max_size=6))
def test_beats_and_seconds_are_inverses(beats, tempo):
    change_beats = np.array(sorted({b for b, _ in tempo}))
    change_qpm = np.array([dict(tempo)[b] for b in change_beats])
    seconds = beats_to_seconds(np.array(beats), change_beats, change_qpm)
    np.testing.assert_allclose(seconds_to_beats(seconds, change_beats, change_qpm), beats, rtol=1e-9, atol=1e-6)
