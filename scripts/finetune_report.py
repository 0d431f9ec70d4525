"""Fine-tuned vs from scratch vs the base model on a small corpus the base never saw: writes docs/finetune.md.

    KERAS_BACKEND=jax nice -n 15 python scripts/finetune_report.py /work/data/palestrina40 \\
        --base trained/default --work /work/scratch/finetune/report --forgetting /work/data/bach

1. ``musicgen train CORPUS --init-from BASE`` (fine-tuned: the fine-tuning defaults, lr 5e-4, patience 3),
   ``musicgen train CORPUS`` with the base's cell and sizes (from scratch: lr 2e-3, patience 4) and, unless
   ``--no-lr-check``, ``--init-from BASE --lr 2e-3`` (fine-tuned at the from-scratch rate), all with the same recipe
   otherwise (``RECIPE``: epochs, batch, BPTT window, transposition, split fractions, seed), so the same split.
2. ``musicgen.evaluate`` of each and of the base itself (zero-shot), all on the fine-tuned bundle's split
   (``split_of``): the same test pieces, the same training pieces for the baselines and the copy check.
3. With ``--forgetting BASE_CORPUS`` (the corpus the base was trained on): each model's NLL on the base's own test
   pieces of it (``evaluate.model_scores``, no samples): how much of the base each run forgot.
4. The table (test NLL, two-sample accuracy with its 95% interval, copy rate, for both sample sets) goes to
   docs/finetune.md with the settings; every number in that file comes from this run.

A bundle already in WORK (bundle.json present) is reused, not retrained, and so is an evaluation already in
WORK/finetune_report.json; delete WORK to start afresh.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ["--epochs", "8", "--batch-size", "16", "--bptt", "64", "--transpose", "3", "--val-fraction", "0.15",
          "--test-fraction", "0.25", "--seed", "0", "--no-tensorboard", "--verbose", "2"]


def train(name: str, corpus: str, work: Path, extra: list[str]) -> tuple[Path, float, list[str]]:
    """Train ``work/name`` with ``RECIPE + extra`` unless it is there already; (bundle, seconds, command)."""
    out = work / name
    cmd = [sys.executable, "-m", "musicgen", "train", corpus, "--out", str(out), *RECIPE, *extra]
    if (out / "bundle.json").is_file():
        print(f"{name}: reusing {out}", flush=True)
        return out, float("nan"), cmd
    print(f"{name}: {' '.join(cmd[1:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out, time.perf_counter() - started, cmd


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("corpus", help="folder of music files the base never saw")
    p.add_argument("--base", default="trained/default", help="the base bundle")
    p.add_argument("--work", default="/work/scratch/finetune/report", help="folder for the trained bundles")
    p.add_argument("--num-samples", type=int, default=64, help="samples per sample set in the evaluation")
    p.add_argument("--doc", default=str(ROOT / "docs" / "finetune.md"))
    p.add_argument("--forgetting", default=None, metavar="BASE_CORPUS",
                   help="the base's own corpus: also score every model on the base's test pieces of it")
    p.add_argument("--no-lr-check", dest="lr_check", action="store_false",
                   help="skip the fine-tuning run at the from-scratch learning rate")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from musicgen import evaluate as ev
    from musicgen.evaluate_report import write_json
    from musicgen.bundle import load_bundle
    from musicgen.safeio import atomic_write_text

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    base = load_bundle(args.base)
    mc = base.model_config
    size = ["--cell", mc.cell, "--units", str(mc.units), "--layers", str(mc.layers),
            "--embedding-dim", str(mc.embedding_dim), "--dropout", str(mc.dropout)]
    runs = {"fine-tuned": train("finetuned", args.corpus, work, ["--init-from", args.base]),
            "from scratch": train("scratch", args.corpus, work, size)}
    if args.lr_check:
        runs["fine-tuned, lr 2e-3"] = train("finetuned-lr2e-3", args.corpus, work,
                                            ["--init-from", args.base, "--lr", "2e-3"])
    split_of = runs["fine-tuned"][0]
    saved = work / "finetune_report.json"
    old = json.loads(saved.read_text()) if saved.is_file() else {}
    rows, forgetting = {}, dict(old.get("forgetting", {}))
    for name, bundle in [(n, r[0]) for n, r in runs.items()] + [("base (zero-shot)", Path(args.base))]:
        if name in old.get("evaluations", {}) and old["evaluations"][name]["samples"]["num_samples"] == \
                args.num_samples:
            print(f"reusing the evaluation of {name}", flush=True)
            rows[name] = old["evaluations"][name]
        else:
            print(f"evaluating {name}", flush=True)
            rows[name] = ev.evaluate(bundle, args.corpus, split_of=split_of, num_samples=args.num_samples, seed=0,
                                     log=lambda msg: print(f"  {msg}", flush=True))
        if args.forgetting and name not in forgetting:
            forgetting[name] = base_test_nll(bundle, args.base, args.forgetting)
            print(f"  NLL on the base's test pieces of {args.forgetting}: {forgetting[name]['nll_nats']:.4f}")
    write_json({"runs": {n: {"command": r[2][1:], "seconds": r[1]} for n, r in runs.items()}, "evaluations": rows,
                   "forgetting": forgetting}, saved)
    args.forgetting_rows = forgetting
    atomic_write_text(args.doc, render(args, base, runs, rows))
    print(f"wrote {args.doc}")
    return 0


def base_test_nll(bundle, base: str, corpus: str) -> dict:
    """``evaluate.model_scores`` of ``bundle`` on the test part of the base's own split of ``corpus``."""
    from musicgen.bundle import load_bundle
    from musicgen.evaluate import model_scores
    from musicgen.split import bundle_split

    data, parts = bundle_split(load_bundle(base), corpus)
    return {**model_scores(load_bundle(bundle), parts.pieces("test", data.pieces)), "pieces": int(parts.test.size)}


def _f(value, spec=".3f") -> str:
    return "-" if value is None or value != value else format(value, spec)


def render(args, base, runs: dict, rows: dict) -> str:
    forget = getattr(args, "forgetting_rows", None) or {}
    first = next(iter(rows.values()))
    sp, kn = first["split"], first["scores"]["kneser_ney"]
    lines = [
        "# Fine-tuning on a small corpus the base never saw",
        "",
        f"Generated by `scripts/finetune_report.py {args.corpus} --base {args.base}"
        f"{' --forgetting ' + args.forgetting if args.forgetting else ''}` (KERAS_BACKEND="
        f"{os.environ.get('KERAS_BACKEND', 'tensorflow')}, {args.num_samples} samples x 512 events per set, seed 0). "
        "Do not edit by hand: rerun the script.",
        "",
        f"**Corpus**: `{args.corpus}`, {sp['train'] + sp['valid'] + sp['test']} pieces: the first 40 pieces of "
        "`musicgen corpus export palestrina --limit 40` (Palestrina masses; the base was trained on the Bach "
        f"chorales only). **Base**: `{args.base}` ({base.model_config.cell} {base.model_config.layers}x"
        f"{base.model_config.units}, validation NLL {_f(base.metrics.get('val_nll'), '.4f')} on its chorales).",
        "",
        f"**Split** (the fine-tuned bundle's, used for all four rows via `evaluate(..., split_of=...)` / "
        f"`musicgen evaluate --split-of`): {sp['train']} train, {sp['valid']} valid, {sp['test']} test pieces, by "
        "near-duplicate cluster, seed 0. Every row is scored on the same test pieces; the copy check and the "
        "Kneser-Ney baseline use the same training pieces.",
        "",
        f"**Recipe** (each training run): `{' '.join(RECIPE)}`; fine-tuned = `--init-from {args.base}` (lr 5e-4, "
        "patience 3, the base's tokenizer and model config); from scratch = the base's cell and sizes "
        "(lr 2e-3, patience 4).",
        "",
        "| model | test NLL (nats/event) | accuracy | two-sample acc., raw [95% CI] | two-sample acc., rules "
        "[95% CI] | copy rate raw / rules | best epoch / run | train s |" + (" base test NLL |" if forget else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if forget else ""),
    ]
    for name, r in rows.items():
        m, sets = r["scores"]["model"], r.get("samples", {}).get("sets", {})
        cells = []
        for s in ("raw", "rules"):
            two = sets.get(s, {}).get("two_sample") or {}
            cells.append(f"{_f(two.get('accuracy'))} [{_f(two.get('ci_low'))}, {_f(two.get('ci_high'))}]"
                         if "accuracy" in two else f"not run ({two.get('error', 'no samples')})")
        copy = " / ".join(f"{_f(100 * sets[s]['memorization']['copy_rate'], '.0f')}%" if s in sets and
                          sets[s].get("memorization") else "-" for s in ("raw", "rules"))
        run = runs.get(name)
        if run is not None:
            metrics = json.loads((run[0] / "metrics.json").read_text())
            epochs, secs = f"{metrics['best_epoch']} / {metrics['epochs_run']}", _f(metrics["wall_seconds"], ".0f")
        else:
            epochs, secs = "-", "-"
        lines.append(f"| {name} | {_f(m['nll_nats'], '.4f')} | {_f(m['accuracy'])} | {cells[0]} | {cells[1]} | "
                     f"{copy} | {epochs} | {secs} |" + (f" {_f(forget[name]['nll_nats'], '.4f')} |" if forget else ""))
    lines += [
        "",
        f"Kneser-Ney {kn['order']}-gram on the same training pieces (transposed ±3): {_f(kn['nll_nats'], '.4f')} "
        "nats/event on the test pieces.",
        "",
        "Two-sample accuracy: a classifier told generated from real test excerpts of 256 events; 0.5 = "
        "indistinguishable, lower is better. Copy rate: share of samples that share >= 32 consecutive events with "
        "a training piece. raw = the model's own distribution; rules = `musicgen sample` defaults "
        "(see docs/evaluation.md). Train s: wall seconds on a shared 2-core machine (three other trainings ran).",
    ]
    if forget:
        one = next(iter(forget.values()))
        lines += ["", f"Base test NLL: each model on the base's own test pieces of `{args.forgetting}` ({one['pieces']} "
                      f"pieces, {one['events']} events, the base's split): what fine-tuning forgot of the base's "
                      "corpus."]
    ft = runs.get("fine-tuned")
    if ft is not None:
        metrics = json.loads((ft[0] / "metrics.json").read_text())
        lines += ["", f"Before its first step the fine-tuning run scored the base at "
                      f"{_f(metrics.get('init_val_nll'), '.4f')} nats/event on the valid pieces; its best epoch "
                      f"reached {_f(metrics.get('val_nll'), '.4f')}."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
