"""Command line: ``musicgen VERB …``. Parse → config → call; no logic lives here. Each verb's options are declared
in ``musicgen.cli_parsers``; this module builds the parser from them and dispatches.

Heavy modules are imported inside each handler, so ``musicgen --help`` and ``musicgen sample`` never import
TensorFlow. Errors: ``UsageError`` exits 2, other ``MusicgenError`` exit 1, each as one line on stderr;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from typing import Callable, NamedTuple

from musicgen import __version__
from musicgen.cli_config import configs_from_args, default_out  # noqa: F401 (re-exported: their old home)
from musicgen.cli_parsers import (Formatter, add_corpus, add_evaluate, add_ingest, add_live, add_render, add_sample,
                                  add_serve, add_train)
from musicgen.errors import MusicgenError


def _import_keras_quietly(args) -> None:
    """Import Keras with stderr silenced: TensorFlow's C++ start-up notices ignore TF_CPP_MIN_LOG_LEVEL."""
    if args.debug or "keras" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# ------------------------------------------------------------------------------------------------------------- main
class _Parser(argparse.ArgumentParser):
    """Parse errors are one line (``musicgen VERB: error: …``), exit code 2; the subparsers inherit the class."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _sample_config(args):
    from musicgen.cli_sample import sample_config

    return sample_config(args)


class Verb(NamedTuple):
    """One ``musicgen VERB``: ``add`` declares its parser; ``run`` ("module:function", imported only when the verb
    runs) gets the parsed args, and the config ``config(args)`` builds when ``config`` is given."""

    name: str
    add: Callable
    run: str
    config: Callable | None = None
    keras: bool = False  # import Keras with its start-up chatter silenced first


VERBS = (
    Verb("ingest", add_ingest, "musicgen.corpus_cli:cli_ingest"),
    Verb("corpus", add_corpus, "musicgen.corpus_cli:cli_corpus"),  # `corpus duplicates` names its own run
    Verb("train", add_train, "musicgen.train_cli:cli_train", keras=True),
    Verb("sample", add_sample, "musicgen.generate:cli_sample", config=_sample_config),
    Verb("evaluate", add_evaluate, "musicgen.evaluate:cli_evaluate"),
    Verb("render", add_render, "musicgen.render:cli_render"),
    Verb("serve", add_serve, "musicgen.serve:cli_serve"),
    Verb("live", add_live, "musicgen.live_ports:cli_live"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="musicgen", formatter_class=Formatter,
        description="Learn music from a corpus with Keras RNNs and write new music.",
        epilog="Quick start: musicgen sample --length 512 -o sample.mid   (see `musicgen VERB --help`)")
    parser.add_argument("--version", action="version", version=f"musicgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        verb.add(sub)
        sub.choices[verb.name].set_defaults(run=verb.run)
    return parser


def run(args) -> int:
    """Call the verb's ``run`` function (with its config, if the verb builds one)."""
    verb = next(v for v in VERBS if v.name == args.verb)
    if verb.keras:
        _import_keras_quietly(args)
    module, function = args.run.split(":")
    handler = getattr(__import__(module, fromlist=[function]), function)  # an import statement's path (-X importtime)
    return int((handler(args, verb.config(args)) if verb.config else handler(args)) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:  # TensorFlow's start-up chatter (CUDA probing, oneDNN notes) is noise to a user
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        return run(args)
    except MusicgenError as exc:
        if args.debug:
            raise
        print(f"musicgen {args.verb}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"musicgen {args.verb}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # a read-only place, a file where a folder is needed, a full disk: runtime, exit 1
        if args.debug:
            raise
        where = exc.filename2 if exc.filename2 is not None else exc.filename  # a rename's target, not its temp
        print(f"musicgen {args.verb}: error: {exc.strerror or type(exc).__name__}: "
              f"{repr(str(where)) if where is not None else exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure still gets one line; --debug shows where
        if args.debug:
            raise
        print(f"musicgen {args.verb}: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
              file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
