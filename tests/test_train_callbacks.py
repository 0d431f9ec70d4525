"""musicgen.train_callbacks on their own: checkpoint names and manifest checks, pruning, history CSV, the plateau
schedule of ``Checkpoint`` driven by hand-written losses, dropout reseeding and state resets.

The callbacks inside a real ``fit`` (kill and resume, chunked validation against a direct computation) are tested in
tests/test_train.py.
"""

import csv
import json

import keras
import numpy as np
import pytest

from musicgen.config import ModelConfig
from musicgen.errors import UsageError
from musicgen.models import build_model
from musicgen.safeio import sha256_file
from musicgen.train_callbacks import (HISTORY, STATE, Checkpoint, ReseedDropout, ResetStates, checkpoint_names,
                                      prune_checkpoints, read_checkpoint, seed_states, write_history)

TINY = ModelConfig(vocab_size=7, cell="gru", embedding_dim=3, units=4, layers=1, dropout=0.0)


def _manifest(folder, epoch, best_epoch, **changes):
    """A checkpoint folder by hand: two files with made-up bytes and the manifest that names them."""
    names = checkpoint_names(epoch, best_epoch)
    for role, name in names.items():
        (folder / name).write_bytes(f"{role} of epoch {epoch}".encode())
    state = {"epochs_done": epoch, "best_epoch": best_epoch,
             "files": {**names, "sha256": {r: sha256_file(folder / n) for r, n in names.items()}}, **changes}
    (folder / STATE).write_text(json.dumps(state))
    return state


def test_checkpoint_names_carry_their_epochs():
    assert checkpoint_names(3, 2) == {"last": "last-0003.keras", "best": "best-0002.weights.h5"}


def test_read_checkpoint_returns_the_files_its_manifest_names(tmp_path):
    assert read_checkpoint(tmp_path) is None
    state = _manifest(tmp_path, 3, 2)
    assert read_checkpoint(tmp_path) == (state, tmp_path / "last-0003.keras", tmp_path / "best-0002.weights.h5")


@pytest.mark.parametrize("edit, problem", [
    (lambda f: (f / "best-0002.weights.h5").unlink(), r"best: best-0002.weights.h5 is missing"),
    (lambda f: (f / "last-0003.keras").write_bytes(b"edited"), r"last: last-0003.keras does not match its sha256"),
    (lambda f: (f / STATE).write_text(json.dumps({**json.loads((f / STATE).read_text()), "epochs_done": 4})),
     r"last: names 'last-0003.keras', expected 'last-0004.keras'"),
])
def test_an_edited_checkpoint_is_refused(tmp_path, edit, problem):
    _manifest(tmp_path, 3, 2)
    edit(tmp_path)
    with pytest.raises(UsageError, match=rf"^--resume: the checkpoint in .* is inconsistent \({problem}\)"):
        read_checkpoint(tmp_path)


def test_a_manifest_that_is_not_json_and_a_legacy_checkpoint(tmp_path):
    (tmp_path / STATE).write_text("{cut")
    with pytest.raises(UsageError, match="is not valid JSON"):
        read_checkpoint(tmp_path)
    (tmp_path / STATE).write_text(json.dumps({"epochs_done": 5}))  # before the manifest: fixed names, no "files"
    assert read_checkpoint(tmp_path) is None  # no last.keras yet
    (tmp_path / "last.keras").write_bytes(b"x")
    assert read_checkpoint(tmp_path) == ({"epochs_done": 5}, tmp_path / "last.keras", tmp_path / "best.weights.h5")


def test_prune_keeps_what_the_manifest_names(tmp_path):
    state = _manifest(tmp_path, 3, 2)
    for name in ("last-0002.keras", "best-0001.weights.h5", ".last-0004.keras.tmp", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / HISTORY).write_text("epoch\n1\n")
    prune_checkpoints(tmp_path, state)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "best-0002.weights.h5", HISTORY, "last-0003.keras", "notes.txt", STATE]


def test_history_has_every_column_in_order_of_first_appearance(tmp_path):
    write_history(tmp_path / HISTORY, [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 2.0, "val_loss": 2.25}])
    with open(tmp_path / HISTORY, newline="") as f:
        assert list(csv.reader(f)) == [["epoch", "loss", "val_loss"], ["1", "2.5", ""], ["2", "2.0", "2.25"]]


def test_checkpoint_plateau_schedule_from_hand_written_losses(tmp_path):
    model = build_model(TINY)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    state: dict = {}
    cb = Checkpoint(tmp_path, state, patience=3, lr_patience=2, lr_factor=0.5, min_lr=0.004, min_delta=0.1)
    cb.set_model(model)
    # epoch 1 best; 2 improves by only 0.05 (< min_delta): wait 1; 3 improves: best; 4, 5 wait (lr halves at wait 2)
    # 6 waits a third time: stop; the lr would halve again at wait 4, and never goes below min_lr anyway
    got = []
    for epoch, loss in enumerate([3.0, 2.95, 2.5, 2.6, 2.5, 2.45]):
        cb.on_epoch_begin(epoch)
        cb.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
        got.append((state["best_epoch"], state["wait"], round(state["lr"], 6), model.stop_training))
    assert got == [(1, 0, 0.01, False), (1, 1, 0.01, False), (3, 0, 0.01, False), (3, 1, 0.01, False),
                   (3, 2, 0.005, False), (3, 3, 0.005, True)]
    assert state["stopped_early"] and state["monitor"] == "val_loss" and state["best"] == 2.5
    assert read_checkpoint(tmp_path)[1:] == (tmp_path / "last-0006.keras", tmp_path / "best-0003.weights.h5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best-0003.weights.h5", HISTORY, "last-0006.keras", STATE]
    with open(tmp_path / HISTORY, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["epoch"], r["val_loss"], round(float(r["lr"]), 6)) for r in rows][-2:] == [("5", "2.5", 0.005),
                                                                                         ("6", "2.45", 0.005)]


def test_reseed_dropout_depends_only_on_seed_and_epoch():
    model = build_model(ModelConfig(**{**TINY.to_dict(), "dropout": 0.5}))
    assert seed_states(model), "a Dropout layer owns a seed generator"

    def states_at(seed, epoch):
        cb = ReseedDropout(seed)
        cb.set_model(model)
        cb.on_epoch_begin(epoch)
        return [keras.ops.convert_to_numpy(v.value).tolist() for v in seed_states(model)]

    first = states_at(7, 2)
    states_at(7, 3)
    assert states_at(7, 2) == first != states_at(8, 2)
    assert all(counter == 0 for _, counter in first)


def test_reset_states_zeroes_every_stateful_layer():
    model = build_model(TINY, batch_size=2, stateful=True)
    model(np.array([[1, 4, 5], [2, 3, 6]], np.int32))
    layer = model.get_layer("rnn_0")
    assert np.abs(keras.ops.convert_to_numpy(layer.states[0])).sum() > 0
    cb = ResetStates()
    cb.set_model(model)
    cb.on_epoch_begin(0)
    assert not keras.ops.convert_to_numpy(layer.states[0]).any()
