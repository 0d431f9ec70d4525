"""``musicgen serve``'s request checks: a request body (parsed JSON) → a ``Request`` that ``studio.Studio`` runs.

Every field is checked for type and range here, before any work: a bad request is a ``UsageError`` naming the field
and the value. ``musicgen.studio`` re-exports these names.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from musicgen.config_base import MAX_VOICES, _is_int, _is_number
from musicgen.errors import UsageError

MAX_LENGTH = 4096  # events per generation (the CLI allows more; a page request stays a few seconds)
MAX_SECONDS = 600.0  # seconds of music per generation
MAX_PRIMER_BYTES = 1 << 20  # an uploaded primer file, decoded
PRIMER_SUFFIXES = (".mid", ".midi", ".mxl", ".musicxml", ".xml", ".abc", ".krn")
FIELDS = ("model", "length", "seconds", "temperature", "top_p", "top_k", "seed", "program", "tempo", "primer",
          "keep_primer", "audio", "roll", "key", "instruments", "density", "voices", "style")


@dataclass(frozen=True)
class Request:
    """A checked generation request: ``model`` names a loaded bundle; ``primer`` is (file suffix, bytes) or None."""

    model: str
    length: int | None = 512
    seconds: float | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    program: int | None = None
    tempo: float | None = None
    primer: tuple[str, bytes] | None = None
    primer_name: str | None = None
    keep_primer: bool = True
    audio: bool = True
    roll: bool = True
    key: str | None = None
    instruments: tuple[int, ...] | None = None
    density: tuple[float, float] | None = None
    voices: int | None = None
    style: str | None = None

    def sample_config(self, tempo: float | None = None):
        """The ``SampleConfig`` of this request (``tempo``: the request's, else the primer's), one sample."""
        from musicgen.config_sample import SampleConfig

        return SampleConfig(length=self.length, seconds=self.seconds, temperature=self.temperature, top_p=self.top_p,
                            top_k=self.top_k, seed=self.seed, keep_primer=self.keep_primer, tempo=tempo,
                            key=self.key, instruments=self.instruments, density=self.density, voices=self.voices,
                            style=self.style)


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise UsageError(message)


def _number(data: dict, name: str, default, lo: float, hi: float, *, integer: bool = False, low_open: bool = False,
            optional: bool = False):
    """``data[name]`` checked to be a number in [lo, hi] ((lo, hi] with ``low_open``); None allowed if optional."""
    value = data.get(name, default)
    if value is None and optional:
        return None
    kind = "an integer" if integer else "a number"
    ok = (_is_int(value) if integer else _is_number(value)) and (lo < value if low_open else lo <= value) \
        and value <= hi
    _need(ok, f"{name}: expected {kind} in {'(' if low_open else '['}{lo:g}, {hi:g}]"
              f"{' or null' if optional else ''}, got {value!r}")
    return value


def check_request(data, models: list[str]) -> Request:
    """A request body (parsed JSON) → ``Request``; ``UsageError`` naming the field and value for anything wrong.

    Fields: ``model`` (one of ``models``; default the first), ``length`` (events, 1..``MAX_LENGTH``, null: 512 or,
    with ``seconds``, ``MAX_LENGTH``), ``seconds`` (music to make, (0, ``MAX_SECONDS``]), ``temperature`` ((0, 10]),
    ``top_p`` ((0, 1]), ``top_k`` (0: all), ``seed`` ([0, 2**31 - 1], null: random), ``program`` (GM 0..127 every
    non-drum part is played with, after sampling; the sidecar's ``play_as_program``), ``tempo`` (quarter notes per
    minute, (0, 1000]), ``primer`` ({"name": FILE NAME, "data": BASE64}), ``keep_primer``, ``audio``, ``roll``
    (booleans: keep the primer, render the WAV, draw the piano roll), and the controls of ``SampleConfig`` as the
    command line writes them: ``key`` ("D minor"), ``instruments`` ("0,40,73"), ``density`` ("2..4" notes per
    second); null or "" for none; ``voices`` (the most voices a sample may use, 0..``MAX_VOICES``, 0: no cap; null:
    drawn from the training pieces as ``musicgen sample`` does) and ``style`` (a style the bundle was trained with;
    null or "": drawn).
    """
    _need(isinstance(data, dict), f"request: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(FIELDS))
    _need(not unknown, f"request: unknown field {unknown[0]!r}" if unknown else "")
    _need(bool(models), "model: no bundle is loaded")
    model = data.get("model") or models[0]
    _need(isinstance(model, str) and model in models, f"model: expected one of {models}, got {model!r}")
    seconds = _number(data, "seconds", None, 0, MAX_SECONDS, low_open=True, optional=True)
    length = _number(data, "length", None if seconds else 512, 1, MAX_LENGTH, integer=True, optional=True)
    flags = {}
    for name in ("keep_primer", "audio", "roll"):
        flags[name] = data.get(name, True)
        _need(isinstance(flags[name], bool), f"{name}: expected true or false, got {flags[name]!r}")
    primer, primer_name = _check_primer(data.get("primer"))
    controls = _check_controls(data)
    return Request(
        model=model, length=MAX_LENGTH if seconds and length is None else length, seconds=seconds,
        temperature=_number(data, "temperature", 1.0, 0, 10, low_open=True),
        top_p=_number(data, "top_p", 1.0, 0, 1, low_open=True),
        top_k=_number(data, "top_k", 0, 0, 100_000, integer=True),
        seed=_number(data, "seed", None, 0, 2 ** 31 - 1, integer=True, optional=True),
        program=_number(data, "program", None, 0, 127, integer=True, optional=True),
        tempo=_number(data, "tempo", None, 0, 1000, low_open=True, optional=True),
        voices=_number(data, "voices", None, 0, MAX_VOICES, integer=True, optional=True),
        primer=primer, primer_name=primer_name, **flags, **controls)


def _check_controls(data: dict) -> dict:
    """``key``, ``instruments``, ``density`` (strings as on the command line; null or "" for none) → their values."""
    from musicgen.meter import parse_key
    from musicgen.controls import parse_density, parse_instruments

    out = {}
    for name, parse in (("key", parse_key), ("instruments", parse_instruments), ("density", parse_density)):
        value = data.get(name)
        _need(value is None or isinstance(value, str), f"{name}: expected a string or null, got {value!r}")
        value = (value or "").strip()
        try:
            parsed = parse(value) if value else None
        except UsageError as exc:  # the parsers name the flag (--key); the page names the field
            raise UsageError(f"{name}: {str(exc).split(': ', 1)[1]}") from None
        out[name] = value if name == "key" and value else parsed
    style = data.get("style")
    _need(style is None or isinstance(style, str), f"style: expected a string or null, got {style!r}")
    out["style"] = (style or "").strip() or None  # the bundle's styles are checked when sampling (generate)
    return out


def _check_primer(primer) -> tuple[tuple[str, bytes] | None, str | None]:
    if primer is None:
        return None, None
    _need(isinstance(primer, dict) and set(primer) <= {"name", "data"} and isinstance(primer.get("name"), str)
          and isinstance(primer.get("data"), str), "primer: expected {\"name\": FILE NAME, \"data\": BASE64}")
    name = primer["name"][-200:]
    suffix = Path(name.replace("\\", "/")).suffix.lower()
    _need(suffix in PRIMER_SUFFIXES, f"primer: expected a file ending in one of {' '.join(PRIMER_SUFFIXES)}, "
                                     f"got {name!r}")
    _need(len(primer["data"]) <= 4 * (MAX_PRIMER_BYTES // 3 + 1),
          f"primer: {name!r} is larger than {MAX_PRIMER_BYTES} bytes")
    try:
        data = base64.b64decode(primer["data"], validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"primer: {name!r}: data is not base64") from None
    _need(0 < len(data) <= MAX_PRIMER_BYTES, f"primer: {name!r} has {len(data)} bytes, expected 1..{MAX_PRIMER_BYTES}")
    return (suffix, data), name
