"""scripts/reproduction_report.py: halvings, export times, the same-data check and the committed document."""

import csv
import importlib.util
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("reproduction_report", ROOT / "scripts" / "reproduction_report.py")
rr = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rr)


def test_halvings_are_the_epochs_after_which_the_rate_dropped():
    rows = [{"epoch": e, "lr": lr} for e, lr in enumerate([2e-3, 2e-3, 1e-3, 1e-3, 5e-4, 5e-4], start=1)]
    assert rr.halvings(rows) == [3, 5]
    assert rr.halvings(rows[:2]) == []


def test_export_times_read_the_last_progress_line_of_each_corpus():
    log = ("export bach: 100%|##| 410/410 [01:31<00:00,  4.50piece/s]\n"
           "export palestrina: 100%|##| 330/330 [03:46<00:00,  1.46piece/s]\nrc=0 total 6417 s\n")
    assert rr.export_times(log) == {"bach": 91, "palestrina": 226}


def _run(folder: Path, losses: list[float], lrs: list[float], events: int) -> None:
    folder.mkdir()
    with open(folder / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "val_loss", "lr", "seconds"])
        for i, (loss, lr) in enumerate(zip(losses, lrs), start=1):
            w.writerow([i, loss, lr, 100 + i])
    best = min(range(len(losses)), key=losses.__getitem__)
    json.dump({"train_events_per_epoch": events, "train_pieces": 5, "val_events": 50, "val_pieces": 2,
               "split": {"version": 3}, "epochs_run": len(losses), "stopped_early": False, "best_epoch": best + 1,
               "val_nll": losses[best], "val_accuracy": 0.5, "wall_seconds": 100.0 * len(losses)},
              open(folder / "metrics.json", "w"))


def test_report_compares_the_curves_and_refuses_runs_on_other_data(tmp_path):
    _run(tmp_path / "a", [1.0, 0.9, 0.85, 0.84], [2e-3, 2e-3, 2e-3, 1e-3], 1000)
    _run(tmp_path / "b", [1.01, 0.9, 0.86, 0.80], [2e-3, 1e-3, 1e-3, 1e-3], 1000)
    (tmp_path / "b" / "export.log").write_text("export x: 100%|#| 1/1 [00:05<00:00]\nrc=0 total 500 s\n")
    (tmp_path / "b" / "train.time").write_text("495 s wall, 2 cores\n")
    (tmp_path / "b" / "machine.txt").write_text("a test\n")
    text = rr.report(tmp_path / "a", tmp_path / "b")
    assert "| learning rate halved after epochs | 4 | 2 |" in text
    assert "differs by at most 0.0100 nats/event" in text  # epochs 1-2, before either rate dropped
    assert "0.0400 nats/event lower on valid" in text
    assert "| 3 | 0.8500 | 0.002 | 0.8600 | 0.001 | +0.0100 | 103 |" in text
    shutil.rmtree(tmp_path / "a")
    _run(tmp_path / "a", [1.0], [2e-3], 999)
    with pytest.raises(SystemExit, match="train_events_per_epoch"):
        rr.report(tmp_path / "a", tmp_path / "b")


def test_the_committed_document_is_what_the_script_writes_from_the_committed_runs():
    assert (ROOT / "docs" / "reproduce_default.md").read_text() == rr.report(
        ROOT / "trained" / "default", ROOT / "docs" / "reproduce_default")
