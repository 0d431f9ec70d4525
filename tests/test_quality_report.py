"""scripts/quality_report.py: its pieces by hand (arguments, split check, lengths, goals, the markdown and its
markers) and a run on two tiny bundles with a copycat sampler."""

import importlib.util
import math
import types
from pathlib import Path

import numpy as np
import pytest

from musicgen.errors import UsageError

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "quality_report.py"
spec = importlib.util.spec_from_file_location("quality_report", SCRIPT)
quality = importlib.util.module_from_spec(spec)
spec.loader.exec_module(quality)


def test_bundle_arguments():
    assert quality.parse_bundle_arg("base=/runs/abl/base") == ("base", "/runs/abl/base")
    assert quality.parse_bundle_arg("v+meter=a=b") == ("v+meter", "a=b")  # the first = splits
    for bad in ("base", "=x", "base=", "a b=x"):
        with pytest.raises(UsageError, match="--bundle: expected NAME=PATH"):
            quality.parse_bundle_arg(bad)


def test_same_test_pieces_by_content_key():
    same = quality.same_test_pieces({"a": ["k1", "k2"], "b": ["k2", "k1"]})
    assert same == {"same": True, "pieces": 2, "differ": {}}
    differ = quality.same_test_pieces({"a": ["k1", "k2", "k3"], "b": ["k1", "k4"], "c": ["k1", "k2", "k3"]})
    assert differ == {"same": False, "pieces": 3, "differ": {"b": [2, 1]}}  # b misses k2 and k3, adds k4


def test_auto_lengths_follow_the_music():
    tok = types.SimpleNamespace(decode_notes=lambda p: [0] * (len(p) // 4))  # 4 events a note
    pieces = [np.zeros(10), np.zeros(20), np.zeros(42)]  # notes 2, 5, 10: 72 events over 17 notes
    assert quality.auto_lengths(tok, pieces, excerpt_notes=6) == (20, round(6 * 72 / 17))  # (20, 25)
    voiced = types.SimpleNamespace(decode_notes=lambda p: [0] * (len(p) // 8))  # twice the events per note
    assert quality.auto_lengths(voiced, [np.zeros(16), np.zeros(32)], excerpt_notes=6) == (24, 48)
    with pytest.raises(UsageError, match="hold no notes"):
        quality.auto_lengths(voiced, [np.zeros(4)], 6)


def test_nll_per_note_over_a_common_count():
    merged = {"name": "m", "nll_event": 1.0, "events": 950, "notes": 95}  # an encoding that loses 5 of 100 notes
    voiced = {"name": "v", "nll_event": 0.5, "events": 2000, "notes": 100}
    quality.add_common_note_nll([merged, voiced])
    assert merged["common_notes"] == voiced["common_notes"] == 100
    assert merged["nll_note_common"] == pytest.approx(9.5) and voiced["nll_note_common"] == pytest.approx(10.0)
    # a row on other test pieces shares no count with them: its own group
    other = {"name": "o", "nll_event": 0.5, "events": 800, "notes": 80}
    quality.add_common_note_nll([merged, voiced, other], {"m": "A", "v": "A", "o": "B"})
    assert merged["common_notes"] == 100 and other["common_notes"] == 80 and other["common_group"] == ["o"]
    assert other["nll_note_common"] == pytest.approx(5.0) and merged["common_group"] == ["m", "v"]


def _row(name, overlap=0.8, scale=(0.93, 0.94), on_beat=(0.75, 0.80), long=(0.003, 0.003), acc=(0.6, 0.5, 0.68),
         copy=(0.1, 0.4), nll=2.0):
    shares = {"on_beat_onset_share": on_beat, "long_note_share": long, "chord_onset_share": (0.8, 0.8)}
    return {"name": name, "overlap": {k: overlap for k in quality.STATISTICS},
            "spread": {"pitch_in_scale_rate": {"samples": [scale[0], 0, 1], "test": [scale[1], 0, 1]}},
            "pooled": {k: {"samples": v[0], "test": v[1]} for k, v in shares.items()},
            "two_sample": {"accuracy": acc[0], "ci_low": acc[1], "ci_high": acc[2]},
            "copy_rate": copy[0], "heldout_copy_rate": copy[1], "nll_note": nll + 0.25, "nll_note_common": nll}


def test_goals_pass_and_fail_by_hand():
    today = _row("today", overlap=0.5, scale=(0.83, 0.94), on_beat=(0.68, 0.80), long=(0.015, 0.003),
                 acc=(0.85, 0.78, 0.9), copy=(0.5, 0.4), nll=2.5)
    today["overlap"]["ioi_histogram"] = 0.97
    g = quality.goals(today, today)
    assert g["overlap"] == (False, "**fail**: 1 of 11 >= 0.7; lowest 0.50 (range)")
    assert g["scale"] == (False, "**fail**: 0.830 vs 0.940 (-0.110)")
    assert g["on_beat"] == (False, "**fail**: 68.0% vs 80.0% (-15% relative)")
    assert g["long_notes"] == (False, "**fail**: 1.5% vs 0.3% (+400% relative)")
    assert g["two_sample"] == (False, "**fail**: upper end 0.90 (+0.20)")
    assert g["copy"] == (False, "**fail**: 50% vs 40%")
    assert g["two_sample_vs_today"] == g["nll_vs_today"] == (None, "(today's model)")
    new = quality.goals(_row("new"), today)
    assert all(ok for ok, _ in new.values()), new
    assert new["scale"][1] == "pass: 0.930 vs 0.940 (-0.010)" and new["on_beat"][1].endswith("(-6% relative)")
    assert new["two_sample"][1] == "pass: upper end 0.68 (-0.02)"
    assert new["two_sample_vs_today"][1] == "pass: 0.600 vs 0.850 (-0.250)"
    assert new["nll_vs_today"][1] == "pass: 2.000 vs 2.500 nats/note (-0.500)"
    broken = _row("broken")
    broken["two_sample"] = {"error": "too short"}
    broken["overlap"]["polyphony"] = math.nan  # nothing to measure counts as failing
    g = quality.goals(broken, today)
    assert g["two_sample"] == (False, "**not run**: too short") and g["two_sample_vs_today"][0] is False
    assert g["overlap"] == (False, "**fail**: 10 of 11 >= 0.7; lowest - (polyphony)")


def test_write_doc_rewrites_only_between_the_markers(tmp_path):
    path = tmp_path / "docs" / "quality.md"
    path.parent.mkdir()
    quality.write_doc(path, "first table")
    assert path.read_text() == quality.SKELETON.replace("<!-- report:quality -->\n",
                                                        "<!-- report:quality -->\nfirst table\n")
    path.write_text(path.read_text() + "\n## Closing note\nhand-written\n")
    quality.write_doc(path, "second table")
    text = path.read_text()
    assert "second table" in text and "first table" not in text and text.endswith("## Closing note\nhand-written\n")
    quality.write_doc(path, "second table")
    assert path.read_text() == text  # idempotent


# ---------------------------------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def two_bundles(tmp_path_factory):
    """Two untrained tiny GRUs (different weights) on the same cache of 8 scale pieces, three-way split."""
    import keras

    from conftest import write_scale_corpus
    from musicgen.bundle import save_bundle
    from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
    from musicgen.corpus import ingest
    from musicgen.models import build_model
    from musicgen.tokenizer import Tokenizer

    tmp = tmp_path_factory.mktemp("quality")
    tcfg = TokenizerConfig(velocity_bins=0, programs=False, max_shift_steps=12)
    cache = ingest(write_scale_corpus(tmp / "music", n=8), tmp / "cache", tcfg, workers=1, progress=False).out_dir
    mcfg = ModelConfig(vocab_size=Tokenizer(tcfg).vocab_size, cell="gru", embedding_dim=4, units=5, layers=1,
                       dropout=0.0)
    paths = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        paths.append(save_bundle(tmp / f"b{seed}", model=build_model(mcfg), model_config=mcfg,
                                 train_config=TrainConfig(val_fraction=0.25, test_fraction=0.25, seed=0, transpose=0),
                                 tokenizer_config=tcfg, metrics={"val_nll": None, "epochs_run": 3}))
    return paths, cache


def test_run_and_main_on_two_tiny_bundles(two_bundles, tmp_path, capsys):
    from musicgen.corpus import load_tokens

    paths, cache = two_bundles
    data = load_tokens(cache)
    lengths = []

    def copycat(bundle, num_samples, length, seed, **settings):  # every sample is a corpus piece's beginning
        lengths.append(length)
        return [data.pieces[i % len(data.pieces)][:length] for i in range(num_samples)]

    # b names its own corpus (NAME=PATH@CORPUS); here the same cache, so the same split
    report = quality.run([("a", f"{paths[0]}@{cache}"), ("b", f"{paths[1]}@{cache}")], str(tmp_path / "not-read"),
                         reference="a", num_samples=3, excerpt_notes=4, sample_fn=copycat)
    assert report["split"]["corpora"] == {"a": str(cache), "b": str(cache)} and report["split"]["same"]
    lengths.clear()
    report = quality.run([("a", str(paths[0])), ("b", str(paths[1]))], str(cache), reference="a", num_samples=3,
                         excerpt_notes=4, sample_fn=copycat)
    a, b = report["rows"]
    assert report["split"]["same"] and report["split"]["pieces"] >= 1 and report["reference"] == "a"
    assert a["encoding"] == "GRU 1x5, 3 ep, no voices/meter/key" and a["events"] == b["events"]
    assert a["nll_event"] != b["nll_event"] and a["notes"] == b["notes"] > 0
    assert a["nll_note"] == pytest.approx(a["nll_event"] * a["events"] / a["notes"])
    assert a["common_notes"] == a["notes"] and a["nll_note_common"] == pytest.approx(a["nll_note"])
    assert lengths == [a["sample_length"], b["sample_length"]]
    assert "error" in a["two_sample"] and a["goals"]["two_sample"][0] is False  # too few pieces for 5 folds
    assert a["goals"]["nll_vs_today"][0] is None and b["goals"]["nll_vs_today"][0] == (b["nll_note"] < a["nll_note"])
    text = quality.markdown({**report, "settings": {**report["settings"], "command": "python x"}})
    assert "all bundles hold the same" in text and "| a | GRU 1x5, 3 ep" in text and "| b |" in text
    assert "Today's model: `a`" in text and "3 per bundle, seed 0" in text

    out = tmp_path / "quality.md"
    argv = ["--bundle", f"a={paths[0]}", "--corpus", str(cache), "--num-samples", "2", "--out", str(out)]
    assert quality.main(argv) == 0
    first = out.read_text()
    assert "--num-samples 2" in first and "| a |" in first and first.count("<!-- report:quality -->") == 1
    assert quality.main(argv + ["--reference", "zzz"]) == 2
    assert "--reference: expected one of ['a'], got 'zzz'" in capsys.readouterr().err
    assert quality.main(["--bundle", "nope", "--corpus", str(cache)]) == 2


def test_valid_split_rows_per_temperature_and_a_marker(two_bundles, tmp_path):
    from musicgen.corpus import load_tokens

    paths, cache = two_bundles
    data = load_tokens(cache)
    seen = []

    def copycat(bundle, num_samples, length, seed, **settings):
        seen.append(settings["temperature"])
        return [data.pieces[i % len(data.pieces)][:length] for i in range(num_samples)]

    report = quality.run([("a T=0.5", str(paths[0])), ("a T=2", str(paths[0]))], str(cache), num_samples=2,
                         excerpt_notes=4, sample_fn=copycat, split="valid",
                         row_sampling={"a T=0.5": {"temperature": 0.5}, "a T=2": {"temperature": 2.0}})
    assert seen == [0.5, 2.0] and report["settings"]["split"] == "valid"
    test = quality.run([("a", str(paths[0]))], str(cache), num_samples=2, excerpt_notes=4, sample_fn=copycat)
    assert seen[-1] == 1.0 and report["rows"][0]["events"] != test["rows"][0]["events"]  # other pieces
    text = quality.markdown({**report, "settings": {**report["settings"], "command": "python x --split test"}})
    assert "Valid split: all bundles hold the same" in text and "valid pieces" in text
    assert " test " not in text.replace("python x --split test", "")  # the command line stays as typed
    assert "python x --split test" in text and "temperature or seed per row" in text
    out = tmp_path / "q.md"
    out.write_text("# hand-written\n")
    quality.write_doc(out, text, marker="valid-temperature")
    written = out.read_text()
    assert written.startswith("# hand-written\n") and "<!-- report:valid-temperature -->\n" in written
    quality.write_doc(out, "again", marker="valid-temperature")
    assert "again" in out.read_text() and "Valid split" not in out.read_text()


def test_rows_per_seed_and_their_median(two_bundles, tmp_path, capsys):
    from musicgen.corpus import load_tokens

    paths, cache = two_bundles
    data = load_tokens(cache)
    seeds = []

    def copycat(bundle, num_samples, length, seed, **settings):
        seeds.append(seed)
        assert "seed" not in settings
        return [data.pieces[(i + seed) % len(data.pieces)][:length] for i in range(num_samples)]

    rows = {"a s=0": {"seed": 0}, "a s=3": {"seed": 3}, "b s=0": {"seed": 0}}
    report = quality.run([(n, str(paths[n[0] == "b"])) for n in rows], str(cache), num_samples=2, excerpt_notes=4,
                         sample_fn=copycat, row_sampling=rows, reference="a s=0")
    assert seeds == [0, 3, 0] and [r["seed"] for r in report["rows"]] == [0, 3, 0]
    lines = quality.seed_summary(report["rows"])
    assert lines[1] == "Across sampling seeds (median [min–max] over each bundle's rows):"
    a, b = (line for line in lines if line.startswith(("| a |", "| b |")))
    copies = [100 * r["copy_rate"] for r in report["rows"][:2]]
    assert a.startswith("| a | 0, 3 | - | ") and f"{np.median(copies):.0f}% [{min(copies):.0f}–" in a
    assert b.startswith("| b | 0 | ")
    assert quality.seed_summary(report["rows"][2:]) == []  # one seed per bundle: no table
    assert quality.main(["--bundle", f"a={paths[0]}", "--corpus", str(cache), "--seed", "0", "1", "--temperature",
                         "0.5", "1", "--out", str(tmp_path / "q.md")]) == 2
    assert "--seed: several seeds with several temperatures" in capsys.readouterr().err


def test_recipe_summary_means_over_weight_seeds():
    def row(name, nll, acc, copy):
        return {"name": name, "nll_note": nll, "copy_rate": copy, "two_sample": {"accuracy": acc} if acc else {}}

    rows = [row("r_w0 s=0", 1.8, 0.60, 0.2), row("r_w0 s=1", 1.8, 0.64, 0.4), row("r_w0 s=2", 1.8, 0.70, 0.3),
            row("r_w1 s=0", 1.9, 0.50, 0.1), row("r_w1 s=1", 1.9, 0.54, 0.1),
            row("q_w0", 2.0, 0.7, 0.5), row("other s=0", 1.0, 0.5, 0.0)]
    lines = quality.recipe_summary(rows)
    r, q = (line for line in lines if line.startswith(("| r |", "| q |")))
    # r: medians over sampling seeds 0.64 and 0.52, copy 30% and 10%; means 1.850, 0.580, 20%
    assert r == "| r | 0, 1 | 1.800, 1.900 | 1.850 | 0.640, 0.520 | 0.580 | 30%, 10% | 20% |"
    assert q == "| q | 0 | 2.000 | 2.000 | 0.700 | 0.700 | 50% | 50% |"
    assert not any(line.startswith("| other") for line in lines)  # not named RECIPE_wK
    assert quality.recipe_summary(rows[5:]) == []  # no recipe with two weight seeds: no table
    assert "nan" in quality.recipe_summary([row("x_w0", 1.0, None, 0.0), row("x_w1", 1.0, 0.5, 0.0)])[-1]


# ------------------------------------------------------------------------------------ nll_by_kind.py, long_notes.py
def _script(name):
    path = SCRIPT.parent / f"{name}.py"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def test_nll_by_kind_sums_to_nats_per_note_and_writes_its_marker(two_bundles, tmp_path, capsys):
    by_kind = _script("nll_by_kind")
    (b0, b1), cache = two_bundles
    r = by_kind.kinds_of(str(b0), str(cache), "valid")
    assert r["names"] and r["all_notes"] > 0 and r["small_pieces"] == len(r["names"])  # no VOICE: "0 voices"
    assert math.isclose(sum(r["all"].values()), r["all_nats_note"], rel_tol=1e-9)
    assert set(r["all"]) <= {"NOTE_ON", "NOTE_OFF", "TIME_SHIFT", "EOS"} and r["all"]["NOTE_ON"] > 0
    doc = tmp_path / "doc.md"
    doc.write_text("# x\n\n<!-- report:kinds -->\nold\n<!-- /report -->\ntail\n")
    assert by_kind.main(["--bundle", f"a={b0}", "--bundle", f"b={b1}", "--corpus", str(cache), "--out", str(doc),
                         "--marker", "kinds"]) == 0
    text = doc.read_text()
    assert "old" not in text and text.endswith("<!-- /report -->\ntail\n")
    assert "| a | all | " in text and "| b | <= 4 voices | " in text and "python scripts/nll_by_kind.py" in text
    with pytest.raises(SystemExit):
        by_kind.main(["--bundle", f"a={b0}", "--corpus", str(cache), "--out", str(doc)])  # --marker missing
    capsys.readouterr()


def test_long_notes_per_piece_interval_and_report():
    from musicgen.config import TokenizerConfig
    from musicgen.piece import Note
    from musicgen.tokenizer import Tokenizer

    long_notes = _script("long_notes")
    tok = Tokenizer(TokenizerConfig(velocity_bins=0, programs=False))
    # a whole note in the middle, a 5-quarter final chord of two notes, a 9-quarter note (past the 8-quarter cap)
    notes = [Note(p, s, e, 80) for p, s, e in ((60, 0.0, 1.0), (62, 1.0, 5.0), (64, 5.0, 6.0), (67, 6.0, 11.0),
                                               (72, 6.0, 11.0), (48, 0.0, 9.0))]
    r = long_notes.piece_counts(tok, tok.encode_notes(notes))
    assert r == {"notes": 6, "long": 4, "long_at_end": 2, "over_cap": 1, "longest": 9.0}
    short = long_notes.piece_counts(tok, tok.encode_notes([Note(60, 0.0, 1.0, 80), Note(62, 1.0, 2.0, 80)]))
    assert short["long"] == 0 and long_notes.count(tok, [tok.encode_notes(notes)] * 2)["long_at_end"] == 4
    rows = [r, short, short]
    lo, hi = long_notes.pooled_interval(rows)
    assert 0.0 <= lo <= 4 / 10 <= hi <= 4 / 6  # pooled 4 of 10 notes; at most all draws of the long piece
    text = long_notes.report(["a.mid", "b.mid", "c.mid"], rows, "test", 8.0, "cmd")
    assert "3 pieces, 10 notes, 4 of >= 4 quarter notes (40.00%" in text and "in 1 pieces" in text
    assert "Without a.mid, the piece with the most (4 of its 6 notes): 0.00%" in text
    assert "| a.mid | 6 | 4 | 2 | 9 |" in text and "b.mid" not in text.split("Without")[1]
