"""Data-parallel training on several devices of one host: ``musicgen train --devices N|auto``.

One global batch of ``batch_size`` streams (``streaming.StreamingBatches``) is split across ``N`` devices by rows:
device ``k`` always gets rows ``[k * B/N, (k + 1) * B/N)``, so the recurrent state it carries from window to window
(stateful truncated BPTT) always belongs to the same streams. Gradients are averaged over all rows, so one step on
``N`` devices is one step on one device up to float summation order (tests/test_devices.py checks losses, weights
and the per-row states on 2 logical CPU devices, per backend).

Per Keras backend:

* TensorFlow: ``tf.distribute.MirroredStrategy``. The model is built inside the strategy's scope with the
  per-replica batch ``B/N`` (a stateful layer's state variable holds that replica's rows); the batches go in as a
  ``tf.data.Dataset`` whose generator restarts at the epoch asked for on each new iterator, because with a strategy
  Keras 3.15 opens and discards one iterator before training (``_maybe_symbolic_build``), and with a plain Python
  generator the batches that throwaway iterator prefetched are lost (measured: batches 2-8 of a 40-batch generator).
* JAX: ``keras.distribution.DataParallel`` over the first ``N`` devices; the model keeps the global batch ``B``
  (one SPMD program; the data's batch axis is sharded in ``N`` contiguous blocks, the weights and states are
  replicated). Several hosts: start the same command once per process with ``KERAS_DISTRIBUTION_JOB_ADDRESSES``
  (coordinator ``host:port``), ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and ``KERAS_DISTRIBUTION_PROCESS_ID`` set and
  ``--devices auto``: the job trains on every device of every process, process ``p`` feeding rows
  ``[p * B/P, (p + 1) * B/P)`` of each batch (``process_rows``); every process ends with the same weights and
  writes its own bundle to its ``--out``.
* torch: one device only here (``--devices`` > 1 is a usage error).

``devices`` goes into the run's ``metrics.json`` only: it does not enter ``train_config.json``, the weights'
layout or anything sampling reads, and a run may be resumed with another device count (the checkpoint's weights
and optimizer state are loaded into a model built for the new count).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from musicgen.errors import UsageError

AUTO = "auto"


def parse_devices(text: str) -> int | str:
    """``--devices`` value: a positive integer or ``"auto"`` (every device the backend sees)."""
    if str(text).strip().lower() == AUTO:
        return AUTO
    try:
        value = int(text)
    except (TypeError, ValueError):
        value = None
    if value is None or value < 1:
        raise UsageError(f"--devices: expected a positive integer or 'auto', got {text!r}")
    return value


def check_devices(devices: int, batch_size: int, visible: int, backend: str) -> int:
    """``devices`` checked against what the backend sees and the batch (each device gets ``batch_size / devices``
    whole streams); returns it. One-line ``UsageError`` naming the argument and the value otherwise."""
    if backend == "torch" and devices > 1:
        raise UsageError(f"--devices: {devices} needs KERAS_BACKEND=tensorflow or jax; the torch backend trains on "
                         f"one device here")
    if devices > visible:
        raise UsageError(f"--devices: {devices} requested but the {backend} backend sees {visible} device"
                         f"{'s' if visible != 1 else ''}")
    if batch_size % devices:
        raise UsageError(f"--batch-size: {batch_size} is not divisible by --devices {devices} (each device takes "
                         f"whole streams); use a multiple of {devices}")
    return devices


def visible_devices(backend: str) -> int:
    """Devices the Keras backend would train on: GPUs (else CPUs) for TensorFlow; for JAX every device of every
    process (``jax.device_count()``, the local ones unless several processes were started, see ``start_processes``)."""
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.list_logical_devices("GPU")) or len(tf.config.list_logical_devices("CPU"))
    if backend == "jax":
        import jax

        return jax.device_count()
    return 1


def start_processes() -> int:
    """JAX multi-process training: when ``KERAS_DISTRIBUTION_NUM_PROCESSES`` > 1 (with
    ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` = the coordinator's ``host:port`` and ``KERAS_DISTRIBUTION_PROCESS_ID``),
    join the job with ``keras.distribution.initialize()`` (``jax.distributed.initialize``; CPU collectives over
    gloo) before JAX touches a device. Returns the number of processes (1 without the variables)."""
    import os

    if int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES") or 1) <= 1:
        return 1
    import jax
    import keras

    if not jax.distributed.is_initialized():
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices; GPUs use NCCL regardless
        keras.distribution.initialize()
    return jax.process_count()


class Placement:
    """Where one training run's model lives and how its batches get there.

    Args:
        devices: an int >= 1 or ``"auto"``.
        batch_size: the global batch (streams); must be divisible by the resolved device count.

    ``n`` is the device count, ``replica_batch`` the batch a stateful model is built with (``B/N`` under a
    TensorFlow strategy, ``B`` otherwise). Build and load the training model inside ``build_scope()``; call ``fit``
    inside ``fit_scope()`` with ``train_input(batches, first_epoch)``.
    """

    def __init__(self, devices: int | str, batch_size: int):
        import keras

        devices = parse_devices(devices)
        self.backend = keras.backend.backend()
        self.processes = start_processes() if self.backend == "jax" else 1
        visible = visible_devices(self.backend) if devices == AUTO or devices > 1 or self.processes > 1 else 1
        n = visible if devices == AUTO else int(devices)
        if self.processes > 1 and n != visible:
            raise UsageError(f"--devices: {devices} with {self.processes} processes; a multi-process run trains on "
                             f"all {visible} devices of the job (use --devices auto)")
        self.n = check_devices(n, int(batch_size), visible, self.backend)
        self.batch_size = int(batch_size)
        self._strategy = self._distribution = None
        if self.n > 1 and self.backend == "tensorflow":
            import tensorflow as tf

            kind = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
            names = [d.name for d in tf.config.list_logical_devices(kind)[: self.n]]
            self._strategy = tf.distribute.MirroredStrategy(names)
        elif self.n > 1 and self.backend == "jax":
            import jax

            self._distribution = keras.distribution.DataParallel(devices=jax.devices()[: self.n])
            self._distribution.auto_shard_dataset = False  # process_rows gives each process its own rows

    @property
    def replica_batch(self) -> int:
        return self.batch_size // self.n if self._strategy is not None else self.batch_size

    def build_scope(self):
        """Context for creating the training model's variables (mirrored or mesh-placed)."""
        if self._strategy is not None:
            return self._strategy.scope()
        return self.fit_scope()

    def fit_scope(self):
        """Context for ``model.fit`` (JAX reads the distribution from it to shard each batch)."""
        if self._distribution is not None:
            return self._distribution.scope()
        return contextlib.nullcontext()

    def train_input(self, batches, first_epoch: int):
        """What ``model.fit`` gets: ``batches.forever(first_epoch)``, as a restartable ``tf.data.Dataset`` under a
        TensorFlow strategy (see the module docstring)."""
        if self.processes > 1:  # each process feeds its block of rows; JAX assembles the global batch
            import jax

            rows = self.batch_size // self.processes
            return process_rows(batches.forever(first_epoch), jax.process_index() * rows, rows)
        if self._strategy is None:
            return batches.forever(first_epoch)
        return restartable_dataset(batches, first_epoch)


def restartable_dataset(batches, first_epoch: int):
    """``batches.forever(first_epoch)`` as a ``tf.data.Dataset`` with a static batch dimension; every iterator of it
    starts again at batch 0 of ``first_epoch`` with its own copy of ``batches`` (its own piece cache), so a
    discarded iterator's prefetching neither skips batches nor shares a cache with the next one."""
    import tensorflow as tf

    first = batches.batch(first_epoch, 0)
    spec = tf.nest.map_structure(lambda a: tf.TensorSpec(a.shape, tf.as_dtype(a.dtype)), first)

    def generate() -> Iterator[tuple]:
        return batches.fork().forever(first_epoch)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=spec)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(2)


def process_rows(stream: Iterator[tuple], start: int, rows: int) -> Iterator[tuple]:
    """Rows ``[start, start + rows)`` of every array of every batch of ``stream`` (one process's share)."""
    import numpy as np

    for batch in stream:
        yield tuple(tuple(np.asarray(a)[start: start + rows] for a in part) if isinstance(part, tuple)
                    else np.asarray(part)[start: start + rows] for part in batch)
