import json

import numpy as np
import pytest

from conftest import write_scale_corpus
from musicgen.cli import main

pytestmark = pytest.mark.usefixtures("in_tmp")  # the default token cache lands in tmp_path, not the repo


def test_cli_rtrl_writes_a_bundle_that_samples(tmp_path, capsys):
    from musicgen.bundle import load_bundle
    from musicgen.generate import sample

    corpus = write_scale_corpus(tmp_path / "corpus")
    out = tmp_path / "rtrl"
    code = main(["train", str(corpus), "--out", str(out), "--algorithm", "rtrl", "--units", "6",
                 "--embedding-dim", "4", "--epochs", "2", "--val-fraction", "0.3", "--update-every", "8",
                 "--verbose", "0"])
    assert code == 0, capsys.readouterr().err
    bundle = load_bundle(out)
    assert bundle.model_config.layers == 1 and bundle.model_config.units == 6 and bundle.model_config.dropout == 0
    assert bundle.train_config.algorithm == "rtrl"
    assert bundle.metrics["algorithm"] == "rtrl" and bundle.metrics["epochs_run"] == 2
    history_nll = np.log(bundle.tokenizer.vocab_size)
    assert 0 < bundle.metrics["val_nll"] < history_nll  # learned something beyond a uniform guess
    midi = sample(out, length=40, seed=3)[0]
    assert sum(len(inst.notes) for inst in midi.instruments) > 0
    assert json.loads((out / "metrics.json").read_text())["update_every"] == 8


@pytest.mark.parametrize("flags, message", [
    (["--units", "400"], "influence matrix for a 400-unit gru"),
    (["--preset", "large"], "influence matrix for a 512-unit gru"),
    (["--preset", "small", "--layers", "2"], "RTRL supports exactly one recurrent layer, got 2"),
    (["--preset", "tiny", "--dropout", "0.2"], "RTRL trains without dropout"),
    (["--update-every", "0"], "--update-every: expected a positive integer, got 0"),
    (["--transpose", "2"], "--transpose: not supported with --algorithm rtrl"),
])
def test_cli_rtrl_refusals_exit_2(flags, message, tmp_path, capsys):
    corpus = write_scale_corpus(tmp_path / "corpus", n=3)
    assert main(["train", str(corpus), "--out", str(tmp_path / "o"), "--algorithm", "rtrl", "--verbose", "0",
                 *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp_path / "o" / "bundle.json").exists()
