"""Each ``musicgen VERB``'s argparse declaration (``add_VERB(subparsers)``) and the help ``Formatter`` they share.

Argparse only at import: ``musicgen.cli`` builds the parser from these and dispatches; nothing here runs a verb.
"""

from __future__ import annotations

import argparse

from musicgen.config import ALGORITHMS, CELLS, MODEL_PRESETS, TIME_MODES


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each default once: not where the help already says it, nor for options whose default is None."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default is None or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


# --------------------------------------------------------------------------------------------------- ingest / corpus
def add_ingest(sub) -> None:
    p = sub.add_parser("ingest", formatter_class=Formatter,
                       help="tokenize a folder of MIDI/MusicXML/ABC/kern files into a cached token set",
                       description="Walk CORPUS_DIR recursively, tokenize every music file in parallel, and write "
                                   "a token cache (memory-mapped shards) and a manifest (JSON) of kept and skipped "
                                   "files.")
    p.add_argument("corpus_dir", help="folder of music files (searched recursively)")
    p.add_argument("--out", default=None, help="cache folder (default: data/tokens/<corpus folder name>)")
    p.add_argument("--time-mode", choices=TIME_MODES, default="beat",
                   help="beat: grid steps per quarter note; seconds: 10 ms steps (Performance RNN)")
    p.add_argument("--workers", type=int, default=0,
                   help="worker processes (0 = automatic: one per 200 files to tokenize, at most one per idle core); "
                        "with --engine beam the DirectRunner's threads")
    p.add_argument("--engine", choices=["local", "beam"], default="local",
                   help="local: a process pool on this machine; beam: Apache Beam pipelines (pip install -e "
                        "'.[cluster]'), the same worker code and an identical token store (README, Ingest on a "
                        "cluster)")
    p.add_argument("--beam-option", action="append", default=[], metavar="KEY=VALUE", dest="beam_options",
                   help="a Beam pipeline option, passed through as --KEY=VALUE (repeat it), e.g. runner=FlinkRunner; "
                        "default: the DirectRunner, multi-threaded")
    p.add_argument("--voices", default="0", metavar="N|auto",
                   help="VOICE events that keep each track/part apart: N voices (parts from N on share the last), "
                        "auto = as many as the piece with the most parts, 0 = off (parts of one program merge); "
                        "also records how many notes one voice sounds at once (1: monophonic parts; README, Events)")
    _add_voice_events(p, "")
    _add_meter_key(p, "")


def _add_voice_events(p, when: str) -> None:
    p.add_argument("--voice-events", choices=["all", "implied"], default=None,
                   help=f"{when}with --voices: all = a VOICE event at every change of voice; implied = a NOTE_OFF "
                        "names its voice by its pitch, VOICE only where needed (about a quarter fewer events on the "
                        "chorales; README, Events). Default: all" + (", or the cache's own" if when else ""))


def _add_meter_key(p, when: str) -> None:
    p.add_argument("--meter", action="store_true", default=None,
                   help=f"{when}TIME_SIG events where bars of each meter start, pickups as short bars (beat mode; "
                        "default: off" + (", or the cache's own)" if when else ")"))
    p.add_argument("--key-mode", choices=["token", "normalize"], default=None,
                   help=f"{when}a KEY event after BOS (the file's key signature, else an analysis): token = notes as "
                        "written, normalize = notes moved so the tonic is C (default: off"
                        + (", or the cache's own)" if when else ")"))
    p.add_argument("--styles", action="store_true", default=None,
                   help=f"{when}each top-level subfolder of CORPUS_DIR is a style (e.g. corpus/bach, corpus/folk): a "
                        "STYLE event after BOS and a style input the model conditions on, for `musicgen sample "
                        "--style NAME`; music files directly in CORPUS_DIR are an error (default: off"
                        + (", or the cache's own)" if when else ")"))


def add_corpus(sub) -> None:
    p = sub.add_parser("corpus", formatter_class=Formatter, help="list or export music21's bundled corpora",
                       description="Real music with no download: write music21's bundled corpora as MIDI files.")
    csub = p.add_subparsers(dest="corpus_cmd", metavar="{list,export,duplicates}")
    csub.required = True
    csub.add_parser("list", help="list the corpora that can be exported")
    ep = csub.add_parser("export", formatter_class=Formatter, help="write a bundled corpus as MIDI files")
    ep.add_argument("name", help="corpus name, from `musicgen corpus list`")
    ep.add_argument("out_dir", help="folder to write the MIDI files into")
    ep.add_argument("--limit", type=int, default=0, help="export at most this many pieces (0 = all)")
    ep.add_argument("--every", type=int, default=1, metavar="N",
                    help="export every Nth piece in name order, the first included (1 = all; before --limit)")
    ep.add_argument("--workers", type=int, default=0, help="parallel processes (0 = one per core)")
    dp = csub.add_parser("duplicates", formatter_class=Formatter,
                         help="list near-duplicate pieces (transposed, re-tempoed or edited copies, excerpts)",
                         description="Fingerprint every piece of DIR (transposition-, tempo- and velocity-invariant "
                                     "shingles of 8 notes) and print each group of near-duplicates on one line: "
                                     "members, transposition (semitones) and similarity to the first member. "
                                     "Training keeps each group on one side of the train/valid/test split.")
    dp.add_argument("dir", help="folder of music files, or a token cache written by `musicgen ingest`")
    dp.set_defaults(run="musicgen.corpus_cli:cli_duplicates")
    dp.add_argument("--threshold", type=float, default=0.5,
                    help="least shingle containment |A∩B|/min(|A|,|B|) that joins two pieces; lower merges more")


# ------------------------------------------------------------------------------------------------------------ train
def add_train(sub) -> None:
    from musicgen.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", formatter_class=Formatter, help="train a next-event RNN on a corpus folder",
                       description="Ingest CORPUS_DIR (cached) and train a Keras LSTM/GRU/SimpleRNN next-event model "
                                   "with truncated backpropagation through time; writes a bundle folder.")
    p.add_argument("corpus_dir", help="folder of music files, or a token cache written by `musicgen ingest`")
    p.add_argument("--out", default=None, help="bundle folder (default: trained/<corpus name>-<cell>); checkpoints "
                                               "and TensorBoard logs go to OUT/checkpoints and OUT/logs")
    p.add_argument("--cell", choices=CELLS, default=None,
                   help="recurrent cell (default: gru, which scored best on the Bach chorales, see docs/compare; "
                        "with --init-from: the bundle's)")
    p.add_argument("--init-from", dest="init_from", default=None, metavar="BUNDLE",
                   help="fine-tune: start from this bundle's weights, with its tokenizer and model config, a lower "
                        "learning rate and early stopping on valid (README, Fine-tuning)")
    p.add_argument("--preset", choices=list(MODEL_PRESETS), default=None,
                   help="model size; tiny 1x32, small 2x128, medium 2x256, large 3x512 units (default: medium; "
                        "tiny with --algorithm rtrl, which takes one layer and no dropout from any preset)")
    p.add_argument("--units", type=int, default=None, help="hidden units per layer (overrides the preset)")
    p.add_argument("--layers", type=int, default=None, help="stacked recurrent layers (overrides the preset)")
    p.add_argument("--embedding-dim", dest="embedding_dim", type=int, default=None,
                   help="token embedding size (overrides the preset)")
    p.add_argument("--dropout", type=float, default=None,
                   help="dropout between layers (overrides the preset); more regularizes, less fits faster")
    p.add_argument("--epochs", type=int, default=argparse.SUPPRESS,
                   help=f"maximum passes over the training events (default: {d.epochs}; with --resume: the "
                        f"checkpoint's)")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=d.batch_size, help="parallel streams per batch")
    p.add_argument("--bptt", type=int, default=d.bptt,
                   help="events per truncated-BPTT window; longer sees further back, costs more memory per step")
    p.add_argument("--stateful", action=argparse.BooleanOptionalAction, default=d.stateful,
                   help="carry the recurrent state across consecutive windows of a stream")
    p.add_argument("--lr", dest="learning_rate", type=float, default=None,
                   help=f"Adam's initial learning rate, halved after patience/2 epochs without validation improvement "
                        f"(default: {d.learning_rate:g}; 5e-4 with --init-from)")
    p.add_argument("--clipnorm", type=float, default=d.clipnorm or 0.0,
                   help="clip gradients to this global norm (0 disables)")
    p.add_argument("--val-fraction", dest="val_fraction", type=float, default=d.val_fraction,
                   help="share of near-duplicate clusters held out for validation (early stopping, LR halving, "
                        "best epoch)")
    p.add_argument("--test-fraction", dest="test_fraction", type=float, default=d.test_fraction,
                   help="share of near-duplicate clusters held out as the untouched test set (never seen by "
                        "training; scored by `musicgen evaluate`)")
    p.add_argument("--transpose", type=int, default=d.transpose,
                   help="augment by a random transposition in [-N, N] semitones per piece and epoch (0 disables); with "
                        "--key-mode normalize the notes stay on C and only the KEY moves, so it varies the key "
                        "input, not the notes")
    p.add_argument("--patience", type=int, default=None,
                   help=f"stop after this many epochs without improvement (default: {d.patience}; 3 with --init-from)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed for the split, batch order, augmentation and weights")
    p.add_argument("--default-style", default=None, metavar="NAME",
                   help="with --styles: the style `musicgen sample`, `live` and `serve` take when none is asked for, "
                        "recorded in the bundle's metrics (default: none, each sample's style is drawn from the "
                        "training pieces' style shares); give it again with --resume")
    p.add_argument("--split-seed", type=int, default=None, metavar="N",
                   help="draw the split with this seed instead of --seed: vary --seed with it fixed to train replicates "
                        "on the same train/valid/test pieces (default: --seed)")
    p.add_argument("--time-mode", choices=TIME_MODES, default=None,
                   help="tokenizer time grid when CORPUS_DIR holds music files (default: beat, or the cache's own)")
    p.add_argument("--voices", default=None, metavar="N|auto",
                   help="when CORPUS_DIR holds music files: VOICE events, as `musicgen ingest --voices` (default: "
                        "off, or the cache's own)")
    _add_voice_events(p, "when CORPUS_DIR holds music files: ")
    _add_meter_key(p, "when CORPUS_DIR holds music files: ")
    p.add_argument("--last-pitch", action="store_true", default=None,
                   help="an input beside each event: the pitch of the latest note of the voice in force (the note a "
                        "melody line continues from); the tokens do not change, so a cache serves both. Not with "
                        "--voice-events implied (default: off)")
    p.add_argument("--neighbor-pitches", action="store_true", default=None,
                   help="two more inputs beside each event: the pitch of the latest note of the voice just above and "
                        "just below the voice in force; like --last-pitch a model input only (default: off)")
    p.add_argument("--held-notes", action="store_true", default=None,
                   help="four more inputs beside each event: for voices 0-3, whether the voice sounds or rests and "
                        "for how long (up to eight quarter notes); like --last-pitch a model input only (default: off)")
    p.add_argument("--devices", default="1", metavar="N|auto",
                   help="data-parallel training on N devices of this host (auto: all the Keras backend sees; "
                        "TensorFlow MirroredStrategy, JAX DataParallel); --batch-size must be divisible by N. "
                        "Same result as one device up to float rounding (docs/scale.md)")
    p.add_argument("--resume", action="store_true",
                   help="continue a killed run from OUT/checkpoints with its saved settings")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="write TensorBoard logs to OUT/logs")
    p.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1,
                   help="0 silent, 1 progress bar, 2 one line per epoch")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="bptt",
                   help="bptt: truncated backpropagation through time (Keras); rtrl: exact real-time recurrent "
                        "learning (numpy, one small recurrent layer, O(n^4) per event)")
    p.add_argument("--online", action="store_true",
                   help="rtrl only: one pass through the training pieces in order, updating as it goes and "
                        "reporting the running NLL")
    p.add_argument("--update-every", dest="update_every", type=int, default=16,
                   help="rtrl only: apply the accumulated gradient every K events")


# ----------------------------------------------------------------------------------------------------------- sample
def add_sample(sub) -> None:
    p = sub.add_parser("sample", formatter_class=Formatter, help="sample new music from a trained bundle",
                       description="Generate events from a trained bundle and write MIDI (and WAV/PNG on request). "
                                   "Runs on numpy alone: TensorFlow is not imported. Each MIDI file gets a JSON "
                                   "sidecar with the model, seed and settings that regenerate it.")
    from musicgen.cli_sample import add_sample_options  # light: argparse only

    add_sample_options(p)


# --------------------------------------------------------------------------------------------------------- evaluate
def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", formatter_class=Formatter, help="score a bundle on held-out pieces",
                       description="NLL, perplexity and accuracy on the bundle's test (or valid) split, against "
                                   "n-gram baselines fit on the same (transposed) training data, and two labelled "
                                   "sample sets (raw model, default sampling rules): musical statistics, "
                                   "memorization, two-sample test. Runs on numpy; writes files only on request.")
    p.add_argument("model", help="bundle folder")
    p.add_argument("corpus_dir", help="the corpus the model was trained on (music folder or token cache); its "
                                      "split is recovered from the bundle's settings")
    p.add_argument("--split", choices=["valid", "test"], default="test", help="the part of the split evaluated")
    p.add_argument("--split-of", dest="split_of", default=None, metavar="BUNDLE",
                   help="use this bundle's split of CORPUS_DIR instead of MODEL's own (same tokenizer needed): "
                        "scores a base model on the test pieces of a model fine-tuned from it")
    p.add_argument("--num-samples", type=int, default=64, help="samples per sample set (0 skips the samples)")
    p.add_argument("--length", type=int, default=512, help="events per generated sample")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--max-order", type=int, default=8,
                   help="highest Kneser-Ney order tried (the order and discount are chosen on the valid split)")
    p.add_argument("--copy-n", type=int, default=32,
                   help="a sample copies when it shares at least this many consecutive events with a training piece")
    p.add_argument("--excerpt-length", type=int, default=256, help="events per excerpt in the two-sample test")
    p.add_argument("--voices", type=int, default=None, metavar="N",
                   help="voice cap of the rules samples, as `musicgen sample --voices` (0 = none; default: drawn per "
                        "sample from the training pieces' voice counts)")
    p.add_argument("--style", default=None, metavar="NAME",
                   help="a bundle trained with --styles: score only the valid/test pieces of style NAME and sample "
                        "every sample in it (the training pieces of every style stay the copy and baseline reference)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the report as JSON to PATH")
    p.add_argument("--save", action="store_true",
                   help="write MODEL/evaluation.json and record its checksum in MODEL/bundle.json")
    p.add_argument("--plot", default=None, metavar="DIR", help="also write histogram PNGs into this folder")


# ----------------------------------------------------------------------------------------------------------- render
def add_render(sub) -> None:
    p = sub.add_parser("render", formatter_class=Formatter, help="render a MIDI file to WAV audio and/or a piano roll",
                       description="Render MIDI to WAV (FluidSynth + a General MIDI SoundFont, or a plain synth "
                                   "fallback) and/or a piano-roll PNG. With neither --wav nor --png, writes both "
                                   "beside the MIDI file. Put FILE first: `musicgen render song.mid --wav`.")
    p.add_argument("midi", help="MIDI file to render")
    from musicgen.render import add_render_options  # light: numpy only at import time

    add_render_options(p)


# ------------------------------------------------------------------------------------------------------------- live
def add_live(sub) -> None:
    p = sub.add_parser("live", formatter_class=Formatter, help="call and response over MIDI: the model answers you",
                       description="Listen on a MIDI input; when the player pauses (or presses the pedal or the "
                                   "trigger key), continue their phrase with the model and play the answer to a MIDI "
                                   "output in time, then listen again. Numpy only (no TensorFlow). Needs the [live] "
                                   "extra (mido + python-rtmidi). See docs/live.md.")
    p.add_argument("--model", default="trained/default", help="bundle folder")
    p.add_argument("--list-ports", action="store_true", help="print the MIDI input and output ports and exit")
    p.add_argument("--in", dest="in_port", default=None, metavar="PORT",
                   help="input port name (default: a virtual port 'musicgen in' to connect a keyboard or DAW to)")
    p.add_argument("--out", dest="out_port", default=None, metavar="PORT",
                   help="output port name (default: a virtual port 'musicgen out' to connect a synth or DAW to)")
    p.add_argument("--bpm", type=float, default=120.0,
                   help="tempo in quarter notes per minute: how played seconds become the model's beats and back")
    p.add_argument("--wait", type=float, default=2.0, metavar="BEATS",
                   help="beats of silence that end a phrase; shorter answers sooner, 0 = only pedal/key")
    p.add_argument("--pedal", action="store_true", help="a sustain-pedal press ends the phrase (no sustain then)")
    p.add_argument("--trigger-key", type=int, default=None, metavar="PITCH",
                   help="MIDI pitch of a key that ends the phrase (not played into it), e.g. 21 for the lowest A")
    p.add_argument("--length", type=int, default=64, help="events per answer (an upper bound with --seconds)")
    p.add_argument("--seconds", type=float, default=None, help="stop each answer after this much music")
    from musicgen.cli_sample import add_knob_options  # light: argparse only

    add_knob_options(p)
    p.add_argument("--seed", type=int, default=None,
                   help="random seed: the same phrases give the same answers (default: random, printed)")
    p.add_argument("--carry", action=argparse.BooleanOptionalAction, default=True,
                   help="answer from the state the previous phrase and answer left (--no-carry: start afresh)")
    p.add_argument("--channel", type=int, default=1, help="MIDI channel 1-16 of the answer (drums on 10)")
    p.add_argument("--max-note-length", type=float, default=8.0, metavar="BEATS",
                   help="force a sampled note's end after this many beats (0 = no limit)")
    p.add_argument("--meter", default="4/4", metavar="NUM/DEN", help="bundles trained with --meter: your phrase's "
                   "first note is a downbeat of this meter at --bpm; the answer goes on in it")
    p.add_argument("--key", default=None, metavar="NAME", help='bundles trained with --key-mode: your key, e.g. '
                   '"D minor", "F#" (default: analysed from your first phrase); normalize answers move back to it')
    p.add_argument("--style", default=None, metavar="NAME", help="bundles trained with --styles: the style of every "
                   "answer (default: the bundle's default style, else the one with the most training pieces)")
    p.add_argument("--voice-channels", default="", metavar="C,C,…", help="bundles trained with --voices: channel "
                   "1-16 per answer voice, e.g. 1,2,3,4 (default: all on --channel); your phrase is the first voice")


# ------------------------------------------------------------------------------------------------------------ serve
def add_serve(sub) -> None:
    p = sub.add_parser("serve", formatter_class=Formatter, help="a local web page to generate, hear and see music",
                       description="Serve the browser studio: pick a bundle, set the controls, upload a primer, "
                                   "generate, hear it, see the piano roll, download MIDI and JSON. Numpy only (no "
                                   "TensorFlow); all assets come from the package (no network).")
    p.add_argument("--model", action="append", default=None, metavar="PATH",
                   help="bundle folder to offer (repeatable; default: every bundle in --models-dir)")
    p.add_argument("--models-dir", default="trained", metavar="DIR", help="folder of bundle folders")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--workers", type=int, default=1, help="generations run at once (more helps only with free cores)")
    p.add_argument("--queue", type=int, default=8, help="generations that may wait; beyond, the API answers 503")
    p.add_argument("--quiet", action="store_true", help="do not log each request")
