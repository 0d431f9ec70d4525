"""What a sample's JSON sidecar records beside its settings: the key, meter and style the sample drew
(``_key_and_meter``), the tempo its MIDI file holds (``written_tempo``) and the ``musicgen sample`` command line that
makes it again (``regenerate_command``). ``musicgen.generate`` fills the sidecars with these; numpy only.
"""

from __future__ import annotations

import dataclasses
import shlex

import numpy as np

from musicgen.config_sample import SampleConfig
from musicgen.meter import key_name, time_signature_of


def _key_and_meter(tokens: np.ndarray, tok) -> dict:
    """``{"key": "D minor", "meter": "3/4", "style": "folk"}``: the first KEY, TIME_SIG and STYLE of a sample, for
    vocabularies that have them (None when the sample has none)."""
    from musicgen.styles import piece_style

    out = {}
    if "STYLE" in tok.ranges:
        style = piece_style(tokens, tok)
        out["style"] = None if style is None else tok.config.styles[style]
    for name in ("KEY", "TIME_SIG"):
        if name in tok.ranges:
            values = tok.values_of(tokens, name)
            value = int(values[0]) if values.size else None
            if name == "KEY":
                out["key"] = None if value is None else key_name(value)
            else:
                out["meter"] = None if value is None else "{}/{}".format(*time_signature_of(value))
    return out


def written_tempo(midi) -> float:
    """The first tempo of ``midi`` as its MIDI file holds it (whole microseconds per quarter), in quarter notes per
    minute to 3 decimals: ``settings.tempo`` unless it was clamped to what a file can hold (or lowered so the last
    tick fits, see ``midi_io.arrays_to_pretty_midi``)."""
    qpm = float(midi.get_tempo_changes()[1][0])
    return round(60e6 / int(60e6 / qpm), 3)


_ALWAYS = ("seed", "length", "temperature", "top_k", "top_p", "num_samples", "tempo")  # written even at defaults


def regenerate_command(model_path, config: SampleConfig, primer: str | None = None) -> str:
    """The ``musicgen sample`` command line that makes ``config``'s samples again (pick one by index from a batch).

    ``config`` should be the config as used (seed, length and tempo resolved; for a key-mode bundle, ``key`` the
    sample's own key: with the same seed it draws the same events). Fields at their defaults are left out, except
    the seed, length, temperature, top-k/top-p, sample count and tempo.
    """
    default = SampleConfig()
    parts = ["musicgen", "sample", "--model", str(model_path)]
    for f in dataclasses.fields(SampleConfig):
        value = getattr(config, f.name)
        if f.name not in _ALWAYS and value == getattr(default, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif f.name == "pitch_range":
            parts += [flag, str(value[0]), str(value[1])]
        elif f.name == "instruments":
            parts += [flag, ",".join(map(str, value))]
        elif f.name == "density":
            parts += [flag, f"{value[0]!r}..{value[1]!r}"]
        else:
            parts += [flag, repr(value) if isinstance(value, float) else str(value)]
    if primer:
        parts += ["--primer", primer]
    return shlex.join(parts)
