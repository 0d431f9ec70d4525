"""The ``musicgen ingest`` and ``musicgen corpus list / export / duplicates`` verbs: argparse results in, one summary
out. They sit above ``corpus`` (ingest, export), ``voices`` and ``dedup`` so those never import each other upward."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from musicgen import corpus, dedup, voices
from musicgen.config import TokenizerConfig
from musicgen.corpus import tokens_for
from musicgen.errors import UsageError


def with_meter_and_key(config: TokenizerConfig | None, args, source=None) -> TokenizerConfig | None:
    """``config`` with ``--meter`` / ``--key-mode`` / ``--styles`` applied (``args.meter`` bool or None,
    ``args.key_mode`` "token", "normalize" or None, ``args.styles`` bool or None; none given: ``config`` unchanged).
    ``--styles`` takes the style names from the music folder ``source`` (``find_styles``). For a token cache
    ``source`` the flags must agree with the cache's own config (``UsageError`` naming the flag otherwise), and
    ``config`` comes back unchanged."""
    meter, key, styles = getattr(args, "meter", None), getattr(args, "key_mode", None), getattr(args, "styles", None)
    if not meter and key is None and not styles:
        return config
    if source is not None and corpus.is_token_cache(source):
        have = TokenizerConfig.load(Path(source) / "tokenizer.json")
        for flag, field, differs in (("--meter", "meter", meter and not have.meter),
                                     ("--key-mode", "key", key is not None and key != have.key),
                                     ("--styles", "styles", styles and not have.styles)):
            if differs:
                raise UsageError(f"{flag}: token cache {str(source)!r} was made with {field}="
                                 f"{getattr(have, field)!r}; ingest the music folder with the wanted setting instead")
        return config
    config = (config or TokenizerConfig()).replace(meter=bool(meter), key=key or "")
    if styles:

        config = config.replace(styles=find_styles(source))
    return config


def cli_ingest(args) -> int:
    """``musicgen ingest CORPUS_DIR [--out DIR] [--time-mode beat|seconds] [--workers N] [--engine local|beam]
    [--beam-option KEY=VALUE ...] [--voices N|auto] [--meter] [--key-mode token|normalize] [--styles]``."""
    config = TokenizerConfig.seconds() if args.time_mode == "seconds" else TokenizerConfig()
    config = with_meter_and_key(config, args, args.corpus_dir)
    engine = {"engine": getattr(args, "engine", "local"), "beam_options": tuple(getattr(args, "beam_options", ()))}
    voice_events = getattr(args, "voice_events", None)
    if voices.parse_voices(getattr(args, "voices", 0)):
        report, config, polyphony = voices.ingest_voices(args.corpus_dir, args.out, config, args.voices, args.workers,
                                                         voice_events=voice_events, **engine)
        print(f"{report.summary()}; {voices.describe(config, polyphony)}")
    elif voice_events == "implied":
        raise UsageError("--voice-events: implied needs --voices N (N >= 1) or auto")
    else:
        report = corpus.ingest(args.corpus_dir, args.out, config, workers=args.workers, progress=True, **engine)
        print(report.summary())
    print(f"cache: {report.out_dir} ({report.tokenized} files tokenized, {report.reused} from cache, "
          f"{report.ignored} other files ignored)")
    return 0


def cli_corpus(args) -> int:
    """``musicgen corpus list`` / ``musicgen corpus export NAME DIR [--limit N] [--every N] [--workers N]``."""
    if args.corpus_cmd == "list":
        for name, description, n_files in corpus.list_corpora():
            print(f"{name:<12} {n_files:>5} files  {description}")
        return 0
    report = corpus.export_corpus(args.name, args.out_dir, limit=args.limit, workers=args.workers, progress=True,
                                  every=args.every)
    print(report.summary())
    return 0


def cli_duplicates(args) -> int:
    """``musicgen corpus duplicates DIR [--threshold T]``: one line per near-duplicate group, then a summary."""
    if not (isinstance(args.threshold, float) and 0 < args.threshold <= 1):
        raise UsageError(f"--threshold: expected a number in (0, 1], got {args.threshold!r}")
    tokens = tokens_for(args.dir, None, progress=False)
    started = time.perf_counter()
    dups = dedup.find_duplicates(tokens.pieces, tokens.keys, tokens.tokenizer_config, args.threshold)
    groups = dedup.describe_groups(dups, tokens.paths)
    seconds = time.perf_counter() - started
    for group in groups:
        print(dedup.format_group(group))
    sizes = np.bincount(np.bincount(dups.clusters))
    by_size = ", ".join(f"{n} of {s}" for s, n in enumerate(sizes.tolist()) if n and s)
    print(f"{len(tokens)} pieces in {int(sizes[1:].sum())} clusters ({by_size}); {len(groups)} near-duplicate "
          f"groups hold {sum(len(g['members']) for g in groups)} pieces (threshold {args.threshold:g}, "
          f"{dedup.DEFAULT_NGRAM}-note shingles, {seconds:.2f} s)")
    return 0


def find_styles(corpus_dir) -> tuple[str, ...]:
    """The styles of a corpus folder: its top-level subfolders holding music files (at any depth), sorted.

    Raises ``UsageError`` when a music file lies directly in ``corpus_dir`` (naming it) or no subfolder holds one.
    """
    from musicgen.corpus_files import _check_corpus_dir, _scan
    from musicgen.styles import check_paths

    root = _check_corpus_dir(corpus_dir)
    music, _ = _scan(root)
    names = tuple(sorted(set(check_paths(music, None, root))))
    if not names:
        raise UsageError(f"--styles: no subfolder of {str(corpus_dir)!r} holds music files; put each style's files "
                         f"in a subfolder named after it (e.g. corpus/bach, corpus/folk)")
    return names
