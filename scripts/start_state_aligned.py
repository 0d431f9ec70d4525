"""Option A of issue 19, measured and not kept (docs/start_state.md): train with every piece starting at a window
start of its stream and that stream's recurrent state zeroed there, so the model reads BOS from the zero state that
sampling starts from. The layers stay Keras's (cuDNN-eligible); the reset is a per-row assign on the stateful
layers' state variables before each batch, and the price is padding: each piece ends on a window boundary.

    python scripts/start_state_aligned.py CORPUS OUT EPOCHS      # like `musicgen train CORPUS --out OUT --epochs E`

An experiment harness: it swaps ``StreamingBatches`` (for ``dataset.StreamBatches``, aligned) and ``ResetStates`` inside ``musicgen.trainer`` for this run only
and stores no start state (zeros are what it trains for). Run it on a corpus already ingested (TensorFlow is imported
before the ingest would fork its workers).
"""

import sys

import numpy as np

import musicgen.trainer as T
import musicgen.train_callbacks as C
from musicgen.dataset import StreamBatches, transposer


class AlignedBatches(StreamBatches):
    """``StreamBatches`` with each piece placed (whole) at a window start of the least-filled row."""

    SLACK = 2  # windows beyond the longest row of epochs 0-2's packing

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.resets: dict[int, np.ndarray] = {}
        stream_steps = self.steps_per_epoch
        self.steps_per_epoch = max(self._longest_row(e) for e in range(3)) + self.SLACK
        print(f"aligned: {self.steps_per_epoch} steps/epoch (end-to-end streams: {stream_steps})", flush=True)

    def _order(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        return rng, rng.permutation(len(self.pieces))

    def _longest_row(self, epoch) -> int:
        load = np.zeros(self.batch_size, np.int64)
        for i in self._order(epoch)[1]:
            load[int(np.argmin(load))] += -(-(len(self.pieces[i]) - 1) // self.bptt)
        return int(load.max())

    def epoch_arrays(self, epoch):
        rng, order = self._order(epoch)
        parts = [self.pieces[i] for i in order]
        if self.augment is not None:
            parts = [self.augment(p, rng) for p in parts]
        width, rows = self.steps_per_epoch * self.bptt, self.batch_size
        inputs = np.full((rows, width), self.pad_id, np.int32)
        targets = inputs.copy()
        weights = np.zeros((rows, width), np.float32)
        reset = np.zeros((self.steps_per_epoch, rows), bool)
        load = np.zeros(rows, np.int64)  # events, a multiple of bptt
        dropped = 0
        for p in parts:
            row, n = int(np.argmin(load)), len(p) - 1
            lo = int(load[row])
            if lo + n > width:
                dropped += 1
                continue
            inputs[row, lo:lo + n], targets[row, lo:lo + n], weights[row, lo:lo + n] = p[:-1], p[1:], 1.0
            reset[lo // self.bptt, row] = True
            load[row] += -(-n // self.bptt) * self.bptt
        self.resets[epoch] = reset
        print(f"\naligned epoch {epoch}: {int(reset.sum())} pieces, {dropped} dropped, {int(weights.sum())} targets",
              flush=True)
        return inputs, targets, weights


BATCHES: list[AlignedBatches] = []


class RowReset(C.ResetStates):
    """Zero every state at the epoch start (as before) and each row's state where a piece starts in that row."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        super().on_epoch_begin(epoch, logs)
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        reset = BATCHES[-1].resets.get(self.epoch)
        if reset is None or not reset[batch].any():
            return
        keep = (~reset[batch]).astype("float32")[:, None]
        for layer in C.stateful_layers(self.model):
            for var in layer.states:
                var.assign(var * keep)


def _batches(pieces, batch_size, bptt, seed, tokenizer=None, transpose=0, pad_id=0, features=None):
    """Stands in for ``trainer.StreamingBatches`` (same arguments): the aligned in-memory batches instead."""
    augment = transposer(tokenizer, transpose) if tokenizer is not None else None
    BATCHES.append(AlignedBatches([np.asarray(p) for p in pieces], batch_size, bptt, seed, augment, pad_id,
                                  features=features))
    return BATCHES[-1]


if __name__ == "__main__":
    T.StreamingBatches = _batches
    C.ResetStates = RowReset
    T.trained_start_state = lambda *args, **kwargs: None
    from musicgen.cli import main

    sys.exit(main(["train", sys.argv[1], "--out", sys.argv[2], "--epochs", sys.argv[3]]))
