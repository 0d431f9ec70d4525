"""Command line: ``musicgen VERB …``. Parse → config → call; no logic lives here.

Heavy modules are imported inside each handler, so ``musicgen --help`` and ``musicgen sample`` never import
TensorFlow. Errors: ``UsageError`` exits 2, other ``MusicgenError`` exit 1, each as one line on stderr;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

from musicgen import __version__
from musicgen.errors import MusicgenError

Formatter = argparse.ArgumentDefaultsHelpFormatter


# --------------------------------------------------------------------------------------------------- ingest / corpus
def _add_ingest(sub) -> None:
    p = sub.add_parser("ingest", formatter_class=Formatter,
                       help="tokenize a folder of MIDI/MusicXML/ABC/kern files into a cached token set",
                       description="Walk CORPUS_DIR recursively, tokenize every music file in parallel, and write "
                                   "a token cache (.npz) and a manifest (JSON) of kept and skipped files.")
    p.add_argument("corpus_dir", help="folder of music files (searched recursively)")
    p.add_argument("--out", default=None, help="cache folder (default: data/tokens/<corpus folder name>)")
    p.add_argument("--time-mode", choices=["beat", "seconds"], default="beat",
                   help="beat: grid steps per quarter note; seconds: 10 ms steps (Performance RNN)")
    p.add_argument("--workers", type=int, default=0, help="parallel processes (0 = one per core)")
    p.set_defaults(func=_cmd_ingest)


def _cmd_ingest(args) -> int:
    from musicgen.corpus import cli_ingest

    return cli_ingest(args)


def _add_corpus(sub) -> None:
    p = sub.add_parser("corpus", formatter_class=Formatter, help="list or export music21's bundled corpora",
                       description="Real music with no download: write music21's bundled corpora as MIDI files.")
    csub = p.add_subparsers(dest="corpus_cmd", metavar="{list,export}")
    csub.required = True
    lp = csub.add_parser("list", help="list the corpora that can be exported")
    lp.set_defaults(func=_cmd_corpus)
    ep = csub.add_parser("export", formatter_class=Formatter, help="write a bundled corpus as MIDI files")
    ep.add_argument("name", help="corpus name, from `musicgen corpus list`")
    ep.add_argument("out_dir", help="folder to write the MIDI files into")
    ep.add_argument("--limit", type=int, default=0, help="export at most this many pieces (0 = all)")
    ep.add_argument("--workers", type=int, default=0, help="parallel processes (0 = one per core)")
    ep.set_defaults(func=_cmd_corpus)


def _cmd_corpus(args) -> int:
    from musicgen.corpus import cli_corpus

    return cli_corpus(args)


# ------------------------------------------------------------------------------------------------------------ train
def _add_train(sub) -> None:
    p = sub.add_parser("train", formatter_class=Formatter, help="train a next-event RNN on a corpus folder",
                       description="Ingest CORPUS_DIR (cached) and train a Keras LSTM/GRU/SimpleRNN next-event model "
                                   "with truncated backpropagation through time; writes a bundle folder.")
    p.add_argument("corpus_dir", help="folder of music files, or a token cache written by `musicgen ingest`")
    p.add_argument("--out", default=None, help="bundle folder (default: trained/<corpus name>-<cell>)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args) -> int:
    from musicgen.train import cli_train

    return cli_train(args)


# ----------------------------------------------------------------------------------------------------------- sample
def _add_sample(sub) -> None:
    p = sub.add_parser("sample", formatter_class=Formatter, help="sample new music from a trained bundle",
                       description="Generate events from a trained bundle and write MIDI (and WAV/PNG on request). "
                                   "Runs on numpy alone: TensorFlow is not imported.")
    p.add_argument("--model", default="trained/default", help="bundle folder")
    p.add_argument("--length", type=int, default=512, help="events to generate per sample")
    p.add_argument("-o", "--output", default="sample.mid", help="output file, or folder for several samples")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args) -> int:
    from musicgen.generate import cli_sample

    return cli_sample(args)


# --------------------------------------------------------------------------------------------------------- evaluate
def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", formatter_class=Formatter, help="score a bundle on held-out pieces",
                       description="NLL, perplexity and accuracy on held-out pieces, n-gram baselines, musical "
                                   "statistics of generated samples, and memorization.")
    p.add_argument("model", help="bundle folder")
    p.add_argument("corpus_dir", help="folder of music files (or token cache) to evaluate on")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from musicgen.evaluate import cli_evaluate

    return cli_evaluate(args)


# ----------------------------------------------------------------------------------------------------------- render
def _add_render(sub) -> None:
    p = sub.add_parser("render", formatter_class=Formatter, help="render a MIDI file to WAV audio and/or a piano roll",
                       description="Render MIDI to WAV (FluidSynth + a General MIDI SoundFont, or a plain synth "
                                   "fallback) and/or a piano-roll PNG.")
    p.add_argument("midi", help="MIDI file to render")
    p.set_defaults(func=_cmd_render)


def _cmd_render(args) -> int:
    from musicgen.render import cli_render

    return cli_render(args)


# ------------------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicgen", formatter_class=Formatter,
        description="Learn music from a corpus with Keras RNNs and write new music.",
        epilog="Quick start: musicgen sample --length 512 -o sample.mid   (see `musicgen VERB --help`)")
    parser.add_argument("--version", action="version", version=f"musicgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for add in (_add_ingest, _add_corpus, _add_train, _add_sample, _add_evaluate, _add_render):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MusicgenError as exc:
        if args.debug:
            raise
        print(f"musicgen {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"musicgen {args.verb}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure still gets one line; --debug shows where
        if args.debug:
            raise
        print(f"musicgen {args.verb}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
