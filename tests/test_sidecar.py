"""sidecar: the tempo a MIDI file holds, the regenerate command line, and the key/meter/style a sample drew."""

import shlex

import numpy as np
import pretty_midi
import pytest

from musicgen.config import TokenizerConfig
from musicgen.config_sample import SampleConfig
from musicgen.sidecar import _key_and_meter, regenerate_command, written_tempo
from musicgen.tokenizer import Tokenizer


@pytest.mark.parametrize("qpm, written", [(120.0, 120.0), (13.7, 13.7),
                                          (70000.0, 70011.669)])  # 60e6/70000 = 857.14 µs → 857 → 60e6/857
def test_written_tempo_is_whole_microseconds_per_quarter(qpm, written):
    assert written_tempo(pretty_midi.PrettyMIDI(initial_tempo=qpm)) == written


def test_regenerate_command_writes_the_always_fields_and_only_changed_others():
    cfg = SampleConfig(seed=1, length=64, tempo=90.0, well_formed=False, pitch_range=(40, 80), density=(1.0, 2.5))
    assert shlex.split(regenerate_command("my models/m", cfg, primer="a.mid")) == [
        "musicgen", "sample", "--model", "my models/m", "--length", "64", "--temperature", "1.0", "--top-k", "0",
        "--top-p", "1.0", "--seed", "1", "--num-samples", "1", "--pitch-range", "40", "80", "--tempo", "90.0",
        "--no-well-formed", "--density", "1.0..2.5", "--primer", "a.mid"]


def test_key_and_meter_of_a_vocabulary_without_them_is_empty_and_with_them_the_first():
    plain = Tokenizer(TokenizerConfig())
    assert _key_and_meter(np.array([plain.bos_id, plain.eos_id]), plain) == {}
    tok = Tokenizer(TokenizerConfig(key="token", meter=True))
    tokens = np.array([tok.bos_id, tok.token("KEY", 2), tok.token("KEY", 5), tok.eos_id])
    assert _key_and_meter(tokens, tok) == {"key": "D major", "meter": None}
