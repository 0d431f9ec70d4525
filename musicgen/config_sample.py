"""``SampleConfig``: every setting of one ``musicgen sample`` call, its bounds, and its validation.

The training-side configs (tokenizer, model, training) are in ``musicgen.config``, which re-exports this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from musicgen.config_base import MAX_VOICES, _check, _is_int, _is_number, _JsonConfig
from musicgen.errors import ConfigError, UsageError


# SampleConfig bounds: they keep one call's memory and time finite (the sampler holds ~100 kB per sample, 4 B per event)
MAX_LENGTH = 1_000_000  # events per sample
MAX_NUM_SAMPLES = 1024
MAX_SECONDS = 24 * 3600.0
DEFAULT_MAX_NOTE_LENGTH = 8.0  # quarter notes; a fermata'd chorale whole note is 4-6
MAX_TEMPO = 60_000_000.0  # quarter notes per minute: 1 microsecond per quarter, the fastest tempo MIDI can write


@dataclass(frozen=True)
class SampleConfig(_JsonConfig):
    """Every setting of one ``musicgen sample`` call: how events are drawn, masked, steered and written.

    ``to_dict()`` is the sidecar's ``settings`` (with ``pitch_range``, ``instruments`` and ``density`` as lists) and
    ``sidecar.regenerate_command`` turns one back into the command line. Validation names the field and the value.

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
