"""``musicgen train``: corpus → tokens (cached) → ``trainer.fit_model`` → ``bundle.save_bundle``; the final report."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path

from musicgen.config import MODEL_INPUTS, ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import UsageError
from musicgen.safeio import check_output_dir
from musicgen.trainer import fit_model, format_report


def _inputs_of(config: TokenizerConfig, context: tuple[int, ...]) -> TokenizerConfig:
    """``config`` with the model-input fields (``MODEL_INPUTS``) a model of ``context`` sizes was trained with turned on
    (each combination gives another number of features); ``config`` itself when none fits."""
    import itertools

    from musicgen.context import context_sizes

    if config.voice_events != "all":
        return config
    for on in itertools.product((False, True), repeat=len(MODEL_INPUTS)):
        candidate = config.replace(**{f: v or getattr(config, f) for f, v in zip(MODEL_INPUTS, on)})
        if context_sizes(candidate) == context:
            return candidate
    return config


def cli_train(args) -> int:
    """``musicgen train CORPUS_DIR``: tokens (cached) → train (or resume) → bundle; prints the final report."""
    from musicgen.bundle import recover_interrupted_save, save_bundle
    from musicgen.cli_config import configs_from_args, default_out
    from musicgen.corpus import is_token_cache, tokens_for
    from musicgen.tokenizer import Tokenizer
    from musicgen.train_callbacks import STATE

    if not Path(args.corpus_dir).exists():
        raise UsageError(f"corpus_dir: {args.corpus_dir!r} does not exist")
    for field, flag in MODEL_INPUTS.items():
        if getattr(args, field, None) and getattr(args, "voice_events", None) == "implied":
            raise UsageError(f"{flag}: needs a VOICE event at every change of voice, not --voice-events implied")
    _, flags_cfg = configs_from_args(args, vocab_size=1)  # bad flags fail here, before any ingest
    from musicgen.fused_rnn import LANES_ENV, lanes_setting

    lanes_setting(os.environ.get(LANES_ENV))
    from musicgen.devices import check_devices, parse_devices

    args.devices = parse_devices(getattr(args, "devices", 1))
    if args.devices != "auto" and flags_cfg.algorithm == "bptt" and not args.resume:  # devices seen: at training
        check_devices(args.devices, flags_cfg.batch_size, args.devices, "any")
    base = None
    if getattr(args, "init_from", None):
        from musicgen import finetune

        base = finetune.load_base(args.init_from)
        finetune.check_flags(args, base)
    out = Path(args.out) if args.out else default_out(args.corpus_dir, base.model_config.cell if base else
                                                      args.cell or "gru")
    check_output_dir(out, "--out")
    args.out = str(out)  # the Python API (train_api.train) loads the bundle from here
    tokenizer_cfg = None
    if args.time_mode is not None:
        tokenizer_cfg = TokenizerConfig.seconds() if args.time_mode == "seconds" else TokenizerConfig()
    from musicgen.corpus_cli import with_meter_and_key

    tokenizer_cfg = with_meter_and_key(tokenizer_cfg, args, args.corpus_dir)
    if base is not None:
        tokens = finetune.base_tokens(args.corpus_dir, base, progress=bool(args.verbose))
    elif getattr(args, "voice_events", None) is not None and getattr(args, "voices", None) is None and \
            not is_token_cache(args.corpus_dir):
        raise UsageError("--voice-events: give --voices N (N >= 1) or auto with it")
    elif getattr(args, "voices", None) is not None or getattr(args, "voice_events", None) is not None:
        from musicgen.voices import tokens_with_voices

        tokens = tokens_with_voices(args.corpus_dir, tokenizer_cfg, args.voices or "auto", progress=bool(args.verbose),
                                    voice_events=getattr(args, "voice_events", None))
    else:
        tokens = tokens_for(args.corpus_dir, tokenizer_cfg, progress=bool(args.verbose))
    for field, flag in MODEL_INPUTS.items():
        if getattr(args, field, None) and not getattr(tokens.tokenizer_config, field):
            if tokens.tokenizer_config.voice_events != "all":
                raise UsageError(f"{flag}: needs a VOICE event at every change of voice; the tokens have "
                                 "voice_events='implied' (ingest with --voice-events all)")
            tokens = dataclasses.replace(tokens, tokenizer_config=tokens.tokenizer_config.replace(**{field: True}))
    tokenizer = Tokenizer(tokens.tokenizer_config)
    from musicgen import styles

    default_style = getattr(args, "default_style", None)
    if default_style is None and base is not None:  # a styled base's default carries over (base_tokens read a
        default_style = styles.default_style_name(base)  # folder without style folders in it); None without styles
    if default_style is not None:
        styles.parse_style(default_style, tokens.tokenizer_config.styles, f"the corpus {args.corpus_dir!r}",
                           "--default-style")
    from musicgen.context import context_sizes

    model_cfg, train_cfg = configs_from_args(args, tokenizer.vocab_size, context_sizes(tokenizer.config))
    if base is not None:
        model_cfg, train_cfg = finetune.configs(args, base, train_cfg)
    recover_interrupted_save(out)
    saved = out / "checkpoints" / STATE
    if args.resume and saved.exists():  # the checkpoint's settings win, so `--resume` alone is enough
        state = json.loads(saved.read_text())
        model_cfg = ModelConfig.from_dict(state["model_config"])
        train_cfg = TrainConfig.from_dict(state["train_config"])
        if getattr(args, "epochs", None) is not None:
            train_cfg = train_cfg.replace(epochs=args.epochs)
        resumed = _inputs_of(tokens.tokenizer_config, tuple(model_cfg.context))
        if resumed != tokens.tokenizer_config:  # the run was started with model-input flags: so is the rest of it
            tokens = dataclasses.replace(tokens, tokenizer_config=resumed)
            tokenizer = Tokenizer(resumed)
    if train_cfg.algorithm == "rtrl" and args.resume:
        raise UsageError("--resume: not supported with --algorithm rtrl (RTRL runs keep no checkpoints)")
    result = fit_model(tokens.pieces, tokens.keys, model_cfg, train_cfg, out, tokenizer=tokenizer, resume=args.resume,
                       tensorboard=args.tensorboard, verbose=args.verbose, online=args.online,
                       update_every=args.update_every, init_weights=base.weights if base is not None else None,
                       devices=getattr(args, "devices", 1))
    if base is not None:
        result.metrics["init_from"] = finetune.init_facts(base)
        print(f"fine-tuned from {base.path}: validation NLL {result.metrics.get('init_val_nll', float('nan')):.4f} "
              f"nats/event before the first step")
    if default_style is not None:
        result.metrics[styles.DEFAULT] = default_style
    save_bundle(out, model=result.model, model_config=model_cfg, train_config=train_cfg,
                tokenizer_config=tokens.tokenizer_config, metrics=result.metrics, history_csv=result.history_csv,
                start_state=result.start_state)
    print(format_report(result.metrics))
    print(f"bundle written to {out}")
    return 0 if result.metrics.get("val_nll") is None or math.isfinite(result.metrics["val_nll"]) else 1
