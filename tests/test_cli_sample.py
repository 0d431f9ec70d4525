"""`musicgen sample`'s options ↔ SampleConfig: every field has a flag, and the sidecar's regenerate line parses back
to the same config."""

import dataclasses
import shlex

import pytest

from musicgen.cli import build_parser, main
from musicgen.cli_sample import sample_config
from musicgen.config import SampleConfig
from musicgen.sidecar import regenerate_command

EVERY_FIELD_CHANGED = SampleConfig(
    length=300, seconds=12.5, temperature=0.8, top_k=20, top_p=0.9, seed=7, num_samples=3, keep_primer=False,
    max_polyphony=4, pitch_range=(40, 80), allow_eos=True, tempo=96.0, program=19, max_note_length=4.0,
    well_formed=False, key="D minor", key_strength=3.0, instruments=(0, 40, 73), drums=True, density=(2.0, 4.5),
    style="folk", voices=4)


def parse(argv):
    return build_parser().parse_args(["sample", *argv])


def test_the_example_changes_every_field():
    default = SampleConfig()
    assert all(getattr(EVERY_FIELD_CHANGED, f.name) != getattr(default, f.name)
               for f in dataclasses.fields(SampleConfig))


@pytest.mark.parametrize("cfg", [SampleConfig(seed=1, length=512, tempo=120.0), EVERY_FIELD_CHANGED,
                                 EVERY_FIELD_CHANGED.replace(drums=False, keep_primer=True, well_formed=True)])
def test_regenerate_command_parses_back_to_the_same_config(cfg):
    argv = shlex.split(regenerate_command("trained/x y", cfg, primer="/music/a b.mid"))
    assert argv[:4] == ["musicgen", "sample", "--model", "trained/x y"]
    args = parse(argv[2:])
    assert sample_config(args) == cfg and args.primer == "/music/a b.mid" and args.model == "trained/x y"


def test_defaults_make_the_default_config_and_render_options_come_from_render():
    args = parse([])
    assert sample_config(args) == SampleConfig()
    assert (args.wav, args.png, args.soundfont, args.sample_rate, args.time_unit) == (None, None, None, 44100, "beats")


@pytest.mark.parametrize("argv, message", [
    (["--instruments", "0,200"], "--instruments: expected General MIDI programs"),
    (["--density", "5..2"], "--density: expected LOW..HIGH"),
    (["--key", "H"], "--key: expected"),
    (["--key-strength", "-1"], "key_strength: expected a number of nats in [0, 100], got -1.0"),
])
def test_bad_control_values_exit_2_with_one_line(argv, message, tmp_path, capsys):
    assert main(["sample", "--model", str(tmp_path), "-o", str(tmp_path / "o.mid"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
