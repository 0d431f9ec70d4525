"""rtrl_cell: the numpy step, NLL and BPTT gradient of the one-layer model, by hand and by finite differences
(numpy only; the comparison with TensorFlow autodiff is in tests/test_rtrl.py)."""

import math

import numpy as np
import pytest

from musicgen import rtrl_cell
from musicgen.config import ModelConfig
from musicgen.rtrl import init_weights

CELLS = ["simple_rnn", "gru", "lstm"]


def _cfg(cell, vocab=5, emb=2, units=3):
    return ModelConfig(vocab_size=vocab, cell=cell, embedding_dim=emb, units=units, layers=1, dropout=0.0)


@pytest.mark.parametrize("cell", CELLS)
def test_zero_weights_predict_uniformly(cell):
    """All-zero weights: logits 0 for every event, so each of the 2 + 3 predicted events costs log(V) nats."""
    cfg = _cfg(cell)
    weights = {k: np.zeros_like(a) for k, a in init_weights(cfg, 0, "float64").items()}
    nll, count = rtrl_cell.sequence_nll(weights, cfg, [np.array([1, 2, 3]), np.array([0, 4, 4, 1])])
    assert count == 5 and nll == pytest.approx(math.log(5), rel=1e-12)


def test_state_blocks_by_cell():
    assert rtrl_cell.STATE_BLOCKS == {"lstm": 2, "gru": 1, "simple_rnn": 1}
    assert rtrl_cell._zero_state(_cfg("lstm"), np.float64).shape == (2, 3)


@pytest.mark.parametrize("cell", CELLS)
def test_bptt_gradient_matches_central_differences(cell):
    cfg = _cfg(cell)
    rng = np.random.default_rng(1)
    weights = {k: rng.normal(0.0, 0.5, a.shape) for k, a in init_weights(cfg, 1, "float64").items()}
    tokens = np.array([0, 3, 1, 4, 2, 2])

    def loss(w):
        nll, count = rtrl_cell.sequence_nll(w, cfg, [tokens])
        return nll * count

    grads = rtrl_cell.bptt_gradient(weights, cfg, tokens)
    eps = 1e-6
    for key, value in weights.items():
        for index in [tuple(rng.integers(0, s) for s in value.shape) for _ in range(3)]:
            plus = {k: a.copy() for k, a in weights.items()}
            minus = {k: a.copy() for k, a in weights.items()}
            plus[key][index] += eps
            minus[key][index] -= eps
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            assert grads[key][index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (key, index)
