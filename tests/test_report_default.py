"""scripts/report_default.py: the marker rewriting and the sentences it writes, on tiny hand-made text."""

import importlib.util
from pathlib import Path

import pytest

from musicgen.baselines import score_row

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "report_default.py"
spec = importlib.util.spec_from_file_location("report_default", SCRIPT)
report = importlib.util.module_from_spec(spec)
spec.loader.exec_module(report)

TEXT = """# Title
intro
<!-- report:a -->
old a
old a, line 2
<!-- /report -->
middle
<!-- report:b -->
<!-- /report -->
end
"""


def test_replace_marked_swaps_only_the_lines_between_the_markers():
    out = report.replace_marked(TEXT, "a", "\nnew a\n")
    assert out == TEXT.replace("old a\nold a, line 2\n", "new a\n")
    out = report.replace_marked(out, "b", "new b")
    assert out.endswith("<!-- report:b -->\nnew b\n<!-- /report -->\nend\n")
    assert report.replace_marked(out, "a", "new a") == out  # idempotent
    with pytest.raises(ValueError, match="report:c -->: expected exactly one, found 0"):
        report.replace_marked(TEXT, "c", "x")
    with pytest.raises(ValueError, match="expected exactly one, found 2"):
        report.replace_marked(TEXT + "<!-- report:a -->\n", "a", "x")
    with pytest.raises(ValueError, match="no <!-- /report -->"):
        report.replace_marked("<!-- report:a -->\nx\n<!-- report:b -->\n<!-- /report -->\n", "a", "y")


def test_the_paragraphs_state_numbers_and_settings():
    result = {"split": {"name": "test", "legacy": True, "train": 369, "valid": 41, "test": 41},
              "scores": {"model": score_row(0.9, 0.7, 29185), "unigram": score_row(4.2, 0.1, 29185),
                         "kneser_ney": {**score_row(1.5, None, 29185), "order": 8, "discount": 0.9}},
              "baselines": {"transpose": 3}, "margin": 0.4,
              "samples": {"num_samples": 64, "length": 512, "seed": 0, "sets": {
                  "raw": {"two_sample": {"accuracy": 0.8, "ci_low": 0.75, "ci_high": 0.85}},
                  "rules": {"two_sample": None}}}}
    text = report.summary_paragraph(result, "musicgen evaluate m c")
    assert "Held out: 0.90 nats/event, 40% below the best Kneser-Ney n-gram (8-gram, D 0.9" in text.replace("\n", " ")
    assert "tells raw samples from real excerpts with accuracy 0.80 (95% CI 0.75–0.85)" in text.replace("\n", " ")
    rules = {**result["samples"]["sets"], "rules": {"two_sample": {"accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7}}}
    both = report.summary_paragraph({**result, "samples": {**result["samples"], "sets": rules}}, "c").replace("\n", " ")
    assert ("tells `musicgen sample`'s samples (its defaults) from real excerpts with accuracy 0.60 (95% CI 0.50–0.70) "
            "(0.5 = indistinguishable); raw samples (temperature 1, no masks) 0.80 (95% CI 0.75–0.85).") in both
    para = report.evaluating_paragraph(result, "musicgen evaluate m c")
    flat = para.replace("\n", " ")
    assert "test split (41 pieces, a legacy split: valid = test)" in flat and "seed 0" in flat
    assert "Two-sample test (rules): not run." in flat and "the unigram 4.200" in flat
    assert all(len(line) <= report.WIDTH for line in para.splitlines()) and para.count("\n") >= 2


def test_command_of_reads_the_settings_off_the_report():
    result = {"model": {"path": "trained/default"}, "corpus": {"path": "data/bach_bars"}, "split": {"name": "test"},
              "samples": {"num_samples": 64, "length": 512, "seed": 0},
              "baselines": {"selection": {"orders": [2, 3, 12]}}}
    assert report.command_of(result) == ("musicgen evaluate trained/default data/bach_bars --split test "
                                         "--num-samples 64 --length 512 --seed 0 --max-order 12")
    assert report.command_of({**result, "samples": None}).endswith("--split test --num-samples 0 --max-order 12")
    styled = {**result, "split": {"name": "valid", "style": "bach"}}
    assert " --split valid --style bach --num-samples 64 " in report.command_of(styled)
    styled["split"].update(valid=84, evaluated=50, legacy=False)
    assert report.settings_text(styled, "c").startswith("`c`: valid split (50 pieces of style bach, of 84), 64 samples")


def test_from_saved_needs_a_saved_report(tmp_path, capsys):
    assert report.main(["--model", str(tmp_path), "--from-saved"]) == 2
    assert capsys.readouterr().err.strip() == (f"--from-saved: {tmp_path / 'evaluation.json'} does not exist; "
                                               "run with --save first")
