"""musicgen.fused_rnn.use_cpu_lanes: how many lanes a TensorFlow CPU training run gets, and that ``musicgen train``
in a fresh process runs with them (the test process itself keeps one lane: conftest sets MUSICGEN_TF_LANES=1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from musicgen.errors import UsageError
from musicgen.fused_rnn import MAX_AUTO_CORES, auto_lanes
from musicgen.safeio import available_cores

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("batch, cores, setting, lanes", [
    (64, 2, None, 2), (16, 2, None, 2), (64, 1, None, 1), (64, 4, None, 4), (64, MAX_AUTO_CORES + 1, None, 1),
    (4, 2, None, 1), (8, 2, None, 2), (64, 2, "1", 1), (64, 16, "3", 3), (64, 2, "", 2), (8, 2, "4", 2)])
def test_auto_lanes(batch, cores, setting, lanes):
    assert auto_lanes(batch, cores, setting) == lanes


@pytest.mark.parametrize("setting", ["0", "-2", "two", "1.5"])
def test_bad_setting_is_a_usage_error(setting):
    with pytest.raises(UsageError, match="MUSICGEN_TF_LANES: expected a positive integer"):
        auto_lanes(64, 2, setting)


def _train(tmp_path, lanes: str | None) -> subprocess.CompletedProcess:
    from conftest import write_scale_corpus

    corpus = tmp_path / "scales"
    if not corpus.exists():
        write_scale_corpus(corpus, n=8)
    env = {k: v for k, v in os.environ.items() if k != "MUSICGEN_TF_LANES"}
    env.update(KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    if lanes is not None:
        env["MUSICGEN_TF_LANES"] = lanes
    out = tmp_path / f"bundle-{lanes}"
    return subprocess.run([sys.executable, "-m", "musicgen", "train", str(corpus), "--out", str(out), "--cell", "lstm",
                           "--preset", "tiny", "--epochs", "1", "--batch-size", "8", "--bptt", "16", "--verbose", "0",
                           "--no-tensorboard"], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_musicgen_train_runs_in_lanes(tmp_path):
    pytest.importorskip("tensorflow")
    run = _train(tmp_path, "2")
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((tmp_path / "bundle-2" / "metrics.json").read_text())
    assert metrics["cpu_lanes"] == {"lanes": 2, "intra_op": 1, "inter_op": max(2, available_cores())}
    bad = _train(tmp_path, "zero")  # refused before any ingest or output
    assert not (tmp_path / "bundle-zero").exists() and bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "musicgen train: error: MUSICGEN_TF_LANES: expected a positive integer (1 = off), got 'zero'"]
