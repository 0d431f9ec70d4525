"""``musicgen.train(corpus_dir, out=..., **options)``: ``musicgen train`` from Python, returning the bundle.

The options are the command's own, parsed by the same parser (``cli_parsers.add_train``) and run by the same handler
(``train_cli.cli_train``), so the two never drift apart.
"""

from __future__ import annotations

from pathlib import Path

from musicgen.errors import UsageError

_NOT_OPTIONS = {"func", "verb", "debug", "corpus_dir", "out"}


def train(corpus_dir: str | Path, out: str | Path | None = None, **options):
    """Train a next-event model on a corpus folder, or fine-tune one (``init_from``), and return the loaded bundle.

    Args:
        corpus_dir: folder of music files (searched recursively; ingested and cached) or a token cache written by
            ``musicgen.ingest``.
        out: bundle folder (default ``trained/<corpus folder name>-<cell>``); checkpoints go to ``out/checkpoints``.
        **options: the options of ``musicgen train`` under their Python names (see ``musicgen train --help`` for
            the defaults):

            * model: ``cell`` ("lstm" | "gru" | "simple_rnn"), ``preset`` ("tiny" | "small" | "medium" | "large"),
              ``units``, ``layers``, ``embedding_dim``, ``dropout``;
            * fine-tuning: ``init_from`` (a bundle folder: its weights, tokenizer and model config; learning rate
              5e-4 and patience 3 unless given; see ``musicgen.finetune``);
            * training: ``epochs``, ``batch_size``, ``bptt`` (events per window), ``stateful``, ``learning_rate``
              (``--lr``), ``clipnorm`` (0 disables), ``patience`` (epochs without validation improvement before
              stopping), ``transpose`` (semitones of augmentation), ``seed``, ``resume``, ``algorithm`` ("bptt" |
              "rtrl"), ``online`` and ``update_every`` (RTRL only);
            * split: ``val_fraction``, ``test_fraction`` (shares of near-duplicate clusters);
            * tokenizer, for a music folder: ``time_mode`` ("beat" | "seconds"), ``voices`` (N or "auto"),
              ``meter`` (bool), ``key_mode`` ("token" | "normalize"), ``styles`` (bool; ``default_style``, a style
              name sampling takes when none is asked for);
            * output: ``tensorboard`` (bool), ``verbose`` (0 silent, the default here; 1 progress bar; 2 a line
              per epoch).

    Returns:
        The ``bundle.Bundle`` written to ``out``; ``bundle.metrics`` holds the final report (and ``init_from``
        when fine-tuned).

    Raises:
        UsageError: an unknown option or a bad value, one line naming it (as the command's exit 2).

    Example:
        >>> import musicgen
        >>> tuned = musicgen.train("my_midi/", out="trained/mine", init_from="trained/default", epochs=8)
        >>> midi = musicgen.sample(tuned.path, length=256, seed=1)[0]
    """
    from musicgen.bundle import load_bundle
    from musicgen.cli import build_parser
    from musicgen.train_cli import cli_train

    args = build_parser().parse_args(["train", str(corpus_dir)])
    known = (set(vars(args)) | {"epochs"}) - _NOT_OPTIONS
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"options: unknown {unknown}; known: {sorted(known)}")
    args.verbose = 0
    for name, value in options.items():
        setattr(args, name, str(value) if name in ("init_from", "voices") and value is not None else value)
    args.out = None if out is None else str(out)
    cli_train(args)
    return load_bundle(args.out)
