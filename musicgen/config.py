"""Typed, frozen configs for each stage, with presets and JSON round trips.

Each config is saved next to the weights in a bundle, so sampling rebuilds exactly what training built.
Every config validates itself on construction and raises ``ConfigError`` naming the field and the value.
``SampleConfig`` lives in ``musicgen.config_sample`` (re-exported here); the checks and the JSON mixin every config
shares, in ``musicgen.config_base``.
"""

from __future__ import annotations

from dataclasses import dataclass

from musicgen.config_base import MAX_VOICES, _check, _JsonConfig, _positive_int
from musicgen.config_sample import (DEFAULT_MAX_NOTE_LENGTH, MAX_LENGTH, MAX_NUM_SAMPLES, MAX_SECONDS,  # noqa: F401
                                    MAX_TEMPO, SampleConfig)  # re-exported: their old home
from musicgen.errors import ConfigError, UsageError  # noqa: F401 (importable from here, as before)

CELLS = ("lstm", "gru", "simple_rnn")
TIME_MODES = ("beat", "seconds")
MAX_STYLES = 256  # most TokenizerConfig.styles
KEY_MODES = ("", "token", "normalize")  # TokenizerConfig.key: off, KEY event with notes as written, notes on C
# TokenizerConfig fields that are model inputs only (not in the tokens), with their `musicgen train` flags
MODEL_INPUTS = {"last_pitch": "--last-pitch", "neighbor_pitches": "--neighbor-pitches", "held_notes": "--held-notes"}
VOICE_EVENTS = ("all", "implied")  # TokenizerConfig.voice_events: VOICE at every voice change, or only where needed
# TrainConfig.split_version of new runs: three-way split by near-duplicate cluster, drawn from the music
SPLIT_VERSION = 3
ALGORITHMS = ("bptt", "rtrl")  # TrainConfig.algorithm


@dataclass(frozen=True)
class TokenizerConfig(_JsonConfig):
    """How notes become event tokens.

    Args:
        time_mode: ``"beat"`` (grid steps per quarter note, tempo kept beside the tokens) or ``"seconds"``
            (Performance RNN style fixed steps).
        steps_per_quarter: grid resolution in beat mode; 12 covers sixteenths and eighth-note triplets.
        max_shift_steps: largest single TIME_SHIFT in grid steps; longer gaps chain several shifts.
            Beat mode default 48 (one 4/4 bar at 12 steps per quarter).
        step_seconds: grid step in seconds mode (0.01 = 10 ms).
        velocity_bins: number of VELOCITY tokens; 0 disables velocity (all notes decode at ``default_velocity``).
        programs: emit PROGRAM tokens so multi-instrument music keeps its instruments (128 means drums).
        min_pitch / max_pitch: inclusive MIDI pitch range kept; notes outside are dropped at encode time.
        default_velocity: velocity used when ``velocity_bins == 0``.
        voices: 0 (off) or N >= 1: emit VOICE(0..N-1) events so each part/track keeps its identity (part k of a
            file is voice k; parts from N on share voice N-1). Bundles and caches written before the field load as 0.
        voice_polyphony: the most notes one voice sounds at once in the corpus (0 = not known / no cap); recorded by
            ``musicgen ingest --voices``, where 1 (every part monophonic) makes the sampler keep one note per voice.
        voice_events: with voices, ``"all"`` (a VOICE event before every note event whose voice differs from the
            previous note event's) or ``"implied"`` (a NOTE_OFF names its voice by its sounding pitch: VOICE only
            before a NOTE_ON in another voice, or a NOTE_OFF whose pitch sounds in more than one voice; see
            ``musicgen.tokenizer``). Bundles and caches written before the field load as ``"all"``.
        meter: emit TIME_SIG events (beat mode only): one where a bar of that meter starts (the first full bar, after
            any pickup) and one at each change, so the metric position of every event follows from the tokens.
        key: ``""`` (off), ``"token"`` (a KEY event after BOS names the piece's key, notes as written) or
            ``"normalize"`` (the KEY event names the original key and the notes are transposed so its tonic is C;
            decoding transposes them back).
        styles: the style names (sorted, unique; ``()`` off): a STYLE event after BOS names each piece's style, the
            top-level subfolder of the corpus it came from (``musicgen ingest DIR --styles``, ``musicgen.styles``).
        last_pitch: give the model, beside each event, the pitch of the latest NOTE_ON in the voice in force (the
            previous note of the voice it is writing; ``musicgen.context``). A model input only: the tokens are the
            same either way (``for_tokens`` drops it), so one token cache serves both (``musicgen train
            --last-pitch``). Needs ``voice_events="all"``.
        neighbor_pitches: likewise, two more inputs: the latest NOTE_ON pitch of the voice just above (v - 1) and just
            below (v + 1) the voice in force v (``musicgen train --neighbor-pitches``). A model input only.
        held_notes: likewise, four more inputs: for voices 0-3, whether the voice sounds or rests and for how long
            (since its latest NOTE_ON or NOTE_OFF, in buckets up to eight quarter notes; ``context.held_edges``)
            (``musicgen train --held-notes``). A model input only.
    """

    time_mode: str = "beat"
    steps_per_quarter: int = 12
    max_shift_steps: int = 48
    step_seconds: float = 0.01
    velocity_bins: int = 32
    programs: bool = True
    min_pitch: int = 0
    max_pitch: int = 127
    default_velocity: int = 80
    voices: int = 0
    voice_polyphony: int = 0
    voice_events: str = "all"
    meter: bool = False
    key: str = ""
    styles: tuple[str, ...] = ()
    last_pitch: bool = False
    neighbor_pitches: bool = False
    held_notes: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.styles, list):  # from JSON
            object.__setattr__(self, "styles", tuple(self.styles))
        _check(isinstance(self.styles, tuple) and all(isinstance(n, str) and n.strip() == n and n and "/" not in n
                                                      for n in self.styles)
               and list(self.styles) == sorted(set(self.styles)) and len(self.styles) <= MAX_STYLES, "styles",
               f"sorted unique non-empty names without '/' or outer spaces, at most {MAX_STYLES}", self.styles)
        _check(self.time_mode in TIME_MODES, "time_mode", f"one of {TIME_MODES}", self.time_mode)
        _positive_int("steps_per_quarter", self.steps_per_quarter)
        _positive_int("max_shift_steps", self.max_shift_steps)
        _check(isinstance(self.step_seconds, (int, float)) and 0 < self.step_seconds <= 1.0,
               "step_seconds", "a number in (0, 1]", self.step_seconds)
        _check(isinstance(self.velocity_bins, int) and 0 <= self.velocity_bins <= 127,
               "velocity_bins", "an integer in [0, 127]", self.velocity_bins)
        _check(isinstance(self.min_pitch, int) and 0 <= self.min_pitch <= 127, "min_pitch", "an integer in [0, 127]",
               self.min_pitch)
        _check(isinstance(self.max_pitch, int) and self.min_pitch <= self.max_pitch <= 127, "max_pitch",
               f"an integer in [{self.min_pitch}, 127]", self.max_pitch)
        _check(isinstance(self.default_velocity, int) and 1 <= self.default_velocity <= 127, "default_velocity",
               "an integer in [1, 127]", self.default_velocity)
        _check(isinstance(self.voices, int) and not isinstance(self.voices, bool) and 0 <= self.voices <= MAX_VOICES,
               "voices", f"an integer in [0, {MAX_VOICES}] (0 = off)", self.voices)
        _check(isinstance(self.voice_polyphony, int) and not isinstance(self.voice_polyphony, bool)
               and 0 <= self.voice_polyphony <= 128 and (self.voices > 0 or self.voice_polyphony == 0),
               "voice_polyphony", "an integer in [0, 128] (0 when voices is 0)", self.voice_polyphony)
        _check(self.voice_events in VOICE_EVENTS and (self.voices > 0 or self.voice_events == "all"), "voice_events",
               f"one of {VOICE_EVENTS} ('all' when voices is 0)", self.voice_events)
        _check(isinstance(self.meter, bool) and (not self.meter or self.time_mode == "beat"), "meter",
               "a bool, and False in seconds mode (a meter needs beats)", self.meter)
        _check(self.key in KEY_MODES, "key", f"one of {KEY_MODES}", self.key)
        for name in MODEL_INPUTS:
            value = getattr(self, name)
            _check(isinstance(value, bool) and (not value or self.voice_events == "all"), name,
                   "a bool, and False with voice_events 'implied'", value)

    def to_dict(self) -> dict:
        """The fields as a dict; ``voices``/``voice_polyphony``, ``voice_events`` ("all"), ``meter``, ``key``,
        ``styles`` (a list) and the ``MODEL_INPUTS`` are left out while off, so a config without them has the JSON
        (and the cache hash) it had before the fields existed."""
        data = super().to_dict()
        if not self.voices:
            del data["voices"], data["voice_polyphony"]
        if self.voice_events == "all":
            del data["voice_events"]
        if not self.meter:
            del data["meter"]
        if not self.key:
            del data["key"]
        if self.styles:
            data["styles"] = list(self.styles)
        else:
            del data["styles"]
        for name in MODEL_INPUTS:
            if not data[name]:
                del data[name]
        return data

    def for_tokens(self) -> "TokenizerConfig":
        """This config without its model-input-only fields (``MODEL_INPUTS``): the config the tokens are made with,
        which token caches are stored and compared under."""
        on = {name: False for name in MODEL_INPUTS if getattr(self, name)}
        return self.replace(**on) if on else self

    @classmethod
    def seconds(cls, **changes) -> "TokenizerConfig":
        """Performance RNN style: 10 ms steps, shifts up to 1 s, 32 velocity bins."""
        return cls(time_mode="seconds", step_seconds=0.01, max_shift_steps=100, **changes)


@dataclass(frozen=True)
class ModelConfig(_JsonConfig):
    """Shape of the next-event model: Embedding → ``layers`` × cell(``units``) → Dense(vocab_size) logits.

    Args:
        vocab_size: number of token classes (from the tokenizer).
        cell: ``"lstm"``, ``"gru"`` or ``"simple_rnn"``.
        embedding_dim: size of the token embedding.
        units: hidden units per recurrent layer.
        layers: number of stacked recurrent layers.
        dropout: dropout rate between layers (never recurrent dropout, to keep the cuDNN kernel eligible).
        context: sizes of the context features (metric position, key; see ``musicgen.context``) whose embeddings are
            added to the token embedding; ``()`` (no context input) is left out of the JSON.
    """

    vocab_size: int
    cell: str = "gru"
    embedding_dim: int = 128
    units: int = 256
    layers: int = 2
    dropout: float = 0.1
    context: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.context, list):  # from JSON
            object.__setattr__(self, "context", tuple(self.context))
        _check(isinstance(self.context, tuple) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1
                                                       for n in self.context), "context",
               "a tuple of positive integers (feature sizes)", self.context)
        _positive_int("vocab_size", self.vocab_size)
        _check(self.cell in CELLS, "cell", f"one of {CELLS}", self.cell)
        _positive_int("embedding_dim", self.embedding_dim)
        _positive_int("units", self.units)
        _positive_int("layers", self.layers)
        _check(isinstance(self.dropout, (int, float)) and 0.0 <= self.dropout < 1.0, "dropout", "a number in [0, 1)",
               self.dropout)

    def to_dict(self) -> dict:
        """The fields as a dict; ``context`` is a list, left out when empty (configs saved before it load unchanged)."""
        data = super().to_dict()
        if self.context:
            data["context"] = list(self.context)
        else:
            del data["context"]
        return data


MODEL_PRESETS: dict[str, dict] = {
    "tiny": dict(embedding_dim=16, units=32, layers=1, dropout=0.0),
    "small": dict(embedding_dim=64, units=128, layers=2, dropout=0.1),
    "medium": dict(embedding_dim=128, units=256, layers=2, dropout=0.1),
    "large": dict(embedding_dim=256, units=512, layers=3, dropout=0.2),
}


@dataclass(frozen=True)
class TrainConfig(_JsonConfig):
    """How the model is trained (truncated BPTT).

    Args:
        epochs: maximum passes over the training events (each event is a target at most once an epoch).
        batch_size: parallel streams per batch.
        bptt: window length in events for truncated backpropagation through time.
        stateful: carry the recurrent state across consecutive windows of the same stream.
        learning_rate: Adam's initial step size.
        clipnorm: gradient clipping by global norm (None disables; exploding gradients are why it is on).
        val_fraction: share of near-duplicate clusters in the validation part ("valid": early stopping, learning-rate
            halving, best epoch); see ``musicgen.split``.
        test_fraction: share of clusters in the untouched test part (never seen by training; for the final report).
        dedup_threshold: two pieces whose shingle containment is at least this are near-duplicates and share a
            cluster (``musicgen.dedup``; lower merges more).
        dedup_ngram: notes per shingle of the near-duplicate fingerprint.
        split_version: 3 = three-way split by near-duplicate cluster, each cluster's part drawn from its notes (the
            music key: a re-exported or re-encoded corpus keeps its split); 2 = the same, drawn from the files' bytes
            (bundles trained before version 3 keep it); 1 = the legacy two-way split by content hash (valid = test),
            which a train_config.json written before version 2 existed loads as.
        transpose: augmentation range in semitones (0 disables; 3 means a random shift in [-3, 3]).
        patience: early stopping on validation loss after this many epochs without improvement.
        seed: seed for splits, phases, augmentation and initial weights.
        algorithm: ``"bptt"`` or ``"rtrl"``.
        split_seed: the split's own seed (None: ``seed``). Fix it and vary ``seed`` to train replicates that hold the
            same train/valid/test pieces (``musicgen train --split-seed``). Left out of the JSON while None.
    """

    epochs: int = 20
    batch_size: int = 16
    bptt: int = 128
    stateful: bool = True
    learning_rate: float = 2e-3
    clipnorm: float | None = 1.0
    val_fraction: float = 0.1
    transpose: int = 0
    patience: int = 4
    seed: int = 0
    algorithm: str = "bptt"
    test_fraction: float = 0.1
    dedup_threshold: float = 0.5
    dedup_ngram: int = 8
    split_version: int = SPLIT_VERSION
    split_seed: int | None = None

    @property
    def seed_of_split(self) -> int:
        """The seed the split is drawn with: ``split_seed``, else ``seed``."""
        return self.seed if self.split_seed is None else self.split_seed

    def to_dict(self) -> dict:
        """The fields as a dict; ``split_seed`` is left out while None, so a config without it has the JSON it had
        before the field existed."""
        data = super().to_dict()
        if self.split_seed is None:
            del data["split_seed"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """As ``_JsonConfig.from_dict``; a dict without ``split_version`` (written before the three-way split) loads
        as ``split_version=1`` with ``test_fraction=0.0``: the legacy split its bundle was trained on."""
        if "split_version" not in data:
            data = {"test_fraction": 0.0, **data, "split_version": 1}
        return super().from_dict(data)

    def __post_init__(self) -> None:
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _check(isinstance(self.bptt, int) and self.bptt >= 2, "bptt", "an integer >= 2", self.bptt)
        _check(isinstance(self.learning_rate, (int, float)) and self.learning_rate > 0, "learning_rate",
               "a positive number", self.learning_rate)
        _check(self.clipnorm is None or (isinstance(self.clipnorm, (int, float)) and self.clipnorm > 0), "clipnorm",
               "a positive number or None", self.clipnorm)
        _check(isinstance(self.val_fraction, (int, float)) and 0.0 <= self.val_fraction < 1.0, "val_fraction",
               "a number in [0, 1)", self.val_fraction)
        _check(isinstance(self.transpose, int) and 0 <= self.transpose <= 12, "transpose", "an integer in [0, 12]",
               self.transpose)
        _positive_int("patience", self.patience)
        _check(isinstance(self.seed, int) and 0 <= self.seed < 2**32, "seed", "an integer in [0, 2**32)", self.seed)
        _check(self.split_seed is None or (isinstance(self.split_seed, int) and not isinstance(self.split_seed, bool)
                                           and 0 <= self.split_seed < 2**32), "split_seed",
               "None or an integer in [0, 2**32)", self.split_seed)
        _check(self.algorithm in ALGORITHMS, "algorithm", "'bptt' or 'rtrl'", self.algorithm)
        _check(isinstance(self.test_fraction, (int, float)) and 0.0 <= self.test_fraction < 1.0, "test_fraction",
               "a number in [0, 1)", self.test_fraction)
        _check(self.val_fraction + self.test_fraction < 1.0, "test_fraction",
               f"a number below 1 - val_fraction = {1.0 - self.val_fraction:g}", self.test_fraction)
        _check(isinstance(self.dedup_threshold, (int, float)) and 0.0 < self.dedup_threshold <= 1.0,
               "dedup_threshold", "a number in (0, 1]", self.dedup_threshold)
        _check(isinstance(self.dedup_ngram, int) and self.dedup_ngram >= 2, "dedup_ngram", "an integer >= 2",
               self.dedup_ngram)
        _check(self.split_version in (1, 2, SPLIT_VERSION), "split_version", f"1, 2 or {SPLIT_VERSION}",
               self.split_version)
