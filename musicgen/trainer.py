"""Training: truncated BPTT over token pieces with Keras, resumable, ending in a bundle.

``train_model`` is the trainer (tokens in, best model and metrics out); ``train_cli.cli_train`` is ``musicgen
train``: corpus → tokens (cached) → ``fit_model`` → ``bundle.save_bundle``.

Working files live inside the output folder and survive the bundle swap::

    OUT/checkpoints/last-EEEE.keras        model + optimizer after the last finished epoch EEEE
    OUT/checkpoints/best-BBBB.weights.h5   weights of the best validation epoch BBBB
    OUT/checkpoints/state.json             the manifest, written last: epoch counter, plateau state, learning rate,
                                           configs, per-epoch history, the two file names and their sha256
    OUT/checkpoints/history.csv            the history as CSV (copied into the bundle)
    OUT/logs/                              TensorBoard event files

A resumed run equals an uninterrupted one: the batches of epoch e depend only on (seed, e), the dropout masks are
reseeded from (seed, e) each epoch, and the optimizer state is in the checkpoint.

Keras 3 APIs only: the same code trains with ``KERAS_BACKEND=tensorflow`` (default), ``jax`` or ``torch``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from musicgen.config import ModelConfig, TrainConfig
from musicgen.devices import Placement
from musicgen.shards import take
from musicgen.streaming import StreamingBatches
from musicgen.errors import UsageError
from musicgen.split import Split, split_corpus
from musicgen.train_result import TrainResult, sampling_counts, split_metrics

MIN_LR = 1e-5


def compile_model(model, cfg: TrainConfig) -> None:
    """Adam with gradient clipping by global norm; sparse cross-entropy on logits (nats), weighted accuracy."""
    import keras

    optimizer = keras.optimizers.Adam(learning_rate=cfg.learning_rate, clipnorm=cfg.clipnorm)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=["accuracy"])


def _load_state(folder: Path, model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[dict, Path, Path] | None:
    """``train_callbacks.read_checkpoint`` plus a check that the checkpoint was made with these configs."""
    from musicgen.train_callbacks import read_checkpoint

    checkpoint = read_checkpoint(folder)
    if checkpoint is None:
        return None
    state = checkpoint[0]
    for name, cfg in (("model_config", model_cfg), ("train_config", train_cfg)):
        saved, wanted = dict(state.get(name, {})), cfg.to_dict()
        if name == "train_config":  # a checkpoint from before the three-way split holds the legacy fields
            saved = TrainConfig.from_dict(saved).to_dict()
        saved.pop("epochs", None), wanted.pop("epochs", None)  # resuming may extend (or shorten) the run
        if saved != wanted:
            diff = sorted(k for k in wanted if saved.get(k) != wanted[k])
            raise UsageError(f"--resume: {name} {diff} differs from the checkpoint in {folder}; "
                             f"rerun with the same settings or without --resume")
    state["train_config"] = train_cfg.to_dict()
    return checkpoint


def load_training_model(last: Path, model_cfg: ModelConfig, train_cfg: TrainConfig, batch_size: int):
    """The checkpointed model + optimizer ``last`` (a ``.keras`` file) with a stateful batch of ``batch_size``: as
    saved when it matches, else (a run resumed on another device count) rebuilt and given the saved weights and
    optimizer state."""
    import keras

    import musicgen.fused_rnn  # noqa: F401  registers the fused layers the checkpoint holds
    from musicgen.models import build_model

    model = keras.saving.load_model(last, safe_mode=True)
    if not train_cfg.stateful or model.inputs[0].shape[0] == batch_size:
        return model
    rebuilt = build_model(model_cfg, batch_size=batch_size, stateful=True)
    compile_model(rebuilt, train_cfg)
    rebuilt.optimizer.build(rebuilt.trainable_variables)
    rebuilt.load_weights(last)
    return rebuilt


def train_model(pieces: Sequence[np.ndarray], keys: Sequence[str], model_cfg: ModelConfig, train_cfg: TrainConfig,
                out_dir: str | Path, *, tokenizer=None, split: Split | None = None, resume: bool = False,
                tensorboard: bool = True, verbose: int | str = "auto", init_weights: dict | None = None,
                devices: int | str = 1) -> TrainResult:
    """Train with truncated BPTT on the *train* part, stop and choose the best epoch on *valid*; *test* is never read.

    Args:
        pieces: int token arrays, one per piece (shape (T_i,)); ``keys``: their content hashes (for the split).
        model_cfg / train_cfg: what to build and how to train it.
        out_dir: folder for ``checkpoints/`` and ``logs/`` (the bundle folder).
        tokenizer: a ``Tokenizer``, needed for ``train_cfg.transpose`` and its ``pad_id`` (0 without one); its config
            also decodes the pieces for the near-duplicate split (without one the ids are fingerprinted as they are).
        split: ``split.split_corpus(pieces, keys, train_cfg, tokenizer.config)``, computed here when None.
        resume: continue from ``out_dir/checkpoints`` if a checkpoint is there (same configs required);
            otherwise start from scratch and clear old checkpoints.
        tensorboard: write TensorBoard logs to ``out_dir/logs``.
        verbose: Keras ``fit`` verbosity (``"auto"`` shows the progress bar).
        init_weights: start from these arrays (``weights.npz`` layout of ``model_cfg``, see ``models.import_weights``)
            instead of random ones: fine-tuning. A resumed checkpoint wins over them. The metrics then hold
            ``init_val_nll``, the validation NLL of these weights before any step.
        devices: data-parallel devices (an int or ``"auto"``, see ``musicgen.devices``); ``batch_size`` must be
            divisible by it. It changes float summation order only; the metrics record it as ``devices``.
    """
    import keras

    from musicgen.bundle import recover_interrupted_save
    from musicgen.models import build_model
    from musicgen.train_callbacks import (EVAL_CHUNK, EVAL_GROUP, HISTORY, Checkpoint, ReseedDropout, ResetStates,
                                          Validation, prune_checkpoints, read_checkpoint, sequence_metrics,
                                          write_history)

    out_dir = Path(out_dir)
    folder = out_dir / "checkpoints"
    recover_interrupted_save(out_dir)  # checkpoints/ a killed bundle save left in its temporary folder
    pad_id = int(tokenizer.pad_id) if tokenizer is not None else 0
    if split is None:
        split = split_corpus(pieces, keys, train_cfg, tokenizer.config if tokenizer is not None else None)
    train_pieces = take(pieces, split.train)  # lazy over a token store: nothing is read here
    val_pieces = take(pieces, split.valid)
    if not train_pieces:
        raise UsageError(f"val_fraction: {train_cfg.val_fraction} (test_fraction {train_cfg.test_fraction}) leaves "
                         f"no training piece out of {len(pieces)}")
    if train_cfg.transpose and tokenizer is None:
        raise UsageError("transpose: augmentation needs the tokenizer")
    features = context_function(model_cfg, tokenizer)
    lanes = {"lanes": 1}
    if devices == 1 and train_cfg.algorithm == "bptt":  # before TensorFlow's first op: it fixes the threads
        from musicgen.fused_rnn import use_cpu_lanes

        lanes = use_cpu_lanes(train_cfg.batch_size, model_cfg.cell)
    placement = Placement(devices, train_cfg.batch_size)
    batches = StreamingBatches(train_pieces, train_cfg.batch_size, train_cfg.bptt, train_cfg.seed, tokenizer,
                               train_cfg.transpose, pad_id, features)  # dataset.StreamBatches' batches, streamed

    keras.utils.set_random_seed(train_cfg.seed)
    checkpoint = _load_state(folder, model_cfg, train_cfg) if resume else None
    if checkpoint is not None:
        state, last, _ = checkpoint
        prune_checkpoints(folder, state)  # files of an epoch whose manifest a kill prevented
        with placement.build_scope():
            model = load_training_model(last, model_cfg, train_cfg, placement.replica_batch)
        model.optimizer.learning_rate.assign(state["lr"])
        if verbose:
            print(f"resuming from {last} after epoch {state['epochs_done']}")
    else:
        if resume and verbose:
            print(f"--resume: no checkpoint in {folder}, starting from scratch")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(out_dir / "logs", ignore_errors=True)
        state = {"model_config": model_cfg.to_dict(), "train_config": train_cfg.to_dict()}
        with placement.build_scope():
            model = build_model(model_cfg, batch_size=placement.replica_batch, stateful=train_cfg.stateful)
            compile_model(model, train_cfg)
        if init_weights is not None:
            from musicgen.models import import_weights

            import_weights(model, model_cfg, init_weights)
    _torch_stateful_workaround(model)
    if train_cfg.stateful and not carries_state(keras.backend.backend()) and verbose:
        print("warning: Keras under JAX does not carry a stateful RNN's state from one window to the next in fit: "
              "every window trains from the zero state (docs/scale.md); KERAS_BACKEND=tensorflow carries it",
              file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)

    callbacks = [ReseedDropout(train_cfg.seed)] + ([ResetStates()] if train_cfg.stateful else [])
    eval_model = None
    if val_pieces:
        eval_model = build_model(model_cfg, batch_size=min(EVAL_GROUP, len(val_pieces)), stateful=True)
        if init_weights is not None and "init_val_nll" not in state:  # the base model on this valid part
            eval_model.set_weights(model.get_weights())
            state["init_val_nll"] = sequence_metrics(eval_model, val_pieces, pad_id, EVAL_CHUNK, features)["val_loss"]
        callbacks.append(Validation(eval_model, val_pieces, pad_id, EVAL_CHUNK, features))
    callbacks.append(Checkpoint(folder, state, patience=train_cfg.patience,
                                lr_patience=max(1, train_cfg.patience // 2), min_lr=MIN_LR,
                                events_per_epoch=batches.targets_per_epoch))
    if tensorboard and _has_tensorboard():
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs"), write_graph=False))

    first = int(state.get("epochs_done", 0))
    if first < train_cfg.epochs and not state.get("stopped_early"):
        with placement.fit_scope():
            model.fit(placement.train_input(batches, first), steps_per_epoch=batches.steps_per_epoch,
                      epochs=train_cfg.epochs, initial_epoch=first, callbacks=callbacks, verbose=verbose,
                      shuffle=False)

    state, _, best_weights = read_checkpoint(folder)
    model.load_weights(best_weights)
    best = build_model(model_cfg, fused=False)  # stock layers in the bundle: plain Keras loads its model.keras
    best.set_weights(model.get_weights())
    best_logs = dict(state.get("best_logs", {}))
    if eval_model is not None and "val_loss" not in best_logs:
        eval_model.set_weights(model.get_weights())
        best_logs.update(sequence_metrics(eval_model, val_pieces, pad_id, EVAL_CHUNK, features))
    metrics = {**report(state, best_logs, batches, train_pieces, val_pieces, train_cfg), **split_metrics(split),
               "devices": placement.n, "cpu_lanes": lanes}
    metrics.update(sampling_counts(train_pieces, tokenizer))  # the styles, voice caps and keys `musicgen sample` draws
    if "init_val_nll" in state:
        metrics["init_val_nll"] = state["init_val_nll"]
    history = folder / HISTORY
    if state.get("history"):
        write_history(history, state["history"])  # a kill after the manifest may have left the previous CSV
    start = trained_start_state(best, model_cfg, train_pieces, tokenizer)
    return TrainResult(best, metrics, history if history.exists() else None, start)


def context_function(model_cfg: ModelConfig, tokenizer):
    """``tokens (T,) -> int32 context (T, F)`` for a model with context inputs (None without); the model's
    ``context`` must be the tokenizer's ``context.context_sizes``."""
    if not model_cfg.context:
        return None
    from functools import partial

    from musicgen.context import context_features, context_sizes

    wanted = context_sizes(tokenizer.config) if tokenizer is not None else None
    if model_cfg.context != wanted:
        raise UsageError(f"context: the model config has context {list(model_cfg.context)} but the tokenizer gives "
                         f"{list(wanted) if wanted is not None else 'none (no tokenizer)'}")
    return partial(context_features, tokenizer=tokenizer)


def trained_start_state(model, model_cfg: ModelConfig, train_pieces, tokenizer=None) -> list:
    """The mean state right after EOS over the training pieces (see ``start_state.py``): BPTT laid pieces end to
    end, so this, not zeros, is the state the model learned to read BOS in."""
    from musicgen.models import export_weights
    from musicgen.sampler import StepModel
    from musicgen.start_state import compute_start_state

    step = StepModel(export_weights(model, model_cfg), model_cfg, tokenizer=tokenizer)
    eos_id = int(tokenizer.eos_id) if tokenizer is not None else None
    return compute_start_state(step, train_pieces, eos_id=eos_id, seed=0)


def fit_model(pieces: Sequence[np.ndarray], keys: Sequence[str], model_cfg: ModelConfig, train_cfg: TrainConfig,
              out_dir: str | Path, *, tokenizer=None, resume: bool = False, tensorboard: bool = True,
              verbose: int | str = "auto", online: bool = False, update_every: int = 16,
              init_weights: dict | None = None, devices: int | str = 1) -> TrainResult:
    """The one training entry point: split with ``split_corpus``, then ``train_model`` (``algorithm == "bptt"``) or
    ``train_rtrl.fit_rtrl`` (``"rtrl"``; ``online`` and ``update_every`` apply to it only; ``init_weights``, for
    fine-tuning, and ``devices`` to ``train_model`` only)."""
    if train_cfg.algorithm == "rtrl" and init_weights is not None:
        raise UsageError("--init-from: fine-tuning needs --algorithm bptt (RTRL starts from its own initial weights)")
    if train_cfg.algorithm == "rtrl" and model_cfg.context:
        raise UsageError("--algorithm: rtrl does not train context inputs (meter/key/last pitch/held notes/styles); "
                         "use --algorithm bptt")
    split = split_corpus(pieces, keys, train_cfg, tokenizer.config if tokenizer is not None else None)
    if train_cfg.algorithm == "rtrl":
        from musicgen.train_rtrl import fit_rtrl

        if devices != 1:
            raise UsageError(f"--devices: {devices} needs --algorithm bptt (RTRL trains in numpy on one core)")

        return fit_rtrl(pieces, keys, model_cfg, train_cfg, split=split, online=online, update_every=update_every,
                        verbose=verbose)
    return train_model(pieces, keys, model_cfg, train_cfg, out_dir, tokenizer=tokenizer, split=split, resume=resume,
                       tensorboard=tensorboard, verbose=verbose, init_weights=init_weights, devices=devices)


def carries_state(backend: str) -> bool:
    """Whether ``fit`` under Keras backend ``backend`` carries a stateful RNN's state from one batch to the next:
    False for ``"jax"`` (Keras 3.15.1 keeps the state variables out of the JAX trainer's state, so each window starts
    from zeros; tests/test_devices.py holds the strict-xfail check that turns red when Keras fixes it)."""
    return backend != "jax"


def _torch_stateful_workaround(model) -> None:
    """Keras 3.15 + torch: a stateful LSTM/GRU on the fused path updates its state in place before backward
    (keras-team/keras#23462, fixed upstream after 3.15.1). The step-by-step path copies the state, so use it."""
    import keras

    if keras.backend.backend() != "torch":
        return
    for layer in model.layers:
        if getattr(layer, "stateful", False) and hasattr(layer, "use_cudnn"):
            layer.use_cudnn = False


def _has_tensorboard() -> bool:
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        print("tensorboard is not installed: no TensorBoard logs (pip install tensorboard)")
        return False
    return True


def report(state: dict, best_logs: dict, batches: StreamingBatches, train_pieces, val_pieces, cfg: TrainConfig) -> dict:
    """The final metrics (validation NLL per event in nats, perplexity, accuracy) and run facts, JSON-ready."""
    import keras

    history = state.get("history", [])
    metrics = {
        "val_nll": best_logs.get("val_loss"),
        "val_perplexity": best_logs.get("val_perplexity"),
        "val_accuracy": best_logs.get("val_accuracy"),
        "val_events": int(sum(max(len(p) - 1, 0) for p in val_pieces)),
        "val_pieces": len(val_pieces),
        "train_loss": best_logs.get("loss"),
        "train_pieces": len(train_pieces),
        "train_events_per_epoch": batches.targets_per_epoch,
        "best_epoch": state.get("best_epoch"),
        "epochs_run": state.get("epochs_done", 0),
        "stopped_early": bool(state.get("stopped_early", False)),
        "wall_seconds": round(sum(row.get("seconds", 0.0) for row in history), 3),
        # median over epochs, so the first epoch's compilation does not count
        "train_events_per_s": round(float(np.median([row["train_events_per_s"] for row in history])), 1)
        if history else 0.0,
        "stateful": cfg.stateful,
        "state_carried": cfg.stateful and carries_state(keras.backend.backend()),
        "keras_backend": keras.backend.backend(),
    }
    return metrics


def format_report(metrics: dict) -> str:
    """One line a person reads at the end of training."""
    if metrics.get("val_nll") is None:
        return (f"no validation pieces; train loss {metrics.get('train_loss', float('nan')):.4f} nats/event "
                f"after {metrics['epochs_run']} epochs")
    accuracy = "" if metrics.get("val_accuracy") is None else f"accuracy {metrics['val_accuracy']:.3f} "
    return (f"validation NLL {metrics['val_nll']:.4f} nats/event, perplexity {metrics['val_perplexity']:.2f}, "
            f"{accuracy}on {metrics['val_events']} events of "
            f"{metrics['val_pieces']} pieces (best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
            f"{metrics['train_events_per_s']:.0f} train events/s)")
