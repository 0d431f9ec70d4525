"""Sampling controls: parsing, the key bias and density controller by hand, and their measured effect on the shipped
model (trained/default: GRU 2x256 on the Bach chorales, beat mode, PROGRAM events, no KEY events)."""

from pathlib import Path

import numpy as np
import pytest

from musicgen.config import TokenizerConfig
from musicgen.meter import parse_key
from musicgen.controls import (DENSITY_LEAD, Steering, in_scale_share, parse_density, parse_instruments,
                               scale_pitch_classes)
from musicgen.errors import UsageError
from musicgen.rules import EventRules
from musicgen.tokenizer import Tokenizer

DEFAULT = Path(__file__).resolve().parents[1] / "trained" / "default"
TOK = Tokenizer(TokenizerConfig(min_pitch=60, max_pitch=71, velocity_bins=0, programs=False))  # one octave, C4..B4


def test_parsers_take_the_command_line_forms_and_name_the_flag_otherwise():
    assert parse_instruments("73,0,40") == (0, 40, 73)
    assert parse_instruments("40") == (40,)
    assert parse_density("2..4") == (2.0, 4.0)
    assert parse_density(" 0.5 .. 1e1 ") == (0.5, 10.0)
    for bad in ("", "128", "a,b", "-1", ","):
        with pytest.raises(UsageError, match="^--instruments: expected"):
            parse_instruments(bad)
    for bad in ("4..2", "0..3", "3", "x..y", "2...4", "1..inf"):
        with pytest.raises(UsageError, match="^--density: expected"):
            parse_density(bad)


def test_scales_by_hand():
    assert np.flatnonzero(scale_pitch_classes(parse_key("C major"))).tolist() == [0, 2, 4, 5, 7, 9, 11]
    # D natural minor D E F G A Bb C, plus the leading tone C#
    assert np.flatnonzero(scale_pitch_classes(parse_key("D minor"))).tolist() == [0, 1, 2, 4, 5, 7, 9, 10]
    assert in_scale_share([62, 63, 74, 66], parse_key("D minor")) == 0.5


def test_key_bias_takes_the_strength_from_out_of_scale_note_ons_of_pitched_programs_only():
    steer = Steering(TOK, 2, key=parse_key("D minor"), key_strength=3.0)
    rules = EventRules(TOK, 2)
    rules.program[1] = 128  # stream 1 plays drums: unbiased
    logits = np.zeros((2, TOK.vocab_size), np.float32)
    steer.apply(logits, rules)
    on0 = TOK.ranges["NOTE_ON"][0]
    expected = np.zeros(12)
    expected[[3, 6, 8, 11]] = -3.0  # D#, F#, G#, B
    assert logits[0, on0:on0 + 12].tolist() == expected.tolist()
    assert not logits[1].any() and not np.delete(logits[0], np.arange(on0, on0 + 12)).any()


def test_density_controller_pushes_notes_when_behind_and_time_when_ahead():
    step_seconds = 0.1
    steer = Steering(TOK, 2, density=(1.0, 4.0), step_seconds=step_seconds)  # target: 2 notes per second
    rules = EventRules(TOK, 2)
    rules.elapsed[:] = [20, 20]                  # 2 s in: 4.5 notes due (with the lead)
    steer.notes[:] = [0, 9]
    assert steer.deficit(rules.elapsed).tolist() == pytest.approx([2 * (2 + DENSITY_LEAD), 2 * (2 + DENSITY_LEAD) - 9])
    logits = np.zeros((2, TOK.vocab_size), np.float32)
    steer.apply(logits, rules)
    on0, shift0 = TOK.ranges["NOTE_ON"][0], TOK.ranges["TIME_SHIFT"][0]
    assert logits[0, on0] > 0 > logits[0, shift0] and logits[0, on0] == -logits[0, shift0]
    assert logits[1, on0] < 0 < logits[1, shift0]
    steer.observe(np.array([on0 + 3, shift0]))
    assert steer.notes.tolist() == [1, 9]


@pytest.fixture(scope="module")
def default_bundle():
    if not (DEFAULT / "weights.npz").is_file():
        pytest.skip("trained/default is not here")
    from musicgen.bundle import load_bundle

    return load_bundle(DEFAULT)


def _notes_per_second(result, seconds):
    return np.array([sum(len(i.notes) for i in m.instruments) / seconds for m in result.midis])


@pytest.mark.parametrize("low, high, share", [(1.0, 2.0, 0.85), (3.0, 4.5, 0.85)])
def test_density_puts_notes_per_second_in_range_on_most_samples(default_bundle, low, high, share):
    """20 samples of 16 s at 100 qpm at each of seeds 1, 2 and 3, pooled: the model alone plays 5.4-9.0 notes per
    second (none in either range). Up is harder than down for the shipped model: its four voices play one note each
    at a time (docs/controls.md). One seed of 20 samples moves by 10-20 points between seeds: the shipped model
    (Bach with Palestrina, tenth session) landed 100% of 1..2 and 98% of 3..4.5 pooled over the three seeds (its
    seed-1 replicate 100% and 95%); the chorale-only dropout-0.3 model before it (ninth session) 95/100/100% of 1..2
    and 95/90/80% of 3..4.5 at seeds 1/2/3; the dropout-0.4
    one before it 95/95/90% and 80/95/95% with each sample's key drawn from the training pieces' keys, 95/95/90% and
    100/85/95% when it drew its own keys. Earlier defaults, at seed 1 alone: the dropout-0.3 one without the
    last-pitch input 85% and 95%, the dropout-0.1 one 95% and 85%."""
    from musicgen.generate import generate

    free, rates, steered = [], [], None
    for seed in (1, 2, 3):
        free.append(_notes_per_second(generate(default_bundle, seconds=16.0, seed=seed, num_samples=20, tempo=100.0),
                                      16.0))
        steered = generate(default_bundle, seconds=16.0, seed=seed, num_samples=20, tempo=100.0, density=(low, high))
        rates.append(_notes_per_second(steered, 16.0))
    free, rates = np.concatenate(free), np.concatenate(rates)
    assert np.mean((free >= low) & (free <= high)) <= 0.1
    assert np.mean((rates >= low) & (rates <= high)) >= share, rates
    assert steered.sidecars[0]["settings"]["density"] == [low, high]
    assert f"--density {low!r}..{high!r}" in steered.sidecars[0]["regenerate"]


def test_key_bias_raises_the_in_scale_share(tmp_path):
    """A bundle without KEY events (seeded random weights that favour notes), 16 samples of 300 events, seed 2: D
    minor's share of the notes rises with the strength. (The shipped model has KEY events: --key picks its KEY.)"""
    from conftest import make_bundle

    from musicgen.bundle import load_bundle
    from musicgen.config import TokenizerConfig
    from musicgen.generate import generate

    default_bundle = load_bundle(make_bundle(tmp_path / "plain", TokenizerConfig(min_pitch=48, max_pitch=72),
                                             with_keras=False, note_bias=3.0))
    key = parse_key("D minor")
    shares = []
    for strength in (0.0, 2.0):
        result = generate(default_bundle, length=300, seed=2, num_samples=16, key="D minor", key_strength=strength)
        shares.append(np.mean([in_scale_share([n.pitch for i in m.instruments for n in i.notes], key)
                               for m in result.midis]))
    assert shares[1] > shares[0] + 0.15 and shares[1] > 0.9, shares
    sidecar = result.sidecars[0]
    assert sidecar["settings"]["key"] == "D minor" and "--key-strength 2.0" in sidecar["regenerate"]
