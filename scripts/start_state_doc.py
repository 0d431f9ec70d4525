"""Write docs/start_state.md from the JSON reports of scripts/start_state_report.py in docs/start_state/.

    python scripts/start_state_doc.py        # after the report runs listed in the document
"""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
RUNS = [  # (report file, what the model is, the start its samples use)
    ("pal-gru.json", "Palestrina, GRU, `musicgen train pal --epochs 3` (stateful, pieces laid end to end)", "start"),
    ("pal-aligned.json", "Palestrina, GRU, 3 epochs, option A: pieces start at window starts, state zeroed there",
     "zero"),
    ("default.json", "trained/default (Bach chorales, 2×256 GRU, 60 epochs)", "start"),
]
STARTS = [("zero", "zeros (the old start)"), ("carried", "carried: after the previous piece + EOS"),
          ("start", "start state (mean state after EOS)")]


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def section(name: str, title: str, r: dict, start: str) -> list[str]:
    nll = r["nll"]
    out = [f"### {title}", "", f"`{name}`: {r['heldout_pieces']} held-out pieces (the bundle's own split), "
           f"{r['train_pieces']} training pieces; start state "
           f"{'from the bundle' if r['start_state_in_bundle'] else 'computed by the script from the training pieces'}"
           ".", "",
           "NLL (nats/event) by target position, held-out pieces:", "",
           "| fed BOS from | events 1-4 | 5-8 | 9-16 | 17-32 | first 32 | later (33+) | first 32 / later |",
           "|---|---|---|---|---|---|---|---|"]
    later = nll["zero"]["later"]
    for key, label in STARTS:
        row = nll[key]
        b = row["bands"]
        out.append(f"| {label} | {fmt(b['1-4'])} | {fmt(b['5-8'])} | {fmt(b['9-16'])} | {fmt(b['17-32'])} | "
                   f"**{fmt(row['first'])}** | {fmt(row.get('later'))} | {fmt(row['first'] / later, '.2f')} |")
    s = r["sampling"]
    lo, hi = r["pitch_range"]
    out += ["", f"Samples: `-n {s['samples']} --length {s['length']} --seed {s['seed']}` (temperature 1, defaults); "
            f"corpus pitch range (0.1–99.9th percentile of training notes) MIDI {lo}–{hi}:", "",
            "| sampling starts from | notes in first 4 beats | outside range | notes after | outside range |",
            "|---|---|---|---|---|"]
    for key, label in (("zero", "zeros (before)"), ("start", "start state (after)")):
        m = s[key]
        out.append(f"| {label} | {m['first_notes']} | **{100 * m['first_share']:.1f}%** | {m['later_notes']} | "
                   f"{100 * m['later_share']:.2f}% |")
    if "first_note" in r:
        f = r["first_note"][start]
        label = "the start state" if start == "start" else "zeros (this model's start)"
        out += ["", f"The first NOTE_ON of a piece ({f['pieces']} pieces) costs {f['model_nll']:.2f} nats from "
                f"{label}; the training pieces' first-pitch frequencies alone give {f['marginal_nll']:.2f} on the "
                f"held-out pieces. Without that one event the first-32 NLL is {f['first_without_it']:.3f}."]
    return out + [""]


def options(folder: Path) -> list[str]:
    """The comparison of the fixes, from pal-gru.json (C), pal-aligned.json (A) and pal-fitted.json."""
    c, a = (json.loads((folder / n).read_text()) for n in ("pal-gru.json", "pal-aligned.json"))
    fit = json.loads((folder / "pal-fitted.json").read_text())
    ca, cb = c["nll"]["start"], a["nll"]["zero"]
    rows = ["## Which fix", "",
            "| option (Palestrina, GRU 2×256, 3 epochs) | validation NLL (training's, from zeros) | first 32 | later | "
            "first 32 / later | first-4-beat notes out of range | training cost |", "|---|---|---|---|---|---|---|",
            f"| none (zeros) | {c['val_nll']:.4f} | {c['nll']['zero']['first']:.3f} | {c['nll']['zero']['later']:.3f} "
            f"| {c['nll']['zero']['first'] / c['nll']['zero']['later']:.2f} | "
            f"{100 * c['sampling']['zero']['first_share']:.1f}% | – |",
            f"| **C: mean state after EOS, in the bundle (kept)** | {c['val_nll']:.4f} | {ca['first']:.3f} | "
            f"{ca['later']:.3f} | {ca['first'] / ca['later']:.2f} | {100 * c['sampling']['start']['first_share']:.1f}% "
            f"| none (a few seconds of numpy after training) |",
            f"| A: pieces at window starts, state zeroed there | {a['val_nll']:.4f} | {cb['first']:.3f} | "
            f"{cb['later']:.3f} | {cb['first'] / cb['later']:.2f} | {100 * a['sampling']['zero']['first_share']:.1f}% "
            f"| padding: more steps per epoch (below) |",
            f"| C fitted: the start state fitted by Adam to the first 32 targets of the training pieces "
            f"({fit['steps']} steps, `scripts/start_state_fit.py`) | {c['val_nll']:.4f} | {fit['fitted']['first']:.3f} "
            f"| {fit['fitted']['later']:.3f} | {fit['fitted']['first'] / fit['fitted']['later']:.2f} | – | TensorFlow "
            f"after training |", ""]
    return rows


def main():
    folder = DOCS / "start_state"
    head = (DOCS / "start_state" / "HEAD.md").read_text().rstrip("\n").split("\n")
    lines = head + [""]
    for name, title, start in RUNS:
        path = folder / name
        if path.exists():
            lines += section(name, title, json.loads(path.read_text()), start)
    if all((folder / n).exists() for n in ("pal-gru.json", "pal-aligned.json", "pal-fitted.json")):
        lines += options(folder)
    tail = folder / "TAIL.md"
    if tail.exists():
        lines += tail.read_text().rstrip("\n").split("\n")
    (DOCS / "start_state.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {DOCS / 'start_state.md'}")


if __name__ == "__main__":
    main()
