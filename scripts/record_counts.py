"""Add what ``musicgen sample`` draws from to a bundle trained before ``musicgen train`` recorded it: ``voice_pieces``
(how many training pieces use each number of voices: the voice caps, ``musicgen.voices``) and ``key_pieces`` (how many
are in each key: the KEY each sample takes, ``musicgen.keys``); for a bundle with styles, both per style as well
(``voice_pieces_by_style``, ``key_pieces_by_style``: ``styles.draw_for_styles``). The counts are
``train_result.sampling_counts``, the ones ``musicgen train`` records.

    python scripts/record_counts.py trained/default data/bach_bars

The training pieces are the bundle's own split of CORPUS (``split.bundle_split``: the same tokens and parts
``musicgen evaluate`` uses). ``metrics.json`` is rewritten atomically and its sha256 in ``bundle.json`` updated
(``bundle.update_metrics``), so the bundle still verifies. A count the bundle already records is left alone unless
``--force``; one its vocabulary has no events for (VOICE, KEY) is not written.

``--default-style NAME`` records the style ``musicgen sample`` takes without ``--style`` (``default_style``, as
``musicgen train --default-style`` does) in a bundle trained with styles.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from musicgen import keys, styles, voices  # noqa: E402
from musicgen.bundle import load_bundle, update_metrics  # noqa: E402
from musicgen.errors import UsageError  # noqa: E402
from musicgen.split import bundle_split  # noqa: E402
from musicgen.train_result import sampling_counts  # noqa: E402

COUNTS = (("VOICE", voices.METRIC), ("KEY", keys.METRIC))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("corpus", help="the music folder (or token cache) the bundle was trained on")
    p.add_argument("--force", action="store_true", help="recount even what the bundle records")
    p.add_argument("--default-style", default=None, metavar="NAME",
                   help="also record NAME as the style sampling takes without --style (bundles with styles)")
    args = p.parse_args(argv)
    bundle = load_bundle(args.bundle)
    if args.default_style is not None:
        try:
            styles.parse_style(args.default_style, bundle.tokenizer_config.styles, f"the bundle {args.bundle!r}",
                               "--default-style")
        except UsageError as exc:
            print(exc, file=sys.stderr)
            return 2
        update_metrics(args.bundle, **{styles.DEFAULT: args.default_style})
        bundle = load_bundle(args.bundle)
        print(f"{args.bundle}: {styles.DEFAULT} {args.default_style}")
    wanted = [metric for event, metric in COUNTS if event in bundle.tokenizer.ranges]
    if not wanted:
        if args.default_style is not None:
            return 0
        print(f"{args.bundle}: no VOICE or KEY events; nothing to record", file=sys.stderr)
        return 2
    if bundle.tokenizer_config.styles:
        wanted += [styles.by_style(metric) for metric in wanted]
    todo = [metric for metric in wanted if args.force or metric not in bundle.metrics]
    for metric in wanted:
        if metric not in todo:
            print(f"{args.bundle}: already records {metric} {bundle.metrics[metric]}")
    if not todo:
        return 0
    data, split = bundle_split(bundle, args.corpus)
    train = [data.pieces[int(i)] for i in split.train]
    if len(train) != bundle.metrics.get("train_pieces", len(train)):
        print(f"{args.bundle}: {len(train)} training pieces, metrics.json says {bundle.metrics['train_pieces']}: "
              f"not the corpus it was trained on?", file=sys.stderr)
        return 1
    counted = sampling_counts(train, bundle.tokenizer)
    found = {metric: counted[metric] for metric in todo}
    update_metrics(args.bundle, **found)
    load_bundle(args.bundle)  # verifies the checksums
    for metric, value in found.items():
        print(f"{args.bundle}: {metric} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
