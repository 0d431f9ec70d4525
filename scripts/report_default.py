"""Evaluate the shipped model and rewrite the numbers the READMEs quote about it.

    python scripts/report_default.py [--model trained/default] [--corpus data/bach] [--num-samples 64] [--save]

Runs ``musicgen.evaluate.evaluate`` once and replaces the text between marker comments (``<!-- report:NAME -->`` …
``<!-- /report -->``), settings stated beside every number:

- trained/default/README.md ``default-evaluation``: the held-out score paragraph and the full evaluation table;
- README.md ``default-summary`` (quick start) and ``default-evaluating`` ("Evaluating a model"): held-out NLL, the
  margin over the best Kneser-Ney baseline and the two-sample accuracy.

``--json PATH`` also writes the report; ``--save`` writes MODEL/evaluation.json with its checksum in bundle.json.
``--from-saved`` rewrites the same text from that saved MODEL/evaluation.json instead of evaluating again (a wording
change, without scoring the test split twice); the command it quotes is the one the saved numbers came from.
Paths are relative to the repository root.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 118


def replace_marked(text: str, name: str, body: str) -> str:
    """``text`` with the lines between ``<!-- report:NAME -->`` and the next ``<!-- /report -->`` replaced by
    ``body``; the markers stay. Raises ``ValueError`` if the opening marker is missing, repeated or never closed."""
    opening = f"<!-- report:{name} -->"
    found = [m.start() for m in re.finditer(re.escape(opening), text)]
    if len(found) != 1:
        raise ValueError(f"{opening}: expected exactly one, found {len(found)}")
    start = found[0] + len(opening)
    end = text.find("<!-- /report -->", start)
    if end < 0 or text.find("<!-- report:", start, end) >= 0:
        raise ValueError(f"{opening}: no <!-- /report --> before the next marker")
    return text[:start] + "\n" + body.strip("\n") + "\n" + text[end:]


def _wrap(text: str) -> str:
    return "\n".join(textwrap.wrap(text, WIDTH, break_on_hyphens=False, break_long_words=False))


def settings_text(result: dict, command: str) -> str:
    """The settings every number was measured with, in one sentence."""
    sp, s = result["split"], result.get("samples")
    legacy = ", a legacy split: valid = test" if sp["legacy"] else ""
    pieces = (f"{sp['evaluated']} pieces of style {sp['style']}, of {sp[sp['name']]}" if sp.get("style")
              else f"{sp[sp['name']]} pieces")
    out = f"`{command}`: {sp['name']} split ({pieces}{legacy})"
    if s:
        out += (f", {s['num_samples']} samples × {s['length']} events per set, seed {s['seed']}, raw = temperature 1 "
                f"without masks, rules = `musicgen sample` defaults")
    return out


def _two_sample(result: dict, name: str) -> str | None:
    two = result.get("samples", {}).get("sets", {}).get(name, {}).get("two_sample")
    if not two or "accuracy" not in two:
        return None
    return f"{two['accuracy']:.2f} (95% CI {two['ci_low']:.2f}–{two['ci_high']:.2f})"


def _kn_text(result: dict) -> str:
    kn, b = result["scores"]["kneser_ney"], result["baselines"]
    return (f"the best Kneser-Ney n-gram ({kn['order']}-gram, D {kn['discount']:g}, fit on the training pieces at every "
            f"transposition within ±{b['transpose']}, order and discount chosen on the valid split)")


def summary_paragraph(result: dict, command: str) -> str:
    """README.md quick start: held-out NLL, margin, two-sample accuracy (what ``musicgen sample`` writes by default,
    then raw samples)."""
    model, kn = result["scores"]["model"], result["scores"]["kneser_ney"]
    text = (f"Held out: {model['nll_nats']:.2f} nats/event, {100 * result['margin']:.0f}% below {_kn_text(result)} "
            f"at {kn['nll_nats']:.2f}.")
    rules, raw = _two_sample(result, "rules"), _two_sample(result, "raw")
    if rules:
        text += (f" A classifier tells `musicgen sample`'s samples (its defaults) from real excerpts with accuracy "
                 f"{rules} (0.5 = indistinguishable)")
        text += f"; raw samples (temperature 1, no masks) {raw}." if raw else "."
    elif raw:
        text += f" A classifier tells raw samples from real excerpts with accuracy {raw} (0.5 = indistinguishable)."
    return _wrap(text + f" Measured by {settings_text(result, command)}.")


def command_of(result: dict) -> str:
    """The ``musicgen evaluate`` command line a report's numbers come from, read off the report itself."""
    s = result.get("samples") or {}
    sampled = (f" --num-samples {s['num_samples']} --length {s['length']} --seed {s['seed']}" if s
               else " --num-samples 0")
    style = result["split"].get("style")
    return (f"musicgen evaluate {result['model']['path']} {result['corpus']['path']} --split {result['split']['name']}"
            f"{' --style ' + style if style else ''}{sampled} --max-order "
            f"{max(result['baselines']['selection']['orders'])}")


def evaluating_paragraph(result: dict, command: str) -> str:
    """README.md "Evaluating a model": the default model's numbers, both sample sets."""
    model, kn, uni = (result["scores"][k] for k in ("model", "kneser_ney", "unigram"))
    text = (f"The shipped default scores {model['nll_nats']:.3f} nats/event (accuracy {model['accuracy']:.3f}) on "
            f"{model['events']} events; {_kn_text(result)} scores {kn['nll_nats']:.3f} "
            f"(the model is {100 * result['margin']:.0f}% below it), the unigram {uni['nll_nats']:.3f}.")
    for name in result.get("samples", {}).get("sets", {}):
        acc = _two_sample(result, name)
        text += f" Two-sample accuracy, {name} samples: {acc}." if acc else f" Two-sample test ({name}): not run."
    return _wrap(text + f" Measured by {settings_text(result, command)}.")


def evaluation_section(result: dict, command: str) -> str:
    """trained/default/README.md: the score paragraph and the full table of ``evaluate.format_table``."""
    from musicgen.evaluate_report import format_table

    model = result["scores"]["model"]
    trained = result["model"].get("trained_val_nll")
    text = (f"**Evaluation** ({settings_text(result, command)}): **{model['nll_nats']:.3f} nats/event** "
            f"({model['nll_bits']:.2f} bits, perplexity {model['perplexity']:.2f}, next-event accuracy "
            f"{model['accuracy']:.3f}) on {model['events']} events; {_kn_text(result)} scores "
            f"{result['scores']['kneser_ney']['nll_nats']:.3f}, so the model is {100 * result['margin']:.0f}% below it.")
    if trained is not None:
        text += f" Training's own validation (`metrics.json`) said {trained:.3f}."
    return _wrap(text) + "\n\n```text\n" + format_table(result) + "\n```"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", default="trained/default")
    parser.add_argument("--corpus", default="data/bach", help="music folder or token cache the model trained on")
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--num-samples", type=int, default=64)
    parser.add_argument("--length", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-order", type=int, default=8)
    parser.add_argument("--json", default=None, help="also write the JSON report here")
    parser.add_argument("--save", action="store_true", help="also write MODEL/evaluation.json (checksummed)")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--model-readme", default=None, help="default: MODEL/README.md")
    parser.add_argument("--style", default=None, metavar="NAME",
                        help="a bundle trained with styles: score the pieces of this style (musicgen evaluate --style)")
    parser.add_argument("--from-saved", action="store_true",
                        help="rewrite the READMEs from MODEL/evaluation.json (written by --save) without evaluating")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from musicgen import evaluate_report as report
    from musicgen.bundle import load_bundle, write_bundle_file

    if args.from_saved:
        saved = Path(args.model) / "evaluation.json"
        if not saved.is_file():
            print(f"--from-saved: {saved} does not exist; run with --save first", file=sys.stderr)
            return 2
        load_bundle(args.model)  # the checksums in bundle.json, evaluation.json's among them
        result = json.loads(saved.read_text())
    else:
        from musicgen import evaluate as ev

        result = ev.evaluate(args.model, args.corpus, split=args.split, num_samples=args.num_samples,
                             sample_length=args.length, seed=args.seed, max_order=args.max_order, style=args.style,
                             log=lambda msg: print(f"report: {msg}", file=sys.stderr, flush=True))
    command = command_of(result)
    print(report.format_table(result))
    if args.json:
        report.write_json(result, args.json)
    if args.save and not args.from_saved:
        write_bundle_file(args.model, "evaluation.json", report.to_json(result))
    from musicgen.safeio import atomic_write_text

    model_readme = Path(args.model_readme or Path(args.model) / "README.md")
    edits = {model_readme: [("default-evaluation", evaluation_section(result, command))],
             Path(args.readme): [("default-summary", summary_paragraph(result, command)),
                                 ("default-evaluating", evaluating_paragraph(result, command))]}
    for path, parts in edits.items():
        text = path.read_text()
        for name, body in parts:
            text = replace_marked(text, name, body)
        atomic_write_text(path, text)
        print(f"rewrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
