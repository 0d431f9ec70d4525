"""``musicgen.show(midi)``: the piano roll and an audio player, inline in a Jupyter notebook.

The module is named ``notebook`` (not ``show``) so that ``musicgen.show`` stays the function: importing a submodule
called ``show`` would set the package attribute to the module.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from musicgen.errors import UsageError
from musicgen.piano_roll import plot_piano_roll
from musicgen.render import render_wav


def show(midi, *, title: str | None = None, audio: bool = True, sample_rate: int = 22050, soundfont=None,
         width: int = 1000, height: int = 350, time_unit: str = "beats", display: bool = True):
    """Display ``midi``'s piano roll and, with ``audio``, a player of its rendered WAV in the running notebook.

    Args:
        midi: ``pretty_midi.PrettyMIDI`` (e.g. from ``musicgen.sample``) or a path to a MIDI file.
        title: the roll's title (default: the file name for a path).
        audio: render the audio (FluidSynth with a SoundFont when installed, else the sine fallback, which warns
            once); the WAV is embedded in the notebook, so it plays without the file.
        sample_rate / soundfont: as ``render_wav``; width / height (pixels) / time_unit: as ``plot_piano_roll``.
        display: show them (``IPython.display.display``); False only builds and returns them.

    Returns:
        ``(figure, player)``: the matplotlib ``Figure`` and an ``IPython.display.Audio`` (None without ``audio``).
    """
    try:
        from IPython.display import Audio
        from IPython.display import display as ipython_display
    except ImportError:
        raise UsageError("show: needs IPython (a Jupyter notebook; pip install ipykernel); "
                         "outside a notebook use `musicgen render --wav --png`") from None
    figure = plot_piano_roll(midi, width=width, height=height, title=title, time_unit=time_unit)
    player = None
    if audio:
        with tempfile.TemporaryDirectory(prefix="musicgen-show-") as folder:
            path = render_wav(midi, Path(folder) / "audio.wav", sample_rate=sample_rate, soundfont=soundfont)
            player = Audio(data=path.read_bytes())
    if display:
        ipython_display(figure)
        if player is not None:
            ipython_display(player)
    return figure, player
