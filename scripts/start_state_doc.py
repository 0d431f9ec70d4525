"""Write docs/start_state.md from the JSON reports of scripts/start_state_report.py in docs/start_state/.

    python scripts/start_state_doc.py        # after the report runs listed in the document
"""

import json
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
RUNS = [  # (report file, what the model is)
    ("pal-gru.json", "Palestrina, GRU, `musicgen train pal --epochs 3` (stateful, pieces laid end to end)"),
    ("pal-aligned.json", "Palestrina, GRU, 3 epochs, option A: pieces start at window starts, state zeroed there"),
    ("default.json", "trained/default (Bach chorales, 2×256 GRU, 60 epochs)"),
]
STARTS = [("zero", "zeros (the old start)"), ("carried", "carried: after the previous piece + EOS"),
          ("start", "start state (mean state after EOS)")]


def fmt(x, spec=".3f"):
    return "–" if x is None else format(x, spec)


def section(name: str, title: str, r: dict) -> list[str]:
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
    return out + [""]


def main():
    folder = DOCS / "start_state"
    head = (DOCS / "start_state" / "HEAD.md").read_text().rstrip("\n").split("\n")
    lines = head + [""]
    for name, title in RUNS:
        path = folder / name
        if path.exists():
            lines += section(name, title, json.loads(path.read_text()))
    tail = folder / "TAIL.md"
    if tail.exists():
        lines += tail.read_text().rstrip("\n").split("\n")
    (DOCS / "start_state.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {DOCS / 'start_state.md'}")


if __name__ == "__main__":
    main()
