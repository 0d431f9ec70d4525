"""Open every MIDI file of a folder in pretty_midi and render the longest ones: do other tools read what we wrote?

    python scripts/check_midi_folder.py DIR [--render 3]

Prints how many files open, their resolutions, the largest last tick, the files pretty_midi refuses, and renders
the ``--render`` longest files to WAV (sine fallback at 8000 Hz, into a temporary folder) through ``musicgen render``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder")
    parser.add_argument("--render", type=int, default=3, help="render this many of the longest files")
    args = parser.parse_args()
    import pretty_midi

    from musicgen.cli import main as cli

    files = sorted(Path(args.folder).glob("*.mid"))
    resolutions, refused, longest = Counter(), [], []
    for path in files:
        try:
            pm = pretty_midi.PrettyMIDI(str(path))
        except Exception as exc:
            refused.append(f"{path.name}: {type(exc).__name__}: {exc}")
            continue
        resolutions[pm.resolution] += 1
        longest.append((pm.time_to_tick(pm.get_end_time()), pm.get_end_time(), path))
    longest.sort(reverse=True)
    print(f"{len(files)} files: {len(files) - len(refused)} open in pretty_midi, {len(refused)} refused; "
          f"resolutions {dict(resolutions)}; largest last tick {longest[0][0] if longest else 0}")
    for line in refused[:10]:
        print("  refused:", line)
    os.environ["MUSICGEN_SOUNDFONT"] = "/nonexistent.sf2"  # the sine fallback: quick, no SoundFont needed
    with tempfile.TemporaryDirectory() as tmp:
        for tick, seconds, path in longest[:args.render]:
            code = cli(["render", str(path), "--wav", str(Path(tmp) / f"{path.stem}.wav"), "--sample-rate", "8000"])
            print(f"render {path.name} ({seconds:.0f} s, last tick {tick}): exit {code}")


if __name__ == "__main__":
    main()
