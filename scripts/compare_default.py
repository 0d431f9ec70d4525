"""Test NLL of the shipped model against the one it replaced, on the same test pieces (issue 13's NLL goal).

    python scripts/compare_default.py --new trained/default@data/bach_bars --old OLD_BUNDLE@data/bach \\
        [--out docs/quality.md] [--json PATH] [--masks]

The two bundles may encode the music differently (the new one with VOICE, TIME_SIG and KEY events, notes moved to
C) and may have been trained on different exports of one corpus: pieces are matched by file name. The test pieces
are the NEW bundle's own test split. The old bundle was trained before that split existed, so some of those pieces
were in its training data; two sets are reported:

- ``all``: every test piece of the new bundle (the old model has seen some of them: its number is optimistic);
- ``unseen by both``: the test pieces that are in neither bundle's training part (the old bundle's own split).

NLL per note divides each model's total NLL on a set by the most notes either encoding keeps of those pieces (an
encoding that merges parts loses notes and would otherwise be divided by fewer), so a lower number is a better model
of the same music. Per piece: the share of pieces where the new model's NLL per note is lower, and a 95% bootstrap
interval (pieces resampled, 2000 draws, seed 0) of the difference new - old in nats per note.

Masks off (default): each model's own distribution. ``--masks``: each model with the sampler's well-formedness
rules renormalizing every step (``evaluate.piece_scores(masks=True)``), the distribution its music is drawn from;
events the rules forbid are scored without the mask and counted.

``--style NAME``: a new bundle trained with styles is compared on its test pieces of that style alone (the old
bundle's corpus holds that style's music only, e.g. the chorales of a Bach-and-Palestrina model).

Writes the text between ``<!-- report:default-vs-old -->`` (``default-vs-old-masked`` with ``--masks``) and
``<!-- /report -->`` of ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))


def parse_spec(text: str) -> tuple[str, str]:
    """``"BUNDLE@CORPUS"`` → ``(BUNDLE, CORPUS)``."""
    bundle, sep, corpus = text.partition("@")
    if not sep or not bundle or not corpus:
        raise SystemExit(f"compare_default: expected BUNDLE@CORPUS, got {text!r}")
    return bundle, corpus


def piece_table(bundle_path: str, corpus: str, style: str | None = None) -> tuple:
    """``(bundle, data, parts)``: the loaded bundle, its corpus tokenized with its tokenizer (``corpus.tokens_for``)
    and per file name its part (``train``/``valid``/``test``) in the bundle's own split; with ``style``, only the
    pieces of that style (``evaluate.style_indices``)."""
    from musicgen.bundle import load_bundle
    from musicgen.evaluate import style_indices
    from musicgen.split import bundle_split

    bundle = load_bundle(bundle_path)
    data, split = bundle_split(bundle, corpus)
    kept = None if style is None else set(style_indices(bundle, data.pieces, style))
    parts = {Path(str(data.paths[i])).name: part for part in ("train", "valid", "test") for i in split.part(part)
             if kept is None or int(i) in kept}
    return bundle, data, parts


def score(bundle, data, names: set[str], masks: bool = False) -> dict:
    """Per file name in ``names``: (total NLL nats, events scored, notes decoded, {event kind: total NLL nats},
    events the masks forbade, voices used (``voices.piece_voices``; 0 without VOICE events)) under ``bundle``."""
    from musicgen.voices import piece_voices

    from musicgen.evaluate import piece_scores

    index = [i for i in range(len(data)) if Path(str(data.paths[i])).name in names]
    pieces = [np.asarray(data.pieces[i]) for i in index]
    scores = piece_scores(bundle, pieces, masks=masks)
    tok = bundle.tokenizer
    kinds = np.array([tok.describe(i)[0] for i in range(tok.vocab_size)])
    out = {}
    for i, p, s in zip(index, pieces, scores):
        by_kind: dict[str, float] = {}
        for kind, nll in zip(kinds[p[1:1 + s.nll.size]], s.nll):
            by_kind[str(kind)] = by_kind.get(str(kind), 0.0) + float(nll)
        out[Path(str(data.paths[i])).name] = (float(s.nll.sum()), int(s.nll.size), len(tok.decode_notes(p)), by_kind,
                                              s.forbidden, piece_voices(p, tok))
    return out


def by_kind(scores: dict, names: list[str], notes: int) -> dict[str, float]:
    """Nats per note spent on each event kind over ``names`` (``notes``: the set's common note count)."""
    total: dict[str, float] = {}
    for n in names:
        for kind, nll in scores[n][3].items():
            total[kind] = total.get(kind, 0.0) + nll
    return {k: v / notes for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def compare(new: dict, old: dict, names: list[str], seed: int = 0, draws: int = 2000) -> dict:
    """The numbers of one set of pieces (see the module docstring)."""
    notes = np.array([max(new[n][2], old[n][2]) for n in names], np.float64)
    a = np.array([new[n][0] for n in names])
    b = np.array([old[n][0] for n in names])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(names), size=(draws, len(names)))
    diff = (a[idx].sum(1) - b[idx].sum(1)) / notes[idx].sum(1)
    return {"pieces": len(names), "notes": int(notes.sum()),
            "new_by_kind": by_kind(new, names, int(notes.sum())), "old_by_kind": by_kind(old, names, int(notes.sum())),
            "new_events": int(sum(new[n][1] for n in names)), "old_events": int(sum(old[n][1] for n in names)),
            "new_notes_kept": int(sum(new[n][2] for n in names)), "old_notes_kept": int(sum(old[n][2] for n in names)),
            "new_nll_note": float(a.sum() / notes.sum()), "old_nll_note": float(b.sum() / notes.sum()),
            "new_nll_event": float(a.sum() / sum(new[n][1] for n in names)),
            "old_nll_event": float(b.sum() / sum(old[n][1] for n in names)),
            "pieces_new_better": int(np.sum(a / notes < b / notes)),
            "new_forbidden": int(sum(new[n][4] for n in names)), "old_forbidden": int(sum(old[n][4] for n in names)),
            "diff_ci": [float(x) for x in np.percentile(diff, [2.5, 97.5])]}


def report(result: dict, command: str) -> str:
    masks = ("Masks on: each model with the sampler's well-formedness rules (`evaluate.piece_scores(masks=True)`); "
             f"events they forbid, scored without them: new {result['sets']['all']['new_forbidden']}, old "
             f"{result['sets']['all']['old_forbidden']}." if result.get("masks") else "Masks off: each model's own "
             "distribution.")
    lines = [f"Generated by `{command}`. {masks}", "",
             "| test pieces | pieces | notes | new: nats/note | old: nats/note | new − old, 95% CI | new better on "
             "| new: nats/event | old: nats/event |", "|---|---|---|---|---|---|---|---|---|"]
    for label, r in result["sets"].items():
        lines.append(f"| {label} | {r['pieces']} | {r['notes']} | {r['new_nll_note']:.3f} | {r['old_nll_note']:.3f} "
                     f"| {r['new_nll_note'] - r['old_nll_note']:+.3f} [{r['diff_ci'][0]:+.3f}, {r['diff_ci'][1]:+.3f}] "
                     f"| {r['pieces_new_better']} of {r['pieces']} | {r['new_nll_event']:.3f} "
                     f"| {r['old_nll_event']:.3f} |")
    r = result["sets"]["unseen by both"]
    kinds = list(dict.fromkeys([*r["new_by_kind"], *r["old_by_kind"]]))
    lines += ["", "Nats per note by event kind, test pieces unseen by both (the common note count):", "",
              "| event kind | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds),
              "| new | " + " | ".join(f"{r['new_by_kind'].get(k, 0.0):.3f}" for k in kinds) + " |",
              "| old | " + " | ".join(f"{r['old_by_kind'].get(k, 0.0):.3f}" for k in kinds) + " |"]
    if result.get("pieces"):
        rows = sorted(result["pieces"].items(), key=lambda kv: -(kv[1]["new_nats"] - kv[1]["old_nats"]))
        lines += ["", "Test pieces unseen by both, by the new model's excess nats (new − old, total), largest first:",
                  "", "| piece | voices | notes | new: nats/note | old: nats/note | VOICE: nats/note | excess, share "
                  "of the set's |", "|---|---|---|---|---|---|---|"]
        excess = sum(p["new_nats"] - p["old_nats"] for _, p in rows)
        for name, p in rows:
            share = f"{100 * (p['new_nats'] - p['old_nats']) / excess:+.0f}%" if excess else "-"
            lines.append(f"| {name} | {p['voices']} | {p['notes']} | {p['new_nats'] / p['notes']:.2f} | "
                         f"{p['old_nats'] / p['notes']:.2f} | {p['new_voice_nats'] / p['notes']:.2f} | {share} |")
    lines += ["", f"New: `{result['new']}` ({result['new_split']}); old: `{result['old']}` ({result['old_split']}). "
              f"Of the new model's {result['sets']['all']['pieces']} test pieces, the old one trained on "
              f"{result['old_trained_on']}. Notes per set: the most either encoding keeps (the old encoding keeps "
              f"{result['sets']['all']['old_notes_kept']} of the {result['sets']['all']['notes']} notes of all the "
              f"test pieces, the new one {result['sets']['all']['new_notes_kept']})."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new", required=True, metavar="BUNDLE@CORPUS")
    parser.add_argument("--old", required=True, metavar="BUNDLE@CORPUS")
    parser.add_argument("--out", default=str(ROOT / "docs" / "quality.md"))
    parser.add_argument("--json", default=None)
    parser.add_argument("--masks", action="store_true", help="score with the sampler's well-formedness rules on")
    parser.add_argument("--style", default=None, metavar="NAME",
                        help="a --new bundle with styles: its test pieces of this style only")
    args = parser.parse_args(argv)
    new_bundle, new_data, new_parts = piece_table(*parse_spec(args.new), args.style)
    old_bundle, old_data, old_parts = piece_table(*parse_spec(args.old))
    test = sorted(n for n, p in new_parts.items() if p == "test")
    if not test:
        raise SystemExit(f"compare_default: {parse_spec(args.new)[0]} has no test pieces"
                         + (f" of style {args.style!r}" if args.style else ""))
    missing = [n for n in test if n not in old_parts]
    if missing:
        raise SystemExit(f"compare_default: {len(missing)} test pieces are not in the old corpus, e.g. {missing[0]}")
    unseen = [n for n in test if old_parts[n] != "train"]
    new_scores = score(new_bundle, new_data, set(test), args.masks)
    old_scores = score(old_bundle, old_data, set(test), args.masks)
    result = {"new": parse_spec(args.new)[0], "old": parse_spec(args.old)[0], "masks": args.masks,
              "new_split": f"split_version {new_bundle.train_config.split_version}",
              "old_split": f"split_version {old_bundle.train_config.split_version}",
              "old_trained_on": len(test) - len(unseen),
              "sets": {"all": compare(new_scores, old_scores, test),
                       "unseen by both": compare(new_scores, old_scores, unseen)},
              "pieces": {n: {"notes": max(new_scores[n][2], old_scores[n][2]), "voices": new_scores[n][5],
                             "new_nats": new_scores[n][0], "old_nats": old_scores[n][0],
                             "new_voice_nats": new_scores[n][3].get("VOICE", 0.0)} for n in unseen}}
    four = [n for n in unseen if new_scores[n][5] <= 4]
    if four and len(four) < len(unseen):
        result["sets"]["unseen by both, <= 4 voices"] = compare(new_scores, old_scores, four)
    command = "python scripts/compare_default.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = report(result, command)
    print(text)
    from report_default import replace_marked

    out = Path(args.out)
    doc = out.read_text() if out.exists() else ""
    marker = "default-vs-old-masked" if args.masks else "default-vs-old"
    if f"<!-- report:{marker} -->" not in doc:
        title = "with the sampler's masks" if args.masks else "against the one it replaced"
        doc += f"\n## The shipped model {title}\n\n<!-- report:{marker} -->\n<!-- /report -->\n"
    out.write_text(replace_marked(doc, marker, text))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
