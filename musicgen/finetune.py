"""Fine-tuning: ``musicgen train DIR --init-from BUNDLE`` trains on from a bundle's ``weights.npz``.

What comes from the base bundle, and what may not differ from it:

* **tokenizer**: a music folder is ingested with the base's tokenizer config; a token cache made with another config
  is a one-line error naming the differing fields (``corpus.tokens_for``), and so is a ``--time-mode``, ``--voices``,
  ``--meter`` or ``--key-mode`` flag that disagrees with the base.
* **model**: the base's ``ModelConfig`` (cell, sizes, context inputs for meter/key); an explicit ``--cell``,
  ``--preset``, ``--units``, ``--layers`` or ``--embedding-dim`` that disagrees is a one-line error. ``--dropout`` may
  change: it regularizes and holds no weights.
* **learning rate** ``FINETUNE_LR`` = 5e-4 (a quarter of training from scratch's 2e-3) unless ``--lr`` says
  otherwise: Adam's first steps move every weight by about the learning rate whatever the gradient's scale, so a
  smaller step keeps the model nearer the base (an implicit prior) while it adapts. docs/finetune.md measures the
  trade-off on 22 Palestrina pieces, 8 epochs: 5e-4 keeps more of the base (Bach test NLL 1.43 against 1.75 at 2e-3;
  the base 1.01), 2e-3 fits the new pieces a little better in that budget (test NLL 1.21 against 1.25, two-sample
  accuracy 0.84 against 0.95); both runs were still improving at epoch 8.
* **early stopping** on the valid part with patience ``FINETUNE_PATIENCE`` = 3 epochs (4 from scratch) unless
  ``--patience``: the run starts near a minimum, so improvement stops sooner; the best valid epoch is kept.
* **facts** in metrics.json: ``init_from`` (the base's path as given, the sha256 of its weights.npz and of its
  bundle.json, its own val_nll) and ``init_val_nll`` (the base's NLL on the new valid part before any step).
"""

from __future__ import annotations

from pathlib import Path

from musicgen.config import MODEL_INPUTS, MODEL_PRESETS, ModelConfig, TrainConfig
from musicgen.errors import UsageError

FINETUNE_LR = 5e-4
FINETUNE_PATIENCE = 3
SIZE_FLAGS = (("cell", "--cell"), ("units", "--units"), ("layers", "--layers"), ("embedding_dim", "--embedding-dim"))


def load_base(path: str | Path):
    """The base ``Bundle`` of a fine-tuning run (``bundle.load_bundle``; its errors name the path)."""
    from musicgen.bundle import load_bundle

    return load_bundle(path)


def check_flags(args, base) -> None:
    """One-line ``UsageError`` for a flag that disagrees with the base bundle: a model size (``--cell``,
    ``--preset``, ``--units``, ``--layers``, ``--embedding-dim``), a tokenizer setting (``--time-mode``,
    ``--voices``, ``--meter``, ``--key-mode``, ``--styles``, ``--last-pitch``, ``--neighbor-pitches``,
    ``--held-notes``) or ``--algorithm rtrl``. ``args``: the ``musicgen train`` namespace (unset flags are None)."""
    cfg, tok, where = base.model_config, base.tokenizer_config, f"the bundle {str(base.path)!r}"
    for name, flag in SIZE_FLAGS:
        value = getattr(args, name, None)
        if value is not None and value != getattr(cfg, name):
            raise UsageError(f"{flag}: {value!r} differs from {where} ({name}={getattr(cfg, name)!r}); fine-tuning "
                             f"keeps the base's model, leave the flag out")
    preset = getattr(args, "preset", None)
    if preset is not None:
        diff = [k for k in ("embedding_dim", "units", "layers") if MODEL_PRESETS[preset][k] != getattr(cfg, k)]
        if diff:
            raise UsageError(f"--preset: {preset!r} differs from {where} in {', '.join(diff)} "
                             f"({cfg.layers}x{cfg.units}, embedding {cfg.embedding_dim}); leave the flag out")
    voices = getattr(args, "voices", None)
    for flag, name, differs in (
            ("--time-mode", "time_mode", args.time_mode is not None and args.time_mode != tok.time_mode),
            ("--voices", "voices", voices is not None and str(voices) != str(tok.voices)),
            ("--voice-events", "voice_events", getattr(args, "voice_events", None) not in (None, tok.voice_events)),
            ("--meter", "meter", bool(getattr(args, "meter", None)) and not tok.meter),
            ("--key-mode", "key", getattr(args, "key_mode", None) is not None and args.key_mode != tok.key),
            ("--styles", "styles", bool(getattr(args, "styles", None)) and not tok.styles),
            *((flag, field, bool(getattr(args, field, None)) and not getattr(tok, field))
              for field, flag in MODEL_INPUTS.items())):
        if differs:
            raise UsageError(f"{flag}: differs from {where} ({name}={getattr(tok, name)!r}); fine-tuning tokenizes "
                             f"with the base's tokenizer, leave the flag out")
    if getattr(args, "algorithm", "bptt") != "bptt":
        raise UsageError(f"--algorithm: {args.algorithm!r} cannot fine-tune; --init-from needs bptt")


def base_tokens(corpus_dir: str | Path, base, progress: bool = False):
    """``TokenSet`` of ``corpus_dir`` tokenized with the base's tokenizer config: a music folder is ingested with it
    (cached), a token cache must have been made with it. A base with styles fine-tunes a folder without style
    folders as its default style (``styles.default_style``; ``cli_train`` records it as the new bundle's)."""
    from musicgen.corpus import tokens_for
    from musicgen.styles import default_style_name

    try:
        return tokens_for(corpus_dir, base.tokenizer_config, progress=progress, style=default_style_name(base))
    except UsageError as exc:
        raise UsageError(f"{exc} (--init-from {str(base.path)!r} sets the tokenizer)") from None


def configs(args, base, train_cfg: TrainConfig) -> tuple[ModelConfig, TrainConfig]:
    """The base's ``ModelConfig`` (``--dropout`` may change it) and ``train_cfg`` with the fine-tuning defaults for
    the learning rate and patience where ``--lr`` / ``--patience`` were not given."""
    model_cfg = base.model_config
    if getattr(args, "dropout", None) is not None:
        model_cfg = model_cfg.replace(dropout=args.dropout)
    if getattr(args, "learning_rate", None) is None:
        train_cfg = train_cfg.replace(learning_rate=FINETUNE_LR)
    if getattr(args, "patience", None) is None:
        train_cfg = train_cfg.replace(patience=FINETUNE_PATIENCE)
    return model_cfg, train_cfg


def init_facts(base) -> dict:
    """Where a fine-tuned bundle started, JSON-ready: the base's path (as given), the sha256 of its weights.npz and
    bundle.json, and the base's own validation NLL (nats/event, on its own corpus)."""
    from musicgen.safeio import sha256_file

    return {"path": str(base.path), "weights_sha256": sha256_file(base.path / "weights.npz"),
            "bundle_sha256": sha256_file(base.path / "bundle.json"), "base_val_nll": base.metrics.get("val_nll")}
