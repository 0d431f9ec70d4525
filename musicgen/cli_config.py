"""``musicgen train``'s parsed flags → the configs it trains with (``ModelConfig``, ``TrainConfig``) and its default
bundle folder. Light at import (the config dataclasses only): ``trainer`` and ``cli`` both use it, neither the other.
"""

from __future__ import annotations

from pathlib import Path

from musicgen.config import MODEL_PRESETS


def configs_from_args(args, vocab_size: int, context: tuple[int, ...] = ()):
    """``musicgen train``'s flags → ``(ModelConfig, TrainConfig)``. ``ModelConfig`` = preset (one layer, no dropout
    for RTRL), then explicit flags, with ``context`` (the token cache's ``context.context_sizes``); ``TrainConfig``
    from flags (its defaults otherwise)."""
    from musicgen.config import ModelConfig, TrainConfig

    rtrl = getattr(args, "algorithm", "bptt") == "rtrl"
    preset = args.preset or ("tiny" if rtrl else "medium")
    model = dict(MODEL_PRESETS[preset])
    if rtrl:  # RTRL trains one layer without dropout: a preset's sizes apply, its depth and dropout do not
        model.update(layers=1, dropout=0.0)
    for name in ("embedding_dim", "units", "layers", "dropout"):
        if getattr(args, name, None) is not None:
            model[name] = getattr(args, name)
    model_cfg = ModelConfig(vocab_size=vocab_size, cell=args.cell or "gru", context=tuple(context), **model)
    train = {name: getattr(args, name) for name in ("epochs", "batch_size", "bptt", "stateful", "learning_rate",
                                                    "clipnorm", "val_fraction", "test_fraction", "transpose",
                                                    "patience", "seed", "algorithm", "split_seed")
             if getattr(args, name, None) is not None}
    if getattr(args, "clipnorm", None) == 0:
        train["clipnorm"] = None
    return model_cfg, TrainConfig(**train)


def default_out(corpus_dir: str, cell: str) -> Path:
    """``musicgen train``'s bundle folder when ``--out`` is not given: ``trained/<corpus folder name>-<cell>``."""
    return Path("trained") / f"{Path(corpus_dir).resolve().name}-{cell}"
