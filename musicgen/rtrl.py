"""Exact real-time recurrent learning (RTRL) for the one-layer musicgen model, in numpy.

The model is exactly ``models.build_model(ModelConfig(layers=1, dropout=0, cell=…))``: ``x_t = E[token_t]`` →
one SimpleRNN / GRU (``reset_after=True``) / LSTM cell with Keras gate orders → ``logits_t = h_t V + c``. Weights
are dicts in the ``models.export_weights`` layout, so an RTRL model is written as an ordinary bundle (see
``to_keras_weights``) and ``musicgen sample`` runs on it unchanged.

RTRL carries the *influence matrix* ``M_t = ds_t/dθ`` forward in time instead of storing the past and running
backwards (BPTT). With ``u_t = x_t W + b_in`` and ``v_t = h_{t-1} U + b_rec`` (``b_rec`` exists for GRU only), every
cell is unit-local: unit ``j`` of ``s_t`` depends on ``u_t[:, j]``, ``v_t[:, j]`` and ``s_{t-1}[:, j]``. So

    M_t = Fs_t ⊙ M_{t-1}  +  Fv_t ⊙ (Uᵀ M^h_{t-1})  +  immediate_t          (all per unit j)

where ``Fu, Fv`` (shape (B, G, n)) and ``Fs`` (B, B, n) are the elementwise local derivatives of the cell, and the
immediate term is ``∂s_t/∂θ`` at fixed ``s_{t-1}``: non-zero only on the columns of unit ``j`` for ``W, U, b`` and on
the row ``E[token_t]`` of the embedding. ``θ = (kernel, recurrent_kernel, bias, embedding)``; the influence is kept
for the **full embedding** (rows not seen since the last reset stay exactly zero), which is exact and simple and
costs ``V·E`` extra columns next to the cell's ``G·n·(E+n+1)``. The readout ``V, c`` needs no influence: its
gradient is immediate. Per step: ``Uᵀ M`` is a (Gn × n)·(n × P) product, O(G·n²·P) = O(n⁴); memory O(n·P) = O(n³)
(``influence_bytes``; the working set is the influence twice, double-buffered, plus two (n, P) scratch arrays).
On a loaded machine set ``OPENBLAS_NUM_THREADS=1``: the products are small and BLAS threads mostly spin.

B is the number of state blocks (1; LSTM: 2 = h, c), G the gates (SimpleRNN 1, GRU 3: z r h, LSTM 4: i f c o).
The cell step, its local derivatives, ``sequence_nll`` and the reference ``bptt_gradient`` are in
``musicgen.rtrl_cell`` (re-exported here); this module adds the influence matrix, the trainer and its loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from musicgen.config import ModelConfig
from musicgen.errors import UsageError
from musicgen.models import GATES
from musicgen.rtrl_cell import (STATE_BLOCKS, _cell, _pre, _readout, _zero_state,  # noqa: F401 (re-exported)
                                bptt_gradient, sequence_nll)

DEFAULT_BUDGET_BYTES = 256 * 2**20
CELL_KEYS = ("rnn_0_kernel", "rnn_0_recurrent_kernel", "rnn_0_bias", "embedding")  # parameters with influence


# ------------------------------------------------------------------------------------------------ sizes and budget
def _layout(cfg: ModelConfig) -> dict[str, tuple[int, tuple[int, ...]]]:
    """Column offset and shape of each influenced parameter in the flat θ (C order, export shapes)."""
    g, n, e, v = GATES[cfg.cell], cfg.units, cfg.embedding_dim, cfg.vocab_size
    shapes = {"rnn_0_kernel": (e, g * n), "rnn_0_recurrent_kernel": (n, g * n),
              "rnn_0_bias": (2, g * n) if cfg.cell == "gru" else (g * n,), "embedding": (v, e)}
    out, offset = {}, 0
    for key in CELL_KEYS:
        out[key] = (offset, shapes[key])
        offset += int(np.prod(shapes[key]))
    return out


def influence_params(cfg: ModelConfig) -> int:
    """P: the number of parameters tracked by the influence matrix (kernel, recurrent kernel, bias, embedding)."""
    offset, shape = _layout(cfg)["embedding"]
    return offset + int(np.prod(shape))


def influence_bytes(cfg: ModelConfig, dtype="float64") -> int:
    """Bytes of the influence matrix ``ds_t/dθ``: shape (B, units, P) in ``dtype``; O(units³)."""
    return STATE_BLOCKS[cfg.cell] * cfg.units * influence_params(cfg) * np.dtype(dtype).itemsize


def check_budget(cfg: ModelConfig, budget_bytes: int = DEFAULT_BUDGET_BYTES, dtype="float64") -> None:
    """Refuse configs RTRL cannot train: more than one layer, dropout, or an influence matrix over the budget."""
    if cfg.layers != 1:
        raise UsageError(f"rtrl: layers: RTRL supports exactly one recurrent layer, got {cfg.layers}")
    if cfg.dropout != 0:
        raise UsageError(f"rtrl: dropout: RTRL trains without dropout, expected 0, got {cfg.dropout}")
    size = influence_bytes(cfg, dtype)
    if size > budget_bytes:
        raise UsageError(
            f"rtrl: the influence matrix for a {cfg.units}-unit {cfg.cell} (embedding_dim={cfg.embedding_dim}, "
            f"vocab_size={cfg.vocab_size}) needs {size / 2**20:.1f} MiB ({size} bytes, {dtype}), over the budget of "
            f"{budget_bytes / 2**20:.1f} MiB; use fewer units or a larger budget")


# ------------------------------------------------------------------------------------------------ weights
def init_weights(cfg: ModelConfig, seed: int = 0, dtype="float32") -> dict[str, np.ndarray]:
    """Fresh weights drawn like Keras' defaults (uniform ±0.05 embedding, Glorot-uniform kernels, orthogonal
    recurrent kernel, zero biases, LSTM forget-gate bias 1), in the ``export_weights`` layout."""
    rng = np.random.default_rng(seed)
    g, n, e, v = GATES[cfg.cell], cfg.units, cfg.embedding_dim, cfg.vocab_size

    def glorot(rows, cols):
        limit = np.sqrt(6.0 / (rows + cols))
        return rng.uniform(-limit, limit, (rows, cols))

    q, r = np.linalg.qr(rng.standard_normal((g * n, n)))
    q *= np.sign(np.diag(r))
    bias = np.zeros((2, g * n) if cfg.cell == "gru" else (g * n,))
    if cfg.cell == "lstm":
        bias[n:2 * n] = 1.0
    w = {"embedding": rng.uniform(-0.05, 0.05, (v, e)), "rnn_0_kernel": glorot(e, g * n),
         "rnn_0_recurrent_kernel": q.T, "rnn_0_bias": bias, "logits_kernel": glorot(n, v),
         "logits_bias": np.zeros(v)}
    return {k: a.astype(dtype) for k, a in w.items()}


def to_keras_weights(weights: dict[str, np.ndarray], cfg: ModelConfig, dtype="float32") -> list[np.ndarray]:
    """The list for ``build_model(cfg).set_weights(...)``: embedding, kernel, recurrent kernel, bias, logits."""
    keys = ("embedding", "rnn_0_kernel", "rnn_0_recurrent_kernel", "rnn_0_bias", "logits_kernel", "logits_bias")
    return [np.asarray(weights[k], dtype=dtype) for k in keys]


# ------------------------------------------------------------------------------------------------ RTRL
class _Influence:
    """Carries the state s_t (B, n) and the influence M_t = ds_t/dθ (B, n, P) of one stream."""

    def __init__(self, cfg: ModelConfig, dtype):
        self.cfg, self.dtype, self.layout = cfg, np.dtype(dtype), _layout(cfg)
        self.reset()

    def reset(self) -> None:
        self.s = _zero_state(self.cfg, self.dtype)
        if hasattr(self, "m"):
            self.m.fill(0.0)
            return
        self.m = np.zeros((self.s.shape[0], self.cfg.units, influence_params(self.cfg)), dtype=self.dtype)
        # work buffers reused every step: the next M, one gate's Uᵀ M (n, P) and a product (n, P)
        self._next, self._z, self._tmp = np.empty_like(self.m), np.empty_like(self.m[0]), np.empty_like(self.m[0])

    def _block(self, m, key: str, shape: tuple[int, ...]):
        offset, full = self.layout[key]
        return np.reshape(m[:, :, offset:offset + int(np.prod(full))], m.shape[:2] + shape, copy=False)

    def step(self, p: dict, token: int):
        """Advance one event: updates ``s`` and ``m`` and returns the new state."""
        cfg, (nb, n) = self.cfg, self.s.shape
        g, e = GATES[cfg.cell], cfg.embedding_dim
        x, u, v = _pre(p, cfg.cell, self.s, token)
        h_prev = self.s[0]
        s, fu, fv, fs = _cell(cfg.cell, u, v, self.s)
        m, z, tmp, rec = self._next, self._z, self._tmp, p["rnn_0_recurrent_kernel"]
        for gate in range(g):  # dv/dθ through h_{t-1}: Uᵀ M, the O(n⁴) part, one gate at a time
            np.matmul(rec[:, gate * n:(gate + 1) * n].T, self.m[0], out=z)
            for b in range(nb):
                if gate == 0:
                    np.multiply(fv[b, 0][:, None], z, out=m[b])
                else:
                    m[b] += np.multiply(fv[b, gate][:, None], z, out=tmp)
        for (b_out, b_in), coef in fs.items():
            m[b_out] += np.multiply(coef[:, None], self.m[b_in], out=tmp)
        units = np.arange(n)
        self._block(m, "rnn_0_kernel", (e, g, n))[:, units, :, :, units] += np.einsum("bgj,k->jbkg", fu, x)
        self._block(m, "rnn_0_recurrent_kernel", (n, g, n))[:, units, :, :, units] += \
            np.einsum("bgj,k->jbkg", fv, h_prev)
        bias = self._block(m, "rnn_0_bias", (-1, g, n))
        bias[:, units, 0, :, units] += fu.transpose(2, 0, 1)
        if cfg.cell == "gru":
            bias[:, units, 1, :, units] += fv.transpose(2, 0, 1)
        emb = self._block(m, "embedding", (cfg.vocab_size, e))
        emb[:, :, token, :] += np.einsum("bgj,kgj->bjk", fu, p["rnn_0_kernel"].reshape(e, g, n))
        self.s, self.m, self._next = s, m, self.m
        return s


def _unflatten(cfg: ModelConfig, flat) -> dict[str, np.ndarray]:
    return {k: flat[off:off + int(np.prod(shape))].reshape(shape) for k, (off, shape) in _layout(cfg).items()}


class RtrlTrainer:
    """Online RTRL with Adam: one stream, one event per ``step``, a weight update every ``update_every`` steps.

    Args:
        cfg: a one-layer, dropout-free ``ModelConfig``.
        weights: initial weights in the ``export_weights`` layout (default ``init_weights(cfg, seed)``).
        learning_rate: Adam step size (Keras defaults β1=0.9, β2=0.999, ε=1e-7).
        update_every: K, events between weight updates; the update uses the mean gradient of those K events.
        clipnorm: clip the mean gradient to this global norm (None disables).
        dtype: ``"float32"`` (fast) or ``"float64"``.
        budget_bytes: largest influence matrix allowed (``check_budget``).

    The influence matrix is carried across updates (standard RTRL: it was computed with slightly older weights);
    call ``reset()`` at piece boundaries. ``.weights`` returns float32 arrays in the export layout.
    """

    def __init__(self, cfg: ModelConfig, weights: dict | None = None, learning_rate: float = 2e-3,
                 update_every: int = 16, clipnorm: float | None = 1.0, dtype="float32",
                 budget_bytes: int = DEFAULT_BUDGET_BYTES, seed: int = 0):
        if not isinstance(update_every, int) or update_every < 1:
            raise UsageError(f"rtrl: update_every: expected a positive integer, got {update_every!r}")
        check_budget(cfg, budget_bytes, dtype)
        self.cfg, self.lr, self.k, self.clipnorm = cfg, float(learning_rate), update_every, clipnorm
        source = init_weights(cfg, seed) if weights is None else weights
        self.params = {k: np.array(source[k], dtype=dtype) for k in source}
        self.stream = _Influence(cfg, dtype)
        self.m1 = {k: np.zeros_like(a) for k, a in self.params.items()}
        self.m2 = {k: np.zeros_like(a) for k, a in self.params.items()}
        self.updates = 0
        self._zero_grads()

    def _zero_grads(self) -> None:
        self.g_flat = np.zeros(influence_params(self.cfg), dtype=self.stream.dtype)
        self.g_out = {k: np.zeros_like(self.params[k]) for k in ("logits_kernel", "logits_bias")}
        self.pending = 0

    def reset(self) -> None:
        """Start a new stream (piece boundary): zero state and influence; pending gradients are kept."""
        self.stream.reset()

    def step(self, token: int, target: int) -> float:
        """Feed ``token``, score the prediction of ``target``; returns the loss in nats."""
        h = self.stream.step(self.params, int(token))[0]
        loss, d_logits = _readout(self.params, h, int(target))
        self.g_out["logits_kernel"] += np.outer(h, d_logits)
        self.g_out["logits_bias"] += d_logits
        self.g_flat += (self.params["logits_kernel"] @ d_logits) @ self.stream.m[0]
        self.pending += 1
        if self.pending == self.k:
            self.flush()
        return loss

    def flush(self) -> None:
        """Apply the pending mean gradient (if any) with one Adam step."""
        if not self.pending:
            return
        grads = {**_unflatten(self.cfg, self.g_flat), **self.g_out}
        grads = {k: g / self.pending for k, g in grads.items()}
        if self.clipnorm:
            norm = np.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
            if norm > self.clipnorm:
                grads = {k: g * (self.clipnorm / norm) for k, g in grads.items()}
        self.updates += 1
        t, b1, b2 = self.updates, 0.9, 0.999
        alpha = self.lr * np.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        for k, g in grads.items():
            self.m1[k] += (1.0 - b1) * (g - self.m1[k])
            self.m2[k] += (1.0 - b2) * (g * g - self.m2[k])
            self.params[k] -= (alpha * self.m1[k] / (np.sqrt(self.m2[k]) + 1e-7)).astype(self.params[k].dtype)
        self._zero_grads()

    @property
    def weights(self) -> dict[str, np.ndarray]:
        return {k: a.astype(np.float32) for k, a in self.params.items()}


# ------------------------------------------------------------------------------------------------ full-sequence grads
def rtrl_gradient(weights: dict, cfg: ModelConfig, tokens: np.ndarray, dtype="float64") -> dict[str, np.ndarray]:
    """Gradient of the summed cross-entropy of ``tokens[1:]`` given ``tokens[:-1]`` (zero initial state), by RTRL.

    Returns a dict with the ``export_weights`` keys and shapes.
    """
    check_budget(cfg, np.iinfo(np.int64).max, dtype)
    p = {k: np.asarray(a, dtype=dtype) for k, a in weights.items()}
    stream = _Influence(cfg, dtype)
    g_flat = np.zeros(influence_params(cfg), dtype=dtype)
    grads = {"logits_kernel": np.zeros_like(p["logits_kernel"]), "logits_bias": np.zeros_like(p["logits_bias"])}
    for token, target in zip(tokens[:-1], tokens[1:]):
        h = stream.step(p, int(token))[0]
        _, d_logits = _readout(p, h, int(target))
        grads["logits_kernel"] += np.outer(h, d_logits)
        grads["logits_bias"] += d_logits
        g_flat += (p["logits_kernel"] @ d_logits) @ stream.m[0]
    return {**_unflatten(cfg, g_flat), **grads}


# ------------------------------------------------------------------------------------------------ training loop
@dataclass
class RtrlResult:
    """What ``train_rtrl`` returns. ``weights``: export layout, float32 (best validation epoch when validating)."""

    weights: dict[str, np.ndarray]
    history: list[dict] = field(default_factory=list)
    val_nll: float | None = None
    train_nll: float = float("nan")
    events: int = 0
    seconds: float = 0.0


def train_rtrl(pieces: Sequence[np.ndarray], cfg: ModelConfig, *, val_pieces: Sequence[np.ndarray] = (),
               weights: dict | None = None, epochs: int = 1, learning_rate: float = 2e-3, update_every: int = 16,
               clipnorm: float | None = 1.0, online: bool = False, seed: int = 0, dtype="float32",
               budget_bytes: int = DEFAULT_BUDGET_BYTES, report_every: int = 1000,
               log: Callable[[str], None] | None = print) -> RtrlResult:
    """Train the one-layer model by RTRL on token pieces (each ``[BOS, …, EOS]``, int array (T,)).

    Args:
        pieces / val_pieces: training and validation token arrays; the state resets at every piece boundary.
        epochs: passes over ``pieces`` in a seeded random order (ignored when ``online``).
        online: stream through ``pieces`` once in the given order, updating every ``update_every`` events.
        report_every: log the running NLL (nats/event, mean since start and over the last window) this often.
        log: where progress lines go (None for silence).
        Other arguments: see ``RtrlTrainer``.

    Returns:
        ``RtrlResult``; ``history`` has one dict per epoch (``epoch, train_nll, val_nll, events, seconds``).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"rtrl: epochs: expected a positive integer, got {epochs!r}")
    if not any(len(piece) > 1 for piece in pieces):
        raise UsageError(f"rtrl: pieces: expected at least one piece with 2 or more tokens, got {len(pieces)} pieces")
    say = log or (lambda line: None)
    trainer = RtrlTrainer(cfg, weights, learning_rate, update_every, clipnorm, dtype, budget_bytes, seed)
    rng, start = np.random.default_rng(seed), time.perf_counter()
    result = RtrlResult(weights=trainer.weights)
    best, events, window, window_n = np.inf, 0, 0.0, 0
    for epoch in range(1 if online else epochs):
        order = np.arange(len(pieces)) if online else rng.permutation(len(pieces))
        total, count = 0.0, 0
        for index in order:
            trainer.reset()
            piece = pieces[index]
            for token, target in zip(piece[:-1], piece[1:]):
                loss = trainer.step(token, target)
                total, count, window, window_n = total + loss, count + 1, window + loss, window_n + 1
                if report_every and (events + count) % report_every == 0:
                    say(f"rtrl: epoch {epoch + 1} events {events + count}: running NLL {total / count:.4f} "
                        f"nats/event (last {window_n}: {window / window_n:.4f})")
                    window, window_n = 0.0, 0
        trainer.flush()
        events += count
        val = sequence_nll(trainer.weights, cfg, val_pieces)[0] if len(val_pieces) else None
        row = dict(epoch=epoch + 1, train_nll=total / count, val_nll=val, events=events,
                   seconds=time.perf_counter() - start)
        result.history.append(row)
        say(f"rtrl: epoch {epoch + 1}: train NLL {row['train_nll']:.4f}"
            + (f", validation NLL {val:.4f}" if val is not None else "") + f" nats/event, {row['seconds']:.1f} s")
        if val is None or val < best:
            best = np.inf if val is None else val
            result.weights, result.val_nll, result.train_nll = trainer.weights, val, row["train_nll"]
    result.events, result.seconds = events, time.perf_counter() - start
    return result
