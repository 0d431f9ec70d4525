"""Calibrate the classifier two-sample test (musicgen.twosample) on real music, and run it on a bundle's samples.

    python scripts/twosample_check.py data/bach [--bundle trained/default] [--length 512] [--seeds 3]

1. **Halves**: the pieces of DIR split at random into two halves (seeds 0..seeds-1), at ``--length`` events: what
   "indistinguishable" reads as (about 0.5, the interval covering 0.5).
2. **Folk**: DIR against the first ``--folk`` tunes of music21's bundled ``ryansMammoth`` (Irish folk tunes, ABC,
   one line) at ``--folk-length`` events (they are shorter): what "obviously different" reads as (about 1.0).
3. With ``--bundle``: the held-out pieces of the bundle's split (``dataset.split_pieces`` with its
   ``val_fraction`` and ``seed``, keys = sha256 of the files, as ingest makes them) against ``--samples`` samples
   of ``--sample-length`` events (``generate`` with its defaults: temperature 1, no top-k/top-p), excerpts of
   ``--model-length`` events.

Every figure is printed with its settings; nothing is written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from musicgen.corpus import find_music_files
from musicgen.errors import IngestError
from musicgen.safeio import sha256_file
from musicgen.tokenizer import Tokenizer
from musicgen.twosample import FEATURE_NAMES, classifier_accuracy, feature_matrix, two_sample


def encode_all(tok: Tokenizer, files) -> tuple[list[np.ndarray], list[Path]]:
    pieces, kept = [], []
    for f in files:
        try:
            pieces.append(tok.encode(f))
            kept.append(f)
        except IngestError:
            pass
    return pieces, kept


def _effect(xr: np.ndarray, xg: np.ndarray) -> np.ndarray:
    """Per feature: (mean of xg - mean of xr) / pooled sd (nan-aware; 0 where the sd is 0)."""
    sd = np.nanstd(np.vstack([xr, xg]), axis=0)
    return np.where(sd > 0, (np.nanmean(xg, axis=0) - np.nanmean(xr, axis=0)) / np.where(sd > 0, sd, 1), 0.0)


def show(label: str, r: dict) -> None:
    print(f"{label}: accuracy {r['accuracy']:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f}); excerpts of "
          f"{r['length']} events: {r['n_real']} vs {r['n_generated']}, {r['n_per_class']} per class used, "
          f"{r['folds']} folds", flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("dir", help="folder of music files (e.g. the Bach chorales)")
    p.add_argument("--length", type=int, default=512, help="events per excerpt for the halves")
    p.add_argument("--seeds", type=int, default=3, help="random halves to try")
    p.add_argument("--folk", type=int, default=120, help="ryansMammoth tunes (0 skips)")
    p.add_argument("--folk-length", type=int, default=256)
    p.add_argument("--bundle", help="a trained bundle whose samples to test against its held-out pieces")
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--sample-length", type=int, default=1024)
    p.add_argument("--model-length", type=int, default=512)
    args = p.parse_args(argv)

    tok = Tokenizer()
    files = find_music_files(args.dir)
    pieces, kept = encode_all(tok, files)
    print(f"{len(pieces)} pieces from {args.dir}, median {np.median([len(x) for x in pieces]):.0f} tokens")
    for seed in range(args.seeds):
        order = np.random.default_rng(seed).permutation(len(pieces))
        half = len(pieces) // 2
        a, b = [pieces[i] for i in order[:half]], [pieces[i] for i in order[half:]]
        show(f"halves (seed {seed})", two_sample(tok, a, b, args.length, seed=seed))
    if args.folk:
        import music21

        root = Path(music21.corpus.__file__).parent / "ryansMammoth"
        folk, _ = encode_all(tok, sorted(root.glob("*.abc"))[:args.folk])
        print(f"{len(folk)} ryansMammoth tunes, median {np.median([len(x) for x in folk]):.0f} tokens")
        show(f"{args.dir} vs folk", two_sample(tok, pieces, folk, args.folk_length))
    if args.bundle:
        from musicgen.bundle import load_bundle
        from musicgen.dataset import split_pieces
        from musicgen.generate import generate

        bundle = load_bundle(args.bundle)
        tcfg = bundle.train_config
        btok = bundle.tokenizer
        bpieces, bkept = encode_all(btok, files)
        train_idx, val_idx = split_pieces([sha256_file(f) for f in bkept], tcfg.val_fraction, tcfg.seed)
        heldout = [bpieces[i] for i in val_idx]
        train = [bpieces[i] for i in train_idx]
        samples = generate(bundle, length=args.sample_length, num_samples=args.samples, seed=0).tokens
        print(f"bundle {args.bundle}: {len(heldout)} held-out and {len(train)} training pieces, {len(samples)} "
              f"samples of {args.sample_length} events (seed 0)")
        show("held-out vs samples", two_sample(btok, heldout, samples, args.model_length))
        show("training vs samples", two_sample(btok, train, samples, args.model_length))
        show("training vs held-out (no model)", two_sample(btok, train, heldout, args.model_length))
        # the same test blind to key: without the 12 pitch-class bins (training transposes, so keys spread)
        cols = [i for i, name in enumerate(FEATURE_NAMES) if not name.startswith("pc_")]
        (xr, gr), (xg, gg) = (feature_matrix(btok, s, args.model_length) for s in (train, samples))
        r = classifier_accuracy(xr[:, cols], xg[:, cols], gr, gg)
        show("training vs samples, without pitch-class bins",
             dict(r, length=args.model_length, n_real=len(xr), n_generated=len(xg)))
        top = np.argsort(-np.abs(_effect(xr, xg)))[:5]
        print("largest differences (samples - training, in pooled sd): " + ", ".join(
            f"{FEATURE_NAMES[i]} {np.nanmean(xr[:, i]):.3f} -> {np.nanmean(xg[:, i]):.3f}" for i in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
