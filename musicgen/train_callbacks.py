"""Keras callbacks for ``musicgen.train``: state resets, validation NLL, plateau control and resumable checkpoints.

Call order matters and is the order of ``train.py``'s list: ``ResetStates`` → ``Validation`` (adds ``val_loss`` …
to the epoch logs) → ``Checkpoint`` (learning-rate reduction, early stopping, best weights, last checkpoint, CSV).
Keras appends its progress bar after them, so the bar shows the validation numbers.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from pathlib import Path

import numpy as np

import keras

from musicgen.dataset import eval_groups

CHECKPOINT = "last.keras"
BEST_WEIGHTS = "best.weights.h5"
STATE = "state.json"
HISTORY = "history.csv"


def stateful_layers(model) -> list:
    return [layer for layer in model.layers if getattr(layer, "stateful", False)]


class ResetStates(keras.callbacks.Callback):
    """Zero the recurrent state of every stateful layer at the start of each epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        for layer in stateful_layers(self.model):
            layer.reset_state()


def sequence_metrics(eval_model, pieces, pad_id: int, chunk: int = 256) -> dict:
    """Validation NLL per event (nats), perplexity and accuracy over whole pieces, each from a fresh state.

    ``eval_model`` is a stateful model with a fixed batch size; long pieces run in chunks of ``chunk`` events with
    the state carried between chunks. Every event after a piece's first is one target.
    """
    group = int(eval_model.inputs[0].shape[0])
    total_nll, correct, count = 0.0, 0, 0
    for inputs, targets, weights in eval_groups(pieces, group, pad_id, multiple=chunk):
        for layer in stateful_layers(eval_model):
            layer.reset_state()
        for start in range(0, inputs.shape[1], chunk):
            cut = slice(start, start + chunk)
            mask = weights[:, cut] > 0
            if not mask.any():
                break
            # a direct call updates the stateful layers on every backend; predict_on_batch does not under JAX
            logits = keras.ops.convert_to_numpy(eval_model(inputs[:, cut], training=False))
            logits = logits.astype(np.float64)[mask]
            target = targets[:, cut][mask]
            top = logits.max(axis=-1)
            logz = top + np.log(np.exp(logits - top[:, None]).sum(axis=-1))
            total_nll += float((logz - logits[np.arange(len(target)), target]).sum())
            correct += int((logits.argmax(axis=-1) == target).sum())
            count += int(mask.sum())
    if count == 0:
        return {}
    nll = total_nll / count
    return {"val_loss": nll, "val_perplexity": math.exp(min(nll, 700.0)), "val_accuracy": correct / count,
            "val_events": count}


class Validation(keras.callbacks.Callback):
    """After each epoch, copy the weights into ``eval_model`` and add validation metrics to the logs."""

    def __init__(self, eval_model, pieces, pad_id: int, chunk: int = 256):
        super().__init__()
        self.eval_model, self.pieces, self.pad_id, self.chunk = eval_model, pieces, pad_id, chunk
        self.last: dict = {}

    def on_epoch_end(self, epoch, logs=None):
        self.eval_model.set_weights(self.model.get_weights())
        self.last = sequence_metrics(self.eval_model, self.pieces, self.pad_id, self.chunk)
        logs.update({k: v for k, v in self.last.items() if k != "val_events"})


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(".tmp-" + path.name)
    write(tmp)
    os.replace(tmp, path)


class Checkpoint(keras.callbacks.Callback):
    """Plateau control and resumable checkpoints, with all of its state in ``state.json``.

    Each epoch: the monitored loss improves by more than ``min_delta`` → save the best weights; otherwise after
    ``lr_patience`` epochs without improvement multiply the learning rate by ``lr_factor`` (not below ``min_lr``),
    and after ``patience`` epochs stop. Then ``last.keras`` (model + optimizer) and ``state.json`` are written
    atomically, and ``history.csv`` rewritten from the state, so a killed run resumes from its last finished epoch.
    """

    def __init__(self, folder: Path, state: dict, patience: int, lr_patience: int, lr_factor: float = 0.5,
                 min_lr: float = 1e-5, min_delta: float = 1e-4, events_per_epoch: int = 0):
        super().__init__()
        self.folder, self.state = Path(folder), state
        self.patience, self.lr_patience, self.lr_factor = patience, lr_patience, lr_factor
        self.min_lr, self.min_delta, self.events_per_epoch = min_lr, min_delta, events_per_epoch
        state.setdefault("epochs_done", 0)
        state.setdefault("best", None)
        state.setdefault("best_epoch", None)
        state.setdefault("wait", 0)
        state.setdefault("stopped_early", False)
        state.setdefault("history", [])
        self._started = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self._started
        st = self.state
        monitor = "val_loss" if "val_loss" in logs else "loss"
        value = float(logs[monitor])
        optimizer = self.model.optimizer
        lr = float(keras.ops.convert_to_numpy(optimizer.learning_rate.value))
        if st["best"] is None or value < st["best"] - self.min_delta:
            st.update(best=value, best_epoch=epoch + 1, wait=0, best_logs=_plain(logs), monitor=monitor)
            _write_atomic(self.folder / BEST_WEIGHTS, self.model.save_weights)
        else:
            st["wait"] += 1
            if st["wait"] % self.lr_patience == 0 and lr > self.min_lr:
                lr = max(lr * self.lr_factor, self.min_lr)
                optimizer.learning_rate.assign(lr)
            if st["wait"] >= self.patience:
                st["stopped_early"] = True
                self.model.stop_training = True
        row = {"epoch": epoch + 1, **_plain(logs), "lr": lr, "seconds": round(seconds, 3),
               "train_events_per_s": round(self.events_per_epoch / max(seconds, 1e-9), 1)}
        st["history"].append(row)
        st["epochs_done"] = epoch + 1
        st["lr"] = lr
        _write_atomic(self.folder / CHECKPOINT, self.model.save)
        _write_atomic(self.folder / STATE, lambda p: p.write_text(json.dumps(st, indent=2) + "\n"))
        _write_atomic(self.folder / HISTORY, lambda p: write_history(p, st["history"]))


def _plain(logs: dict) -> dict:
    return {k: float(keras.ops.convert_to_numpy(v)) for k, v in logs.items()}


def write_history(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
