"""The one-layer musicgen model, one event at a time, in numpy: the cell step with its local derivatives (``_cell``:
``Fu, Fv, Fs``), the pre-activations (``_pre``), the softmax readout's loss and logit gradient (``_readout``), the
mean NLL of token pieces (``sequence_nll``) and the reference gradient by backpropagation through time
(``bptt_gradient``). ``musicgen.rtrl`` carries the influence matrix forward from these same pieces.

Weights are dicts in the ``models.export_weights`` layout; gate orders are Keras's (GRU ``reset_after=True``: z r h;
LSTM: i f c o). B is the number of state blocks (``STATE_BLOCKS``; LSTM: 2 = h, c), n the units, G the gates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from musicgen.config import ModelConfig
from musicgen.models import GATES


STATE_BLOCKS = {"lstm": 2, "gru": 1, "simple_rnn": 1}


# ------------------------------------------------------------------------------------------------ the cell
def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))


def _cell(cell: str, u, v, s_prev):
    """One step. u, v: (G·n,) input and recurrent pre-activations; s_prev: (B, n).

    Returns ``(s, Fu, Fv, Fs)``: new state (B, n); ∂s/∂u and ∂s/∂v as (B, G, n); ``Fs`` the direct ∂s/∂s_prev as
    a dict {(b_out, b_in): (n,)} of its non-zero diagonal blocks.
    """
    n = s_prev.shape[1]
    if cell == "simple_rnn":
        h = np.tanh(u + v)
        d = (1.0 - h * h)[None, None]
        return h[None], d, d, {}
    if cell == "gru":
        h_prev = s_prev[0]
        z = _sigmoid(u[:n] + v[:n])
        r = _sigmoid(u[n:2 * n] + v[n:2 * n])
        vh = v[2 * n:]
        hh = np.tanh(u[2 * n:] + r * vh)
        d_ah = (1.0 - z) * (1.0 - hh * hh)
        d_az = (h_prev - hh) * z * (1.0 - z)
        d_ar = d_ah * vh * r * (1.0 - r)
        fu = np.stack([d_az, d_ar, d_ah])[None]
        fv = np.stack([d_az, d_ar, d_ah * r])[None]
        return (z * h_prev + (1.0 - z) * hh)[None], fu, fv, {(0, 0): z}
    a = u + v  # lstm: i, f, c, o
    c_prev = s_prev[1]
    i, f, g, o = _sigmoid(a[:n]), _sigmoid(a[n:2 * n]), np.tanh(a[2 * n:3 * n]), _sigmoid(a[3 * n:])
    c = f * c_prev + i * g
    tc = np.tanh(c)
    dc = np.stack([g * i * (1.0 - i), c_prev * f * (1.0 - f), i * (1.0 - g * g), np.zeros_like(c)])
    dh_dc = o * (1.0 - tc * tc)
    dh = dc * dh_dc
    dh[3] = tc * o * (1.0 - o)
    fa = np.stack([dh, dc])
    return np.stack([o * tc, c]), fa, fa, {(0, 1): dh_dc * f, (1, 1): f}


def _pre(p: dict, cell: str, s_prev, token: int):
    """x_t, u_t = x W + b_in, v_t = h U + b_rec."""
    x = p["embedding"][token]
    bias = p["rnn_0_bias"]
    b_in, b_rec = (bias[0], bias[1]) if cell == "gru" else (bias, 0.0)
    return x, x @ p["rnn_0_kernel"] + b_in, s_prev[0] @ p["rnn_0_recurrent_kernel"] + b_rec


def _readout(p: dict, h, target: int):
    """Cross-entropy of ``target`` and its gradient w.r.t. the logits (softmax − one-hot)."""
    logits = h @ p["logits_kernel"] + p["logits_bias"]
    shifted = logits - logits.max()
    log_z = np.log(np.exp(shifted).sum())
    d_logits = np.exp(shifted - log_z)
    d_logits[target] -= 1.0
    return float(log_z - shifted[target]), d_logits


def _zero_state(cfg: ModelConfig, dtype):
    return np.zeros((STATE_BLOCKS[cfg.cell], cfg.units), dtype=dtype)


def sequence_nll(weights: dict, cfg: ModelConfig, pieces: Sequence[np.ndarray]) -> tuple[float, int]:
    """Mean NLL (nats/event) of predicting ``piece[1:]`` from ``piece[:-1]``, state reset per piece; and the count."""
    p = {k: np.asarray(a, dtype=np.float64) for k, a in weights.items()}
    total, count = 0.0, 0
    for piece in pieces:
        s = _zero_state(cfg, np.float64)
        for token, target in zip(piece[:-1], piece[1:]):
            _, u, v = _pre(p, cfg.cell, s, int(token))
            s = _cell(cfg.cell, u, v, s)[0]
            total += _readout(p, s[0], int(target))[0]
            count += 1
    return total / max(count, 1), count


# ------------------------------------------------------------------------------------------------ BPTT reference
def bptt_gradient(weights: dict, cfg: ModelConfig, tokens: np.ndarray, dtype="float64") -> dict[str, np.ndarray]:
    """The same gradient as ``rtrl_gradient`` by backpropagation through time (numpy; stores O(T·n) per sequence)."""
    p = {k: np.asarray(a, dtype=dtype) for k, a in weights.items()}
    grads = {k: np.zeros_like(a) for k, a in p.items()}
    g, n = GATES[cfg.cell], cfg.units
    s, tape = _zero_state(cfg, dtype), []
    for token, target in zip(tokens[:-1], tokens[1:]):
        x, u, v = _pre(p, cfg.cell, s, int(token))
        s_new, fu, fv, fs = _cell(cfg.cell, u, v, s)
        _, d_logits = _readout(p, s_new[0], int(target))
        tape.append((int(token), x, s[0], s_new[0], fu, fv, fs, d_logits))
        s = s_new
    delta = np.zeros_like(s)  # dL/ds_t from the future
    bias_in = grads["rnn_0_bias"][0] if cfg.cell == "gru" else grads["rnn_0_bias"]
    for token, x, h_prev, h, fu, fv, fs, d_logits in reversed(tape):
        grads["logits_kernel"] += np.outer(h, d_logits)
        grads["logits_bias"] += d_logits
        delta[0] += p["logits_kernel"] @ d_logits
        du = np.einsum("bj,bgj->gj", delta, fu).reshape(g * n)
        dv = np.einsum("bj,bgj->gj", delta, fv).reshape(g * n)
        grads["rnn_0_kernel"] += np.outer(x, du)
        grads["rnn_0_recurrent_kernel"] += np.outer(h_prev, dv)
        bias_in += du
        if cfg.cell == "gru":
            grads["rnn_0_bias"][1] += dv
        grads["embedding"][token] += p["rnn_0_kernel"] @ du
        back = np.zeros_like(delta)
        back[0] = p["rnn_0_recurrent_kernel"] @ dv
        for (b_out, b_in), coef in fs.items():
            back[b_in] += coef * delta[b_out]
        delta = back
    return grads
