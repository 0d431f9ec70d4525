"""Give a bundle trained before start states existed the state its samples should start from.

    python scripts/add_start_state.py MODEL CORPUS_DIR

Computes ``start_state.compute_start_state`` (the mean recurrent state right after EOS, over the bundle's own
training split of CORPUS_DIR, the corpus it was trained on) through the numpy step kernels and writes
``MODEL/start_state.npz`` with its sha256 in bundle.json. ``musicgen train`` does this itself for new runs; a bundle
without the file samples from zeros, as before.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np


def main(argv=None) -> int:
    from musicgen.bundle import load_bundle, write_bundle_file
    from musicgen.sampler import StepModel
    from musicgen.split import bundle_split
    from musicgen.start_state import compute_start_state, state_arrays

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("corpus_dir")
    args = parser.parse_args(argv)
    bundle = load_bundle(args.model)
    data, split = bundle_split(bundle, args.corpus_dir)
    train = split.pieces("train", data.pieces)
    state = compute_start_state(StepModel(bundle.weights, bundle.model_config, tokenizer=bundle.tokenizer), train,
                                eos_id=int(bundle.tokenizer.eos_id), seed=0)
    buffer = io.BytesIO()
    np.savez(buffer, **state_arrays(state))
    path = write_bundle_file(args.model, "start_state.npz", buffer.getvalue())
    load_bundle(args.model)  # still verifies
    print(f"wrote {path} (mean post-EOS state over {len(train)} training pieces)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
