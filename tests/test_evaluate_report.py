"""evaluate_report: the table, JSON (non-finite numbers as null) and plots of a hand-made evaluate result."""

import json
import math

import pytest

from musicgen import stats
from musicgen.baselines import score_row
from musicgen.evaluate_report import format_table, write_json, write_plots


def _fake_result():
    feats = [stats.piece_features([])]  # all nan: must print "-" and write null
    sample_set = {"settings": {}, "events_mean": 10.0, "stats": stats.compare_feature_sets(feats, feats),
                  "memorization": {"copy_n": 2, "length": 10, "sample_longest": [2], "sample_longest_median": 2.0,
                                   "copy_rate": 1.0, "heldout_longest_median": 1.0, "heldout_copy_rate": 0.0},
                  "two_sample": {"accuracy": 0.625, "ci_low": 0.5, "ci_high": 0.75, "n_real": 8, "n_generated": 8,
                                 "length": 4, "folds": 2}}
    kn = {**score_row(1.75, None, 100), "order": 3, "discount": 0.9}
    return {"model": {"path": "m", "cell": "lstm", "layers": 1, "units": 8, "vocab_size": 3, "trained_val_nll": 1.5},
            "corpus": {"path": "c", "pieces": 6, "time_mode": "beat"},
            "split": {"name": "test", "legacy": True, "train": 4, "valid": 2, "test": 2, "seed": 0},
            "scores": {"model": score_row(1.5, 0.4, 100), "unigram": score_row(2.0, 0.1, 100), "kneser_ney": kn},
            "baselines": {"transpose": 3, "train_pieces": 28, "train_events": 700,
                          "selection": {"orders": [2, 3], "discounts": [0.5, 0.9], "valid_nll": [[2, 2], [2, 1.9]]}},
            "margin": 1 - 1.5 / 1.75,
            "samples": {"num_samples": 1, "length": 10, "seed": 0, "copy_n": 2, "excerpt_length": 4,
                        "sets": {"raw": sample_set,
                                 "rules": {**sample_set, "two_sample": {"error": "samples too short"}}}}}


def test_table_json_and_plots(tmp_path):
    result = _fake_result()
    table = format_table(result)
    assert "split test (legacy split: valid = test" in table and "4 train, 2 valid, 2 test" in table
    assert "Kneser-Ney 3-gram, D 0.9" in table and "unigram (add-one)" in table
    assert "1.5000" in table and "2.1640" in table  # 1.5 nats = 2.1640 bits
    assert "±3 semitones" in table and "chosen on the valid split (legacy split: the same pieces as test)" in table
    assert "the best order is the highest tried" in table and "14.3% lower NLL" in table
    assert "raw   = temperature 1" in table and "rules = `musicgen sample` defaults" in table
    assert "copying >= 2 events: 100% of samples (test pieces: 0%)" in table
    assert "raw: two-sample classifier accuracy 0.625 [0.500, 0.750]" in table
    assert "rules: two-sample test not run: samples too short" in table
    path = write_json(result, tmp_path / "out" / "report.json")
    back = json.loads(path.read_text())
    assert back["scores"]["kneser_ney"]["accuracy"] is None
    assert back["samples"]["sets"]["raw"]["stats"]["pitch_range"]["overlap"] is None
    assert back["scores"]["model"]["perplexity"] == pytest.approx(math.exp(1.5))
    assert [p.name for p in tmp_path.joinpath("out").iterdir()] == ["report.json"]  # no temp file left
    pngs = write_plots(result, tmp_path / "plots")
    assert sorted(p.name for p in pngs) == ["features.png", "ioi_histogram.png", "pitch_class_histogram.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
