"""Training speed, measured fairly: musicgen's Keras model vs an idiomatic native PyTorch model of the same shape.

Model: Embedding(V, 128) → 2 × 256-unit {LSTM | GRU | SimpleRNN} → Dense(V), V = 390; batch 64 × 128 events;
random tokens; Adam (lr 2e-3) with clipping by global norm 1.0 on both sides. Equal work on both sides:

- both stateful (the state carried from one batch to the next, as ``musicgen train`` does; PyTorch: the returned
  hidden state, detached, is the next call's initial state), or both stateless with ``--stateless``;
- loss only: no accuracy or other metric on either side (``musicgen train`` adds a weighted accuracy; not here);
- the same thread counts, pinned and printed: TensorFlow intra-op/inter-op threads, ``torch.set_num_threads`` /
  ``set_num_interop_threads``, JAX ``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads=N``,
  ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for all; on TensorFlow (CPU, LSTM and GRU) what ``musicgen train`` does
  with N cores instead: ``musicgen.fused_rnn.use_cpu_lanes`` (the batch in lanes, one intra-op thread, N inter-op
  threads; ``nolanes`` pins N and N as for the other backends);
- ``--warmup`` untimed steps (compilation), then ``--steps`` (>= 20) timed ones; tokens/s = targets per timed
  second. Every variant's repetition runs in its own fresh process, interleaved (A, B, C, A, B, C, …), ``--reps``
  times (each cell in its own process); each cell's median over the repetitions is printed with its spread (min–max), and the ratio to native
  PyTorch is printed last (median of the per-repetition ratios, each against the PyTorch run of the same round).

Variants (``--variants``, comma-separated): ``BACKEND[:OPTION…]`` with BACKEND ``tensorflow``, ``jax`` or ``torch``
(a Keras backend) or ``native`` (PyTorch ``nn.LSTM``/``nn.GRU``/``nn.RNN``, batch first). Options: ``stock`` (the stock
Keras layers instead of musicgen's default fused ones, ``musicgen.fused_rnn``), ``jit`` / ``nojit``
(``jit_compile=True`` / ``False``; default ``"auto"``: on for JAX, off for TensorFlow on a CPU), ``onednn0``
(``TF_ENABLE_ONEDNN_OPTS=0``), ``lstmloop`` / ``lstmautodiff`` (``FusedLSTM`` on TensorFlow: ``musicgen.tf_rnn`` with the
``tf.while_loop`` forward instead of ``BlockLSTMV2``, or Keras' autodiff of the fused ``tf.while_loop`` instead of
``tf_rnn``; ``musicgen.fused_rnn.TF_LSTM_FORWARD``), ``gruautodiff`` (``FusedGRU`` on TensorFlow: Keras' autodiff of the
fused ``tf.while_loop`` instead of ``musicgen.tf_rnn.gru_window``; ``TF_GRU``), ``nolanes`` (TensorFlow: no lanes,
TensorFlow's threads pinned to N intra-op and N inter-op, the default before lanes).

    python benchmarks/train.py                                   # the default table (see RESULTS.md)
    python benchmarks/train.py --cells gru --batch 16 --seq 64 --dropout 0.1 --variants jax,jax:stock  # recipe shape
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's musicgen

DEFAULT_VARIANTS = "tensorflow,tensorflow:stock,jax,jax:stock,native"


def _timed_steps(step, steps: int, warmup: int) -> dict:
    """Wall seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones, and the process CPU
    seconds of all of them (every thread's; on a shared machine the fairer measure of work, see RESULTS.md)."""
    for _ in range(warmup):
        step()
    times = []
    cpu = time.process_time()
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {"seconds": times, "cpu_seconds": time.process_time() - cpu}


def _pin_threads(backend: str, threads: int) -> dict:
    """Pin the framework's thread pools (before any op runs) and return what is in force."""
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        return {"tf_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "tf_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    if backend in ("torch", "native"):
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(threads)
        return {"torch_threads": torch.get_num_threads(), "torch_interop": torch.get_num_interop_threads()}
    return {"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}


def keras_worker(cell: str, args, options: set[str]) -> dict:
    import keras
    import numpy as np

    from musicgen.config import ModelConfig
    from musicgen.models import build_model
    from musicgen.trainer import _torch_stateful_workaround

    if "lstmloop" in options or "lstmautodiff" in options:
        from musicgen import fused_rnn

        fused_rnn.TF_LSTM_FORWARD = "loop" if "lstmloop" in options else None
    if "gruautodiff" in options:
        from musicgen import fused_rnn

        fused_rnn.TF_GRU = False
    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab_size=args.vocab, cell=cell, embedding_dim=args.embedding, units=args.units,
                      layers=args.layers, dropout=args.dropout)
    stateful = not args.stateless
    model = build_model(cfg, batch_size=args.batch, stateful=stateful, fused="stock" not in options)
    jit = True if "jit" in options else False if "nojit" in options else "auto"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=2e-3, clipnorm=1.0),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=jit)
    _torch_stateful_workaround(model)  # what train_model does on the torch backend (Keras 3.15 bug)
    x = rng.integers(0, args.vocab, (args.batch, args.seq)).astype("int32")
    y = rng.integers(0, args.vocab, (args.batch, args.seq)).astype("int32")
    timed = _timed_steps(lambda: model.train_on_batch(x, y), args.steps, args.warmup)
    return {**timed, "jit_compile": str(model.jit_compile), "layer": type(model.get_layer("rnn_0")).__name__}


def native_worker(cell: str, args, options: set[str]) -> dict:
    import torch

    torch.manual_seed(0)
    rnn = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]
    vocab = args.vocab

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, args.embedding)
            self.rnn = rnn(args.embedding, args.units, num_layers=args.layers, batch_first=True, dropout=args.dropout)
            self.logits = torch.nn.Linear(args.units, vocab)

        def forward(self, x, hidden=None):
            out, hidden = self.rnn(self.embedding(x), hidden)
            return self.logits(out), hidden

    device = torch.device(args.device)
    net = Net().to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    x = torch.randint(0, vocab, (args.batch, args.seq), device=device)
    y = torch.randint(0, vocab, (args.batch, args.seq), device=device)
    carried = [None]

    def step():
        optimizer.zero_grad()
        logits, hidden = net(x, carried[0])
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        if not args.stateless:  # truncated BPTT: carry the state, cut the graph
            carried[0] = tuple(h.detach() for h in hidden) if isinstance(hidden, tuple) else hidden.detach()
        if device.type == "cuda":
            torch.cuda.synchronize()  # Keras' train_on_batch returns the loss as a number: it waits too

    return {**_timed_steps(step, args.steps, args.warmup), "layer": f"torch.nn.{rnn.__name__}"}


def _worker_env(backend: str, options: set[str], threads: int, device: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={threads}"}
    if device == "cpu":  # hide any GPU from every framework
        env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="")
    if backend != "native":
        env["KERAS_BACKEND"] = backend
    if "onednn0" in options:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    return env


def _run_worker(variant: str, args) -> dict:
    """Every cell of ``variant`` in its own fresh process (thread pools are fixed per process: on TensorFlow the
    lanes plan, ``musicgen.fused_rnn.use_cpu_lanes``, depends on the cell)."""
    backend, *options = variant.split(":")
    out = {}
    for cell in args.cells.split(","):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant] + _shape_argv(args, cells=cell)
        run = subprocess.run(cmd, env=_worker_env(backend, set(options), args.threads, args.device),
                             capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{variant} {cell} failed:\n{run.stderr[-2000:]}", file=sys.stderr)
            continue
        out.update(json.loads(run.stdout.strip().splitlines()[-1]))
    return out


def _shape_argv(args, cells: str) -> list[str]:
    names = ("device", "steps", "warmup", "threads", "vocab", "embedding", "units", "layers", "batch", "seq", "dropout")
    argv = [f"--cells={cells}"] + [f"--{name}={getattr(args, name)}" for name in names]
    return argv + (["--stateless"] if args.stateless else [])


def _tokens_per_s(result: dict, args, cpu: bool = False) -> float:
    """Targets per wall second (``cpu``: per process CPU second) over the timed steps."""
    return args.batch * args.seq * len(result["seconds"]) / (result["cpu_seconds"] if cpu else sum(result["seconds"]))


def _cellfmt(values: list[float], scale: float = 1000.0, unit: str = "k", digits: int = 1) -> str:
    if not values:
        return "-"
    mid, low, high = statistics.median(values), min(values), max(values)
    return f"{mid / scale:.{digits}f}{unit} ({low / scale:.{digits}f}–{high / scale:.{digits}f})"


def report(rounds: list[dict], variants: list[str], args) -> None:
    """Print the table: tokens/s per variant and cell (median, min–max over rounds), then ratios to native."""
    cells = args.cells.split(",")
    threads = {}  # per variant and cell, as the first round's workers set them
    for v, res in rounds[0].items():
        for c, r in res.items():
            threads[f"{v}/{c}"] = ",".join(f"{k}={x}" for k, x in r["threads"].items())
    print(f"device {args.device}; train tokens/s, batch {args.batch}x{args.seq}, Embedding {args.embedding}, {args.layers}x{args.units}, "
          f"vocab {args.vocab}, dropout {args.dropout}, {'stateless' if args.stateless else 'stateful'} both sides, "
          f"loss only (no metrics), {args.warmup} warm-up + {args.steps} timed steps, {len(rounds)} interleaved "
          f"repetitions (one process each), threads {args.threads}: {threads}")
    for cpu in (False, True):
        print(f"tokens per {'process CPU' if cpu else 'wall'} second: median (min–max) over repetitions")
        print(f"{'':26}" + "".join(f"{c:>24}" for c in cells))
        for v in variants:
            per_cell = [[_tokens_per_s(rnd[v][c], args, cpu) for rnd in rounds if c in rnd.get(v, {})] for c in cells]
            layer = next((rnd[v][c]["layer"] for rnd in rounds for c in cells if c in rnd.get(v, {})), "")
            print(f"{v:26}" + "".join(f"{_cellfmt(x):>24}" for x in per_cell) + f"   [{layer}]")
    if "native" not in variants:
        return
    for cpu in (True, False):  # the wall-clock ratio last
        print(f"ratio to native PyTorch per {'CPU' if cpu else 'wall'} second, same round: median (min–max)")
        for v in variants:
            if v == "native":
                continue
            row = ""
            for c in cells:
                ratios = [_tokens_per_s(rnd[v][c], args, cpu) / _tokens_per_s(rnd["native"][c], args, cpu)
                          for rnd in rounds if c in rnd.get(v, {}) and c in rnd.get("native", {})]
                row += f"{_cellfmt(ratios, 1.0, 'x', 2):>24}"
            print(f"{v:26}{row}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--cells", default="lstm,gru,simple_rnn")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help="BACKEND[:OPTION...] list, see the docstring")
    p.add_argument("--steps", type=int, default=20, help="timed training steps per repetition")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions, each variant in its own process")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every framework")
    p.add_argument("--vocab", type=int, default=390)
    p.add_argument("--embedding", type=int, default=128)
    p.add_argument("--units", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--dropout", type=float, default=0.0, help="between layers (Keras: after each recurrent layer)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: Keras on the GPU (cuDNN where its settings allow), PyTorch .to('cuda') (benchmarks/gpu.sh)")
    p.add_argument("--stateless", action="store_true", help="both sides stateless (default: both stateful)")
    p.add_argument("--json", default=None, help="also write every step time here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        backend, *options = args.worker.split(":")
        if backend == "tensorflow" and "nolanes" not in options and args.device == "cpu":
            from musicgen.fused_rnn import use_cpu_lanes  # what `musicgen train` does: lanes, threads

            lanes = use_cpu_lanes(args.batch, args.cells, cores=args.threads)  # one cell per worker
            threads = {"lanes": lanes.get("lanes", 1), "tf_intra_op": lanes.get("intra_op"),
                       "tf_inter_op": lanes.get("inter_op")}
            if lanes["lanes"] == 1:
                threads = _pin_threads(backend, args.threads)
        else:
            threads = _pin_threads(backend, args.threads)
        fn = native_worker if backend == "native" else keras_worker
        out = {c: {**fn(c, args, set(options)), "threads": threads} for c in args.cells.split(",")}
        print(json.dumps(out))
        return 0
    variants = args.variants.split(",")
    print(f"load average before: {os.getloadavg()}", flush=True)
    rounds = []
    for i in range(args.reps):
        rounds.append({v: _run_worker(v, args) for v in variants})
        print(f"round {i + 1}/{args.reps} done, load average {os.getloadavg()}", flush=True)
    if args.json:
        from musicgen.safeio import atomic_write_text

        atomic_write_text(args.json, json.dumps({"args": vars(args), "rounds": rounds}))
    report(rounds, variants, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
