"""``musicgen sample``'s options and the ``SampleConfig`` they make (the rest of the command line is ``musicgen.cli``).

Light at import (argparse only): ``musicgen --help`` and ``musicgen sample`` never import TensorFlow.
"""

from __future__ import annotations

import argparse


def add_knob_options(parser) -> None:
    """``--temperature``, ``--top-k``, ``--top-p``: the logit filters ``musicgen sample`` and ``musicgen live``
    share."""
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="> 0; < 1 is more conservative (likely events), > 1 more adventurous")
    parser.add_argument("--top-k", type=int, default=0, help="sample only among the K most likely events (0 = all)")
    parser.add_argument("--top-p", type=float, default=1.0,
                        help="nucleus sampling: only the most likely events up to probability P, in (0, 1]; "
                             "smaller is safer")


def add_sample_options(parser) -> None:
    """Declare every ``musicgen sample`` option on ``parser``: one per ``SampleConfig`` field (``--FIELD-NAME``,
    ``--no-FIELD-NAME`` for a False boolean; ``sidecar.regenerate_command`` writes them back), plus ``--model``,
    ``--primer``, ``-o`` and render's ``--wav/--png/…`` group."""
    parser.add_argument("--model", default="trained/default", help="bundle folder")
    parser.add_argument("--length", type=int, default=None,
                        help="events to generate per sample, primer not counted (default 512; with --seconds an upper "
                             "bound, default 8 events per grid step)")
    parser.add_argument("--seconds", type=float, default=None, help="stop each sample after this much music instead")
    add_knob_options(parser)
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed: the same seed and settings give the same files (default: random, recorded "
                             "in the sidecar)")
    parser.add_argument("-n", "--num-samples", type=int, default=1, help="samples generated together as one batch")
    parser.add_argument("--primer", default=None, metavar="FILE",
                        help="MIDI or score file (MusicXML/ABC/kern) to continue")
    parser.add_argument("--keep-primer", action=argparse.BooleanOptionalAction, default=True,
                        help="start the written file with the primer (--no-keep-primer: the continuation only)")
    parser.add_argument("--max-polyphony", type=int, default=0, help="at most this many notes at once (0 = no cap)")
    parser.add_argument("--max-note-length", type=float, default=8.0, metavar="BEATS",
                        help="force a note's end after this many quarter notes at the written tempo (0 = no limit); "
                             "stops a missed NOTE_OFF from holding a note to the end")
    parser.add_argument("--pitch-range", type=int, nargs=2, default=None, metavar=("LO", "HI"),
                        help="MIDI pitches allowed for new (non-drum) notes, inclusive")
    parser.add_argument("--allow-eos", action="store_true", help="let the model end a sample before --length")
    parser.add_argument("--tempo", type=float, default=None,
                        help="quarter notes per minute written to the file (default: the primer's, else 120)")
    parser.add_argument("--program", type=int, default=None,
                        help="General MIDI program (0-127) where the model does not choose instruments; with PROGRAM "
                             "events in the vocabulary, the sample starts in it")
    parser.add_argument("--key", default=None, metavar="NAME",
                        help='key of every sample, e.g. "D minor", "Bb major", "F#" (major when no mode is given); '
                             'bundles trained with a key mode only. Default: each sample\'s key drawn from the '
                             'training pieces\' keys (metrics.json key_pieces; a bundle without them: the model draws '
                             'it). The sidecar records each sample\'s key')
    parser.add_argument("--key-strength", type=float, default=None, metavar="NATS",
                        help="bundles without KEY events: --key becomes a bias of this many nats against each NOTE_ON "
                             "outside the key's scale (default 2; 0 = none; larger keeps more notes in the scale)")
    parser.add_argument("--instruments", default=None, metavar="P,P,…",
                        help="General MIDI programs (0-127) that may start notes, e.g. 0,40,73 (default: all); "
                             "drums only with --drums")
    parser.add_argument("--drums", action=argparse.BooleanOptionalAction, default=None,
                        help="allow drum notes (default: yes, unless --instruments is given)")
    parser.add_argument("--density", default=None, metavar="LOW..HIGH",
                        help="notes per second: the running note rate is steered into this range (a bias on NOTE_ON "
                             "against TIME_SHIFT; higher numbers, busier music)")
    parser.add_argument("--style", default=None, metavar="NAME",
                        help="style of every sample, one of the bundle's (bundles trained with --styles only; an "
                             "unknown name lists them). Default: the bundle's default style (`musicgen train "
                             "--default-style`), else each sample's style is drawn from the training pieces' style "
                             "shares; the sidecar records it")
    parser.add_argument("--voices", type=int, default=None, metavar="N",
                        help="bundles with VOICE events: at most N voices (parts) per sample (0 = no cap). Default: "
                             "each sample's cap is drawn from how many voices the training pieces use, so samples "
                             "are as often four-part as the corpus is; the sidecar records it")
    parser.add_argument("--well-formed", action=argparse.BooleanOptionalAction, default=True,
                        help="NOTE_ON/NOTE_OFF consistency masks (--no-well-formed: the model's own choice of note "
                             "events)")
    parser.add_argument("-o", "--output", default="sample.mid",
                        help="output .mid file, or a folder; several samples get numbered names (NAME-01.mid …)")
    from musicgen.render import add_render_options  # light: numpy only at import time

    add_render_options(parser.add_argument_group("audio and piano roll"))


def sample_config(args):
    """``musicgen sample``'s flags → ``SampleConfig`` (bad values: ``UsageError`` naming the field or flag)."""
    from musicgen.config_sample import SampleConfig
    from musicgen.controls import parse_density, parse_instruments

    fields = ("length", "seconds", "temperature", "top_k", "top_p", "seed", "num_samples", "keep_primer",
              "max_polyphony", "allow_eos", "tempo", "program", "max_note_length", "well_formed", "key",
              "key_strength", "drums", "style", "voices")
    return SampleConfig(**{name: getattr(args, name) for name in fields},
                        pitch_range=tuple(args.pitch_range) if args.pitch_range else None,
                        instruments=None if args.instruments is None else parse_instruments(args.instruments),
                        density=None if args.density is None else parse_density(args.density))
