"""Measure the sampling controls (--density, --key with --key-strength, --instruments) on a bundle; write Markdown.

    python scripts/controls_report.py --model trained/default --seed 1 2 3 --out docs/controls.md

With several ``--seed``s every row pools their samples (``--samples`` per seed): one seed of 20 samples moves an
in-range share by 10-20 points.

Every number in docs/controls.md comes from this script with the settings it prints there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from musicgen import keys
from musicgen.bundle import load_bundle
from musicgen.meter import parse_key
from musicgen.controls import in_scale_share
from musicgen.generate import generate
from musicgen.safeio import atomic_write_text


def note_count(midi) -> int:
    return sum(len(i.notes) for i in midi.instruments)


def key_share(midi, key) -> float:
    """The share of the pitched notes of ``midi`` in ``key``'s scale (``controls.in_scale_share``)."""
    return in_scale_share([n.pitch for i in midi.instruments if not i.is_drum for n in i.notes], key)


def pooled_midis(bundle, args, **settings) -> list:
    """The MIDI of ``args.samples`` samples at each of ``args.seed``, in seed order."""
    return [m for seed in args.seed for m in generate(bundle, seed=seed, num_samples=args.samples, **settings).midis]


def density_rows(bundle, args) -> list[str]:
    rows = ["| --density | notes/s: min / median / max | in range | seconds to sample |", "|---|---|---|---|"]
    for density in [None, (1.0, 2.0), (3.0, 4.5), (3.0, 5.0), (2.0, 2.5), (9.0, 12.0), (10.0, 14.0)]:
        started = time.perf_counter()
        midis = pooled_midis(bundle, args, seconds=args.seconds, tempo=args.tempo, density=density)
        rate = np.array([note_count(m) / args.seconds for m in midis])
        inside = "–" if density is None else f"{np.mean((rate >= density[0]) & (rate <= density[1])):.0%}"
        label = "(none)" if density is None else f"{density[0]:g}..{density[1]:g}"
        rows.append(f"| {label} | {rate.min():.2f} / {np.median(rate):.2f} / {rate.max():.2f} | {inside} | "
                    f"{time.perf_counter() - started:.1f} |")
    return rows


def key_rows(bundle, args) -> list[str]:
    key = parse_key(args.key)
    if "KEY" in bundle.tokenizer.ranges:  # --key forces the KEY event the model was trained with
        rows = [f"| --key | share of notes in {args.key} (mean, min) |", "|---|---|"]
        for name in (None, args.key):
            shares = [key_share(m, key) for m in pooled_midis(bundle, args, length=args.length, key=name)]
            free = ("(no --key: drawn from the training pieces' keys)" if (bundle.metrics or {}).get(keys.METRIC)
                    else "(the model draws its key)")
            rows.append(f"| {name or free} | {np.mean(shares):.3f}, {np.min(shares):.3f} |")
        return rows
    rows = [f"| --key-strength | share of notes in {args.key} (mean, min) |", "|---|---|"]
    for strength in (0.0, 1.0, 2.0, 4.0):
        shares = [key_share(m, key) for m in pooled_midis(bundle, args, length=args.length, key=args.key,
                                                          key_strength=strength)]
        rows.append(f"| {strength:g} | {np.mean(shares):.3f}, {np.min(shares):.3f} |")
    return rows


def instrument_rows(bundle, args) -> list[str]:
    rows = ["| --instruments | programs of the notes | notes per sample (mean) |", "|---|---|---|"]
    for instruments in (None, (40,), (0, 40, 73)):
        midis = pooled_midis(bundle, args, length=args.length, instruments=instruments)
        programs = sorted({128 if i.is_drum else i.program for m in midis for i in m.instruments if i.notes})
        notes = np.mean([note_count(m) for m in midis])
        label = "(none)" if instruments is None else ",".join(map(str, instruments))
        rows.append(f"| {label} | {', '.join(map(str, programs))} | {notes:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="trained/default")
    parser.add_argument("--out", default="docs/controls.md")
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=16.0, help="music per sample for the density table")
    parser.add_argument("--tempo", type=float, default=100.0)
    parser.add_argument("--length", type=int, default=300, help="events per sample for the key/instrument tables")
    parser.add_argument("--key", default="D minor")
    parser.add_argument("--seed", type=int, nargs="+", default=[1], help="one or more; several pool their samples")
    args = parser.parse_args()
    bundle = load_bundle(args.model)
    seeds = " ".join(map(str, args.seed))

    def samples(of: str) -> str:
        if len(args.seed) == 1:
            return f"{args.samples} samples of {of}, seed {seeds}"
        return f"{args.samples} samples of {of} at each of seeds {seeds}, {args.samples * len(args.seed)} pooled"

    text = "\n".join([
        "# Sampling controls, measured",
        "",
        f"Made by `python scripts/controls_report.py --model {args.model} --samples {args.samples} --seconds "
        f"{args.seconds:g} --tempo {args.tempo:g} --length {args.length} --key '{args.key}' --seed {seeds}` "
        f"(model: {bundle.model_config.cell.upper()} {bundle.model_config.layers}x{bundle.model_config.units}, "
        f"{bundle.model_config.vocab_size} events; other settings at `musicgen sample`'s defaults).",
        "",
        f"## --density LOW..HIGH ({samples(f'{args.seconds:g} s at {args.tempo:g} qpm')}; notes/s = notes in the "
        f"file / {args.seconds:g} s)",
        "",
        *density_rows(bundle, args),
        "",
        (f"## --key '{args.key}' (a model with KEY events: --key forces its KEY; {samples(f'{args.length} events')}"
         f"; the scale is natural minor plus the leading tone, or major)"
         if "KEY" in bundle.tokenizer.ranges else
         f"## --key '{args.key}' --key-strength S (a model without KEY events; {samples(f'{args.length} events')}"
         f"; the scale is natural minor plus the leading tone, or major)"),
        "",
        *key_rows(bundle, args),
        "",
        f"## --instruments ({samples(f'{args.length} events')}; 128 = drums)",
        "",
        *instrument_rows(bundle, args),
        "",
    ])
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
