"""Typed, frozen configs for each stage, with presets and JSON round trips.

Each config is saved next to the weights in a bundle, so sampling rebuilds exactly what training built.
Every config validates itself on construction and raises ``ConfigError`` naming the field and the value.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from musicgen.errors import ConfigError, UsageError

T = TypeVar("T")

CELLS = ("lstm", "gru", "simple_rnn")
TIME_MODES = ("beat", "seconds")
MAX_VOICES = 64  # largest TokenizerConfig.voices
MAX_STYLES = 256  # most TokenizerConfig.styles
KEY_MODES = ("", "token", "normalize")  # TokenizerConfig.key: off, KEY event with notes as written, notes on C
SPLIT_VERSION = 3  # TrainConfig.split_version of new runs: three-way split by near-duplicate cluster, drawn from the music
ALGORITHMS = ("bptt", "rtrl")  # TrainConfig.algorithm
# SampleConfig bounds: they keep one call's memory and time finite (the sampler holds ~100 kB per sample, 4 B per event)
MAX_LENGTH = 1_000_000  # events per sample
MAX_NUM_SAMPLES = 1024
MAX_SECONDS = 24 * 3600.0
DEFAULT_MAX_NOTE_LENGTH = 8.0  # quarter notes; a fermata'd chorale whole note is 4-6
MAX_TEMPO = 60_000_000.0  # quarter notes per minute: 1 microsecond per quarter, the fastest tempo MIDI can write


def _check(cond: bool, name: str, expected: str, value: Any) -> None:
    if not cond:
        raise ConfigError(f"{name}: expected {expected}, got {value!r}")


def _positive_int(name: str, value: Any) -> None:
    _check(isinstance(value, int) and not isinstance(value, bool) and value > 0, name, "a positive integer", value)


class _JsonConfig:
    """Mixin: ``to_dict`` / ``from_dict`` / ``to_json`` / ``from_json`` / ``save`` / ``load``."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[T], data: dict) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write ``to_json()`` to ``path`` atomically (a temporary file beside it, then a rename)."""
        from musicgen.safeio import atomic_write_text

        atomic_write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls: type[T], path: str | Path) -> T:
        return cls.from_json(Path(path).read_text())

    def replace(self: T, **changes) -> T:
        return dataclasses.replace(self, **changes)


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
        meter: emit TIME_SIG events (beat mode only): one where a bar of that meter starts (the first full bar, after
            any pickup) and one at each change, so the metric position of every event follows from the tokens.
        key: ``""`` (off), ``"token"`` (a KEY event after BOS names the piece's key, notes as written) or
            ``"normalize"`` (the KEY event names the original key and the notes are transposed so its tonic is C;
            decoding transposes them back).
        styles: the style names (sorted, unique; ``()`` off): a STYLE event after BOS names each piece's style, the
            top-level subfolder of the corpus it came from (``musicgen ingest DIR --styles``, ``musicgen.styles``).
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
    meter: bool = False
    key: str = ""
    styles: tuple[str, ...] = ()

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
        _check(isinstance(self.meter, bool) and (not self.meter or self.time_mode == "beat"), "meter",
               "a bool, and False in seconds mode (a meter needs beats)", self.meter)
        _check(self.key in KEY_MODES, "key", f"one of {KEY_MODES}", self.key)

    def to_dict(self) -> dict:
        """The fields as a dict; ``voices``/``voice_polyphony``, ``meter``, ``key`` and ``styles`` (a list) are left out
        while off, so a config without them has the JSON (and the cache hash) it had before the fields existed."""
        data = super().to_dict()
        if not self.voices:
            del data["voices"], data["voice_polyphony"]
        if not self.meter:
            del data["meter"]
        if not self.key:
            del data["key"]
        if self.styles:
            data["styles"] = list(self.styles)
        else:
            del data["styles"]
        return data

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


@dataclass(frozen=True)
class SampleConfig(_JsonConfig):
    """Every setting of one ``musicgen sample`` call: how events are drawn, masked, steered and written.

    ``to_dict()`` is the sidecar's ``settings`` (with ``pitch_range``, ``instruments`` and ``density`` as lists) and
    ``generate.regenerate_command`` turns one back into the command line. Validation names the field and the value.

    Args:
        length: events to generate per sample, primer not counted (None: 512; with ``seconds`` an upper bound, None:
            8 events per grid step).
        seconds: stop each sample after this much music (None: ``length`` alone ends it).
        temperature: divides the logits; < 1 is more conservative, > 1 more adventurous.
        top_k: keep only the k most likely events (0 disables).
        top_p: keep the smallest set of events whose probability sums to p (1.0 disables).
        seed: RNG seed; the same seed and settings give the same bytes out (None: a random one, recorded).
        num_samples: samples generated together as one batch.
        keep_primer: the written file starts with the primer (False: the continuation only).
        max_polyphony: at most this many notes sounding at once (0 disables).
        pitch_range: inclusive ``(lo, hi)`` MIDI pitches for new non-drum notes (None: the tokenizer's range).
        allow_eos: let the model end a sample before ``length``.
        tempo: quarter notes per minute written to the file (None: the primer's, else 120).
        program: General MIDI program where the model does not choose instruments; with PROGRAM events, the program
            the sample starts in.
        max_note_length: quarter notes a note may sound before its NOTE_OFF is forced (0: no limit).
        well_formed: NOTE_ON/NOTE_OFF consistency masks (``rules.EventRules``); False leaves the model's own choice.
        key: a key name (``"D minor"``): the KEY event of a key-mode bundle, else a pitch-class bias toward its scale.
        key_strength: nats taken from each out-of-scale NOTE_ON (bundles without KEY events; None: 2.0 there).
        instruments: the General MIDI programs (0-127) that may start notes (None: all); bundles with PROGRAM
            events, or one program for one without.
        drums: drum notes (program 128) allowed (None: yes, unless ``instruments`` is given).
        density: ``(low, high)`` notes per second the running note rate is steered into (None: no steering).
        style: the STYLE event of every sample, a style name of the bundle (bundles trained with ``--styles`` only;
            None: each sample's style is drawn from the training pieces' style shares, see ``musicgen.styles``).
        voices: the most voices a sample may use (voices bundles; 0: no cap; None: each sample's cap is drawn from
            the training pieces' voice counts where the bundle records them, see ``musicgen.voices``).
    """

    length: int | None = None
    seconds: float | None = None
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None
    num_samples: int = 1
    keep_primer: bool = True
    max_polyphony: int = 0
    pitch_range: tuple[int, int] | None = None
    allow_eos: bool = False
    tempo: float | None = None
    program: int | None = None
    max_note_length: float = DEFAULT_MAX_NOTE_LENGTH
    well_formed: bool = True
    key: str | None = None
    key_strength: float | None = None
    instruments: tuple[int, ...] | None = None
    drums: bool | None = None
    density: tuple[float, float] | None = None
    style: str | None = None
    voices: int | None = None

    def __post_init__(self) -> None:
        for name in ("pitch_range", "instruments", "density"):  # lists from JSON
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        _check(self.length is None or _is_int(self.length) and 0 < self.length <= MAX_LENGTH, "length",
               f"a positive integer, at most {MAX_LENGTH} events per sample", self.length)
        _check(self.seconds is None or _is_number(self.seconds) and 0 < self.seconds <= MAX_SECONDS, "seconds",
               f"a positive number up to {MAX_SECONDS:.0f}", self.seconds)
        _check(_is_number(self.temperature) and self.temperature > 0, "temperature", "a number > 0", self.temperature)
        _check(_is_int(self.top_k) and self.top_k >= 0, "top_k", "an integer >= 0", self.top_k)
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, "top_p", "a number in (0, 1]", self.top_p)
        _check(self.seed is None or _is_int(self.seed) and 0 <= self.seed < 2**63, "seed", "an integer >= 0",
               self.seed)
        _check(_is_int(self.num_samples) and 0 < self.num_samples <= MAX_NUM_SAMPLES, "num_samples",
               f"a positive integer, at most {MAX_NUM_SAMPLES} samples per call", self.num_samples)
        _check(isinstance(self.keep_primer, bool), "keep_primer", "True or False", self.keep_primer)
        _check(_is_int(self.max_polyphony) and self.max_polyphony >= 0, "max_polyphony", "an integer >= 0",
               self.max_polyphony)
        _check(self.pitch_range is None or len(self.pitch_range) == 2 and all(map(_is_int, self.pitch_range))
               and 0 <= self.pitch_range[0] <= self.pitch_range[1] <= 127, "pitch_range",
               "(LO, HI) with 0 <= LO <= HI <= 127", self.pitch_range)
        _check(isinstance(self.allow_eos, bool), "allow_eos", "True or False", self.allow_eos)
        _check(self.tempo is None or _is_number(self.tempo) and 0 < self.tempo <= MAX_TEMPO, "tempo",
               f"a positive number of quarter notes per minute up to {MAX_TEMPO:.0f}", self.tempo)
        _check(self.program is None or _is_int(self.program) and 0 <= self.program <= 127, "program",
               "a General MIDI program in [0, 127]", self.program)
        _check(_is_number(self.max_note_length) and 0 <= self.max_note_length <= MAX_SECONDS, "max_note_length",
               "a number of quarter notes >= 0 (0 = no limit)", self.max_note_length)
        _check(isinstance(self.well_formed, bool), "well_formed", "True or False", self.well_formed)
        if self.key is not None:
            from musicgen.meter import parse_key

            try:
                parse_key(self.key)
            except UsageError as exc:  # its message names --key and the accepted form
                raise ConfigError(str(exc)) from None
        _check(self.key_strength is None or _is_number(self.key_strength) and 0 <= self.key_strength <= 100,
               "key_strength", "a number of nats in [0, 100]", self.key_strength)
        _check(self.instruments is None or len(self.instruments) > 0 and all(map(_is_int, self.instruments))
               and all(0 <= p <= 127 for p in self.instruments), "instruments",
               "General MIDI programs in [0, 127], at least one", self.instruments)
        _check(self.drums is None or isinstance(self.drums, bool), "drums", "True, False or None", self.drums)
        _check(self.density is None or len(self.density) == 2 and all(map(_is_number, self.density))
               and 0 < self.density[0] <= self.density[1], "density",
               "(LOW, HIGH) notes per second with 0 < LOW <= HIGH", self.density)
        _check(self.style is None or isinstance(self.style, str) and self.style != "", "style",
               "a style name of the bundle", self.style)
        _check(self.voices is None or _is_int(self.voices) and 0 <= self.voices <= MAX_VOICES, "voices",
               f"an integer in [0, {MAX_VOICES}] (0 = no cap)", self.voices)

    def to_dict(self) -> dict:
        """The fields as a dict; tuples as lists (the sidecar's ``settings`` keep the names they always had)."""
        data = super().to_dict()
        for name in ("pitch_range", "instruments", "density"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
