"""How many of a split's long notes (>= 4 beats) end on their piece's last step (the final chord, which samples of a
fixed length never reach), and the long-note share without them.

    python scripts/long_notes.py [--model trained/default] [--corpus data/bach_bars] [--split test]

Pieces: the bundle's own split of the corpus (``split.bundle_split``), decoded with its tokenizer (beat mode).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def count(tokenizer, pieces, beats: float = 4.0) -> dict:
    """Notes, long notes (>= ``beats`` quarter notes) and long notes ending on their piece's last step."""
    total = longs = at_end = 0
    for tokens in pieces:
        a = tokenizer.decode_arrays(np.asarray(tokens))
        if not a["pitch"].size:
            continue
        long_ = (a["end"] - a["start"]) >= beats * tokenizer.config.steps_per_quarter
        total, longs = total + a["pitch"].size, longs + int(long_.sum())
        at_end += int((long_ & (a["end"] == a["end"].max())).sum())
    return {"notes": total, "long": longs, "long_at_end": at_end}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="trained/default")
    parser.add_argument("--corpus", default="data/bach_bars")
    parser.add_argument("--split", choices=["train", "valid", "test"], default="test")
    args = parser.parse_args(argv)
    from musicgen.bundle import load_bundle
    from musicgen.split import bundle_split

    bundle = load_bundle(args.model)
    if bundle.tokenizer_config.time_mode != "beat":
        raise SystemExit("long_notes: a beat-mode bundle is needed (beats)")
    data, parts = bundle_split(bundle, args.corpus)
    c = count(bundle.tokenizer, parts.pieces(args.split, data.pieces))
    n = max(c["notes"], 1)
    print(f"{args.split}: {c['notes']} notes, {c['long']} of >= 4 beats ({100 * c['long'] / n:.2f}%), "
          f"{c['long_at_end']} of them ending on the piece's last step; without those "
          f"{100 * (c['long'] - c['long_at_end']) / n:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
