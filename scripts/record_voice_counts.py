"""Add ``voice_pieces`` (how many training pieces use each number of voices) to a bundle trained before
``musicgen train`` recorded it, so ``musicgen sample`` draws voice caps from it (``musicgen.voices``).

    python scripts/record_voice_counts.py trained/default data/bach_bars

The training pieces are the bundle's own split of CORPUS (``split.bundle_split``: the same tokens and parts
``musicgen evaluate`` uses). ``metrics.json`` is rewritten atomically and its sha256 in ``bundle.json`` updated
(``bundle.update_metrics``), so the bundle still verifies; a bundle that already records them is left alone unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen.bundle import load_bundle, update_metrics  # noqa: E402
from musicgen.split import bundle_split  # noqa: E402
from musicgen.voices import METRIC, voice_counts  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("corpus", help="the music folder (or token cache) the bundle was trained on")
    p.add_argument("--force", action="store_true", help="recount even when the bundle records them")
    args = p.parse_args(argv)
    bundle = load_bundle(args.bundle)
    if "VOICE" not in bundle.tokenizer.ranges:
        print(f"{args.bundle}: no VOICE events; nothing to record", file=sys.stderr)
        return 2
    if METRIC in bundle.metrics and not args.force:
        print(f"{args.bundle}: already records {METRIC} {bundle.metrics[METRIC]}")
        return 0
    data, split = bundle_split(bundle, args.corpus)
    counts = voice_counts([data.pieces[int(i)] for i in split.train], bundle.tokenizer)
    if sum(counts.values()) != bundle.metrics.get("train_pieces", sum(counts.values())):
        print(f"{args.bundle}: {sum(counts.values())} training pieces counted, metrics.json says "
              f"{bundle.metrics['train_pieces']}: not the corpus it was trained on?", file=sys.stderr)
        return 1
    update_metrics(args.bundle, **{METRIC: counts})
    load_bundle(args.bundle)  # verifies the checksums
    print(f"{args.bundle}: {METRIC} {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
