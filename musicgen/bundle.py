"""The bundle: a self-describing model folder that sampling and evaluation load without TensorFlow.

Layout (see docs/DESIGN.md)::

    NAME/
      bundle.json         format version, versions, vocab size, cell, sha256 of every file below
      model.keras         the Keras model (loaded with safe_mode=True)
      weights.npz         models.export_weights(model): plain float32 arrays for the numpy sampler
      tokenizer.json      TokenizerConfig
      model_config.json   ModelConfig
      train_config.json   TrainConfig
      metrics.json        final metrics (validation NLL in nats/event, perplexity, accuracy, …)
      history.csv         per-epoch log (optional)
      evaluation.json     ``musicgen evaluate --save`` report (optional, added by ``write_bundle_file``)
      start_state.npz     the recurrent state sampling starts from (optional; absent: zeros), see start_state.py

Writes are atomic at the folder level: the bundle is built in a temporary folder beside the target and swapped in
with renames, so a crash never leaves a half-written bundle where a good one was. What a killed save leaves beside
the folder (``.NAME.tmp-PID`` holding ``checkpoints/`` and ``logs/``, ``.NAME.old-PID``) is put back by
``recover_interrupted_save`` at the next save or training start. Loading executes no code: JSON,
``np.load(allow_pickle=False)`` and ``keras.saving.load_model(safe_mode=True)`` only.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen import __version__
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import BundleError, ConfigError
from musicgen.safeio import atomic_write_text, sha256_file

FORMAT_VERSION = 1
REQUIRED = ("model.keras", "weights.npz", "tokenizer.json", "model_config.json", "train_config.json", "metrics.json")
OPTIONAL = ("history.csv", "evaluation.json", "start_state.npz")


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")


@dataclass
class Bundle:
    """A loaded bundle. ``weights`` are the numpy arrays in the ``models.export_weights`` layout."""

    path: Path
    info: dict
    model_config: ModelConfig
    train_config: TrainConfig
    tokenizer_config: TokenizerConfig
    weights: dict[str, np.ndarray]
    metrics: dict
    start_state: list | None = None  # per layer a tuple of (units,) arrays; None: the zero state
    _tokenizer: object = field(default=None, repr=False)

    @property
    def tokenizer(self):
        """The ``Tokenizer`` the model was trained with."""
        if self._tokenizer is None:
            from musicgen.tokenizer import Tokenizer

            self._tokenizer = Tokenizer(self.tokenizer_config)
        return self._tokenizer

    @property
    def name(self) -> str:
        return self.path.name

    def keras_model(self):
        """The Keras model, loaded with ``safe_mode=True`` (imports Keras; refuses Lambda layers and other code)."""
        import keras

        import musicgen.fused_rnn  # noqa: F401  registers the fused layers a model.keras may hold

        try:
            return keras.saving.load_model(self.path / "model.keras", compile=False, safe_mode=True)
        except Exception as exc:  # Keras raises ValueError/TypeError for unsafe or foreign content
            raise BundleError(f"{self.path / 'model.keras'}: cannot be loaded safely: {exc}".splitlines()[0]) from exc


def save_bundle(out_dir: str | Path, *, model, model_config: ModelConfig, train_config: TrainConfig,
                tokenizer_config: TokenizerConfig, metrics: dict, history_csv: str | Path | None = None,
                start_state: list | None = None) -> Path:
    """Write a bundle folder atomically and return its path.

    Entries already in ``out_dir`` that are not bundle files (e.g. a training run's ``checkpoints/`` or ``logs/``)
    are carried over into the new folder.
    """
    from musicgen.models import export_weights

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_save(out_dir)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    tmp.mkdir()
    try:
        model.save(tmp / "model.keras")
        np.savez(tmp / "weights.npz", **export_weights(model, model_config))
        tokenizer_config.save(tmp / "tokenizer.json")
        model_config.save(tmp / "model_config.json")
        train_config.save(tmp / "train_config.json")
        _write_json(tmp / "metrics.json", metrics)
        if history_csv is not None and Path(history_csv).exists():
            shutil.copyfile(history_csv, tmp / "history.csv")
        if start_state is not None:
            from musicgen.start_state import save_start_state

            save_start_state(start_state, tmp / "start_state.npz")
        _write_json(tmp / "bundle.json", _bundle_info(tmp, model_config))
        _swap_in(tmp, out_dir)
    except BaseException:
        if not out_dir.exists() and (tmp / "bundle.json").is_file():  # between the two renames of the fallback swap
            recover_interrupted_save(out_dir)
        else:
            if out_dir.is_dir():
                _move_extras(tmp, out_dir)  # the run's checkpoints/ and logs/ go back before tmp is deleted
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_bundle_file(path: str | Path, name: str, data: str | bytes) -> Path:
    """Write the optional bundle file ``name`` (one of ``OPTIONAL``; ``data`` text or bytes) into a bundle and record
    its sha256 in bundle.json, so ``load_bundle`` still verifies. Both writes are atomic (the file first, then
    bundle.json)."""
    from musicgen.safeio import atomic_write_bytes, atomic_write_text

    path = Path(path)
    if name not in OPTIONAL:
        raise BundleError(f"name: expected one of {list(OPTIONAL)}, got {name!r}")
    info = _read_json(path, "bundle.json")
    if isinstance(data, bytes):
        atomic_write_bytes(path / name, data)
    else:
        atomic_write_text(path / name, data)
    return _record_checksum(path, info, name)


def update_metrics(path: str | Path, **fields) -> dict:
    """Add or replace ``fields`` in a bundle's ``metrics.json`` (e.g. a record an older ``musicgen train`` did not
    write) and its sha256 in bundle.json, both atomically, so ``load_bundle`` still verifies; returns the metrics."""
    path = Path(path)
    info = _read_json(path, "bundle.json")
    metrics = {**_read_json(path, "metrics.json"), **fields}
    _write_json(path / "metrics.json", metrics)
    _record_checksum(path, info, "metrics.json")
    return metrics


def _record_checksum(path: Path, info: dict, name: str) -> Path:
    """Record the sha256 of ``path / name`` in ``info`` (bundle.json's contents) and write bundle.json atomically."""
    info.setdefault("files", {})[name] = sha256_file(path / name)
    _write_json(path / "bundle.json", info)
    return path / name


def _is_bundle_file(name: str) -> bool:
    return name in REQUIRED + OPTIONAL + ("bundle.json",)


def _move_extras(src: Path, dst: Path) -> list[str]:
    """Move the entries of ``src`` that are not bundle files into ``dst`` unless ``dst`` has one of that name;
    returns the names moved."""
    moved = []
    for entry in sorted(src.iterdir()):
        if not _is_bundle_file(entry.name) and not (dst / entry.name).exists():
            os.replace(entry, dst / entry.name)
            moved.append(entry.name)
    return moved


def _owner_alive(leftover: Path) -> bool:
    """True when the process that named ``leftover`` (``….tmp-PID`` / ``….old-PID``) is another live process."""
    pid = leftover.name.rsplit("-", 1)[-1]
    if not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def recover_interrupted_save(out_dir: str | Path) -> list[str]:
    """Put back what a killed ``save_bundle`` left beside ``out_dir``; print and return one message per action.

    * ``out_dir`` missing (killed between the two renames of the fallback swap): the new bundle (``.NAME.tmp-PID``
      with a ``bundle.json``) becomes ``out_dir``, else the old one (``.NAME.old-PID``).
    * ``checkpoints/``, ``logs/`` and other non-bundle entries inside a leftover move back into ``out_dir``.
    * The leftover, now holding only bundle files of an old or unfinished save, is deleted (kept, with a message,
      when one of its entries could not be moved back because ``out_dir`` has one of that name).
    Leftovers of another live process (a save in progress) are not touched.
    """
    out_dir = Path(out_dir)
    pattern = f".{out_dir.name}."
    leftovers = sorted(p for p in out_dir.parent.glob(f"{pattern}*")
                       if p.is_dir() and p.name[len(pattern):].startswith(("tmp-", "old-")) and not _owner_alive(p))
    messages = []
    if leftovers and not out_dir.exists():
        complete = [p for p in leftovers if ".tmp-" in p.name and (p / "bundle.json").is_file()]
        chosen = (complete or [p for p in leftovers if ".old-" in p.name] or [None])[0]
        if chosen is not None:
            os.replace(chosen, out_dir)
            leftovers.remove(chosen)
            messages.append(f"{out_dir}: finished an interrupted save (renamed {chosen.name} to {out_dir.name})")
    for leftover in leftovers:
        moved = _move_extras(leftover, out_dir) if out_dir.is_dir() else []
        if moved:
            messages.append(f"{out_dir}: recovered {', '.join(n + '/' for n in moved)} from an interrupted save "
                            f"({leftover.name})")
        kept = [e.name for e in leftover.iterdir() if not _is_bundle_file(e.name)]
        if kept:
            messages.append(f"{out_dir}: kept {leftover} from an interrupted save: {out_dir.name} already has "
                            f"{', '.join(kept)}; merge by hand")
        else:
            shutil.rmtree(leftover, ignore_errors=True)
            messages.append(f"{out_dir}: removed {leftover.name} left by an interrupted save")
    for message in messages:
        print(message, file=sys.stderr)
    return messages


def _bundle_info(folder: Path, model_config: ModelConfig) -> dict:
    import keras

    files = {name: sha256_file(folder / name) for name in REQUIRED + OPTIONAL if (folder / name).exists()}
    return {
        "format_version": FORMAT_VERSION,
        "musicgen_version": __version__,
        "keras_version": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cell": model_config.cell,
        "vocab_size": model_config.vocab_size,
        "files": files,
    }


def _swap_in(tmp: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by ``tmp`` with renames, keeping out_dir's non-bundle entries."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BundleError(f"{out_dir}: exists and is not a folder")
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    for entry in out_dir.iterdir():
        if not _is_bundle_file(entry.name):
            os.replace(entry, tmp / entry.name)
    if _exchange(tmp, out_dir):  # one atomic step: out_dir is the old bundle or the new one, never missing
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"  # two renames: a kill between leaves only `old`
    os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where not supported."""
    import ctypes
    import errno

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel or a file system without it
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def load_bundle(path: str | Path, verify_hashes: bool = True) -> Bundle:
    """Load and check a bundle folder (never imports TensorFlow).

    Raises:
        BundleError: a part is missing, unreadable, tampered with (sha256 mismatch), of another format version, or
            the parts disagree (vocabulary size, weight shapes).
    """
    path = Path(path)
    if not path.exists():
        left = sorted(path.parent.glob(f".{path.name}.old-*")) if path.name else []
        hint = f"; a save was interrupted: rename {left[-1]} to {path}" if left else ""
        raise BundleError(f"model not found: {path} (train one with `musicgen train CORPUS --out {path}`){hint}")
    if not path.is_dir():
        raise BundleError(f"model path is not a bundle folder: {path}")
    info = _read_json(path, "bundle.json")
    if info.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {info.get('format_version')!r}, this musicgen reads {FORMAT_VERSION}")
    for name in REQUIRED:
        if not (path / name).is_file():
            raise BundleError(f"{path}: missing {name}")
    if verify_hashes:
        for name, digest in info.get("files", {}).items():
            if name not in REQUIRED + OPTIONAL:
                raise BundleError(f"{path}: bundle.json lists an unexpected file {name!r}")
            if (path / name).is_file() and sha256_file(path / name) != digest:
                raise BundleError(f"{path}: {name} does not match its checksum in bundle.json (modified or corrupt)")
    try:
        model_config = ModelConfig.from_dict(_read_json(path, "model_config.json"))
        train_config = TrainConfig.from_dict(_read_json(path, "train_config.json"))
        tokenizer_config = TokenizerConfig.from_dict(_read_json(path, "tokenizer.json"))
    except (ConfigError, TypeError) as exc:
        raise BundleError(f"{path}: invalid config: {exc}") from exc
    bundle = Bundle(path=path, info=info, model_config=model_config, train_config=train_config,
                    tokenizer_config=tokenizer_config, weights=_read_weights(path / "weights.npz"),
                    metrics=_read_json(path, "metrics.json"))
    _check_consistent(bundle)
    if (path / "start_state.npz").is_file():
        from musicgen.start_state import load_start_state

        bundle.start_state = load_start_state(path / "start_state.npz", model_config)
    return bundle


def _read_json(path: Path, name: str):
    try:
        return json.loads((path / name).read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: missing {name}") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: {name} is not valid JSON: {exc}") from None


def _read_weights(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except ValueError as exc:  # raised for object (pickled) arrays when allow_pickle=False
        raise BundleError(f"{path}: refused: {exc}") from None
    except Exception as exc:
        raise BundleError(f"{path}: unreadable weights: {exc}") from None


def _check_consistent(bundle: Bundle) -> None:
    from musicgen.models import expected_weight_shapes

    cfg = bundle.model_config
    vocab = bundle.tokenizer.vocab_size
    if cfg.vocab_size != vocab:
        raise BundleError(f"{bundle.path}: model has {cfg.vocab_size} output classes but the tokenizer has {vocab}")
    from musicgen.context import context_sizes

    if cfg.context and cfg.context != context_sizes(bundle.tokenizer_config):  # () = a model without context inputs
        raise BundleError(f"{bundle.path}: model context {list(cfg.context)} does not match the tokenizer's "
                          f"{list(context_sizes(bundle.tokenizer_config))} (meter/key/style)")
    expected = expected_weight_shapes(cfg)
    got = {k: tuple(v.shape) for k, v in bundle.weights.items()}
    if set(got) != set(expected):
        raise BundleError(f"{bundle.path}: weights.npz has arrays {sorted(got)}, expected {sorted(expected)}")
    for key, shape in expected.items():
        if got[key] != shape:
            raise BundleError(f"{bundle.path}: weights.npz[{key!r}] has shape {got[key]}, expected {shape}")
        if bundle.weights[key].dtype.kind != "f":
            raise BundleError(f"{bundle.path}: weights.npz[{key!r}] has dtype {bundle.weights[key].dtype}")
