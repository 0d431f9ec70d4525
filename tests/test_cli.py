import subprocess
import sys

import pytest

from musicgen.cli import build_parser, main

VERBS = ["ingest", "corpus", "train", "sample", "evaluate", "render"]


def test_help_lists_every_verb_and_does_not_import_tensorflow():
    code = ("import sys; from musicgen.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'heavy import'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for verb in VERBS:
        assert verb in out


@pytest.mark.parametrize("verb", VERBS)
def test_each_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as exc:
        main([verb, "--help"])
    assert exc.value.code == 0
    assert "usage: musicgen " + verb in capsys.readouterr().out


def test_unknown_verb_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["dance"])
    assert exc.value.code == 2


def test_every_public_name_resolves():
    import musicgen

    for name in musicgen.__all__:
        assert getattr(musicgen, name) is not None, name


def test_the_verb_table_names_a_callable_for_every_verb_and_subverb():
    import importlib

    from musicgen.cli import VERBS

    parser = build_parser()
    assert [v.name for v in VERBS] == list(parser._subparsers._group_actions[0].choices)
    for verb in VERBS:
        module, function = verb.run.split(":")
        assert callable(getattr(importlib.import_module(module), function)), verb
    assert parser.parse_args(["corpus", "duplicates", "x"]).run == "musicgen.corpus_cli:cli_duplicates"
    assert parser.parse_args(["corpus", "list"]).run == "musicgen.corpus_cli:cli_corpus"


def test_choice_lists_come_from_the_constants():
    from musicgen.config import CELLS, MODEL_PRESETS, TIME_MODES

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    choices = {a.dest: tuple(a.choices) for a in train._actions if a.choices}
    assert choices["cell"] == CELLS and choices["preset"] == tuple(MODEL_PRESETS) and choices["time_mode"] == TIME_MODES
