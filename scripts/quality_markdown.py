"""Issue 13's goals and the markdown of ``scripts/quality_report.py``'s report: ``goals`` judges one row (a bundle's
numbers) against today's model, ``markdown`` writes the generated part of docs/quality.md (settings, split check, the
table, goals, medians with spread), ``seed_summary`` the median and range over sampling seeds. Pure functions of the
report dict; ``quality_report`` measures and calls them.
"""

from __future__ import annotations

import math
import re
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from musicgen import stats  # noqa: E402

OVERLAP_GOAL, SCALE_GOAL, SHARE_GOAL, TWO_SAMPLE_GOAL = 0.7, 0.02, 0.10, 0.70
STATISTICS = stats.SCALAR_FEATURES + tuple(stats.SHARE_FEATURES) + ("pitch_class_histogram", "ioi_histogram")
SHORT = {"pitch_range": "range", "pitch_classes_used": "PCs", "pitch_class_entropy": "PC entropy",
         "polyphony": "polyphony", "notes_per_beat": "notes/beat", "pitch_in_scale_rate": "in scale",
         "on_beat_onset_share": "on beat", "long_note_share": "long notes", "chord_onset_share": "chords",
         "pitch_class_histogram": "PC hist", "ioi_histogram": "IOI hist"}


# ---------------------------------------------------------------------------------------------------- goals
def _pass(ok: bool, text: str) -> str:
    return ("pass: " if ok else "**fail**: ") + text


def goals(row: dict, reference: dict | None) -> dict:
    """Issue 13's goals for one bundle: ``{goal: (passed or None, text)}``; the comparisons with today's model
    (``reference``) are ``None`` for the reference itself."""
    out = {}
    low = min(STATISTICS, key=lambda k: _finite(row["overlap"][k], -1.0))
    n_ok = sum(_finite(row["overlap"][k], -1.0) >= OVERLAP_GOAL for k in STATISTICS)
    worst = row["overlap"][low]
    out["overlap"] = (n_ok == len(STATISTICS), _pass(n_ok == len(STATISTICS), f"{n_ok} of {len(STATISTICS)} >= "
                      f"{OVERLAP_GOAL}; lowest {_f(worst, '.2f')} ({SHORT[low]})"))
    s, t = (row["spread"]["pitch_in_scale_rate"][k][0] for k in ("samples", "test"))
    out["scale"] = (abs(s - t) <= SCALE_GOAL, _pass(abs(s - t) <= SCALE_GOAL, f"{s:.3f} vs {t:.3f} ({s - t:+.3f})"))
    for key, goal in (("on_beat_onset_share", "on_beat"), ("long_note_share", "long_notes")):
        s, t = (row["pooled"][key][k] for k in ("samples", "test"))
        rel = s / t - 1 if t else math.nan
        ok = bool(abs(rel) <= SHARE_GOAL)
        out[goal] = (ok, _pass(ok, f"{100 * s:.1f}% vs {100 * t:.1f}% ({100 * rel:+.0f}% relative)"))
    two = row["two_sample"]
    if "accuracy" in two:
        ok = two["ci_high"] <= TWO_SAMPLE_GOAL
        out["two_sample"] = (ok, _pass(ok, f"upper end {two['ci_high']:.2f} ({two['ci_high'] - TWO_SAMPLE_GOAL:+.2f})"))
    else:
        out["two_sample"] = (False, f"**not run**: {two.get('error')}")
    ok = row["copy_rate"] <= row["heldout_copy_rate"]
    out["copy"] = (ok, _pass(ok, f"{100 * row['copy_rate']:.0f}% vs {100 * row['heldout_copy_rate']:.0f}%"))
    if reference is None or reference is row:
        out["two_sample_vs_today"] = out["nll_vs_today"] = (None, "(today's model)")
    else:
        a, b = two.get("accuracy", math.nan), reference["two_sample"].get("accuracy", math.nan)
        out["two_sample_vs_today"] = (a < b, _pass(a < b, f"{a:.3f} vs {b:.3f} ({a - b:+.3f})"))
        if row.get("common_group", [None]) == reference.get("common_group", [None]):
            a, b = row["nll_note_common"], reference["nll_note_common"]
            out["nll_vs_today"] = (a < b, _pass(a < b, f"{a:.3f} vs {b:.3f} nats/note ({a - b:+.3f})"))
        else:  # other test pieces: only each row's own per-note NLL compares, and loosely
            a, b = row["nll_note"], reference["nll_note"]
            out["nll_vs_today"] = (a < b, _pass(a < b, f"{a:.3f} vs {b:.3f} nats/note, own notes, other test "
                                                       f"pieces ({a - b:+.3f})"))
    return out


GOAL_TEXT = {"overlap": f"every statistic's overlap >= {OVERLAP_GOAL}",
             "scale": f"pitch-in-scale within {SCALE_GOAL} of the test pieces' (medians)",
             "on_beat": f"on-beat share of notes within {100 * SHARE_GOAL:.0f}% (relative) of the test pieces'",
             "long_notes": f"notes of >= 4 beats within {100 * SHARE_GOAL:.0f}% (relative) of the test pieces'",
             "two_sample": f"two-sample accuracy <= {TWO_SAMPLE_GOAL} (upper end of its 95% interval)",
             "two_sample_vs_today": "two-sample accuracy lower than today's model's",
             "copy": "copy rate no higher than the test pieces' own",
             "nll_vs_today": "test NLL per note (common note count) lower than today's model's"}


# ---------------------------------------------------------------------------------------------------- markdown
def _finite(x, default):
    return x if isinstance(x, (int, float)) and math.isfinite(x) else default


def _f(x, spec: str) -> str:
    return format(x, spec) if _finite(x, None) is not None else "-"


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, 118, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)


def _mi(q: list, spec: str) -> str:
    return f"{_f(q[0], spec)} [{_f(q[1], spec)}–{_f(q[2], spec)}]"


def markdown(report: dict) -> str:
    """The generated part of docs/quality.md: settings, split check, the table, goals, medians with spread. A report
    on the valid split says "valid" wherever the test split's says "test"."""
    text = _markdown(report)
    if report["settings"].get("split", "test") != "test":
        head, command, tail = text.partition(report["settings"]["command"])  # the command line stays as typed
        head, tail = (re.sub(r"\bTest\b", "Valid", re.sub(r"\btest\b", "valid", t)) for t in (head, tail))
        text = head + command + tail
    return text


def _accuracies(rows: list[dict]) -> list[float]:
    """The two-sample accuracies of the rows whose test ran."""
    return [r["two_sample"]["accuracy"] for r in rows if "accuracy" in r["two_sample"]]


def seed_summary(rows: list[dict]) -> list[str]:
    """Lines of a table of the rows named ``NAME s=SEED`` (``--seed`` with several seeds): per NAME, the median and
    range over its seeds of the two-sample accuracy and the copy rate (the NLL does not depend on the seed); [] when
    no bundle has rows for two seeds or more."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        base, sep, _ = r["name"].rpartition(" s=")
        if sep:
            groups.setdefault(base, []).append(r)
    if not groups or max(len(g) for g in groups.values()) < 2:
        return []
    lines = ["", "Across sampling seeds (median [min–max] over each bundle's rows):", "",
             "| bundle | seeds | two-sample acc | copy (test) | copy of the test pieces |", "|---|---|---|---|---|"]
    for base, group in groups.items():
        acc = _accuracies(group)
        copy, held = [100 * r["copy_rate"] for r in group], [100 * r["heldout_copy_rate"] for r in group]
        spread = [(f"{np.median(v):{spec}}{unit} [{min(v):{spec}}–{max(v):{spec}}]" if v else "-")
                  for v, spec, unit in ((acc, ".3f", ""), (copy, ".0f", "%"), (held, ".0f", "%"))]
        lines.append(f"| {base} | {', '.join(str(r['seed']) for r in group)} | " + " | ".join(spread) + " |")
    return lines


def recipe_summary(rows: list[dict]) -> list[str]:
    """Lines of a table of the bundles named ``RECIPE_wK`` (one recipe trained with weight seed K, e.g. ``held_w1``;
    rows per sampling seed ``RECIPE_wK s=S`` or one row each): per RECIPE, each weight seed's NLL per note and its
    median over sampling seeds of the two-sample accuracy and the copy rate, then their mean over the weight seeds. []
    when no recipe has two weight seeds. One training run cannot tell recipes apart by less than its seed spread."""
    recipes: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        bundle = r["name"].rpartition(" s=")[0] if " s=" in r["name"] else r["name"]
        if named := re.fullmatch(r"(.+)_w(\d+)", bundle):
            recipes.setdefault(named[1], {}).setdefault(named[2], []).append(r)
    if not recipes or max(len(w) for w in recipes.values()) < 2:
        return []
    lines = ["", _wrap("Across training (weight) seeds: each weight seed's NLL and its medians over sampling seeds, "
                       "then the mean over weight seeds (bundles named `RECIPE_wK`):"), "",
             "| recipe | weight seeds | nats/note | mean | two-sample acc | mean | copy | mean |",
             "|---|---|---|---|---|---|---|---|"]
    for recipe, weights in recipes.items():
        nll = [g[0]["nll_note"] for g in weights.values()]
        acc = [float(np.median(a)) if (a := _accuracies(g)) else math.nan for g in weights.values()]
        copy = [float(np.median([100 * r["copy_rate"] for r in g])) for g in weights.values()]
        cells = [(", ".join(f"{v:{spec}}{unit}" for v in vals), f"{np.mean(vals):{spec}}{unit}")
                 for vals, spec, unit in ((nll, ".3f", ""), (acc, ".3f", ""), (copy, ".0f", "%"))]
        lines.append(f"| {recipe} | {', '.join(weights)} | " + " | ".join(c for pair in cells for c in pair) + " |")
    return lines


def _markdown(report: dict) -> str:
    rows, s = report["rows"], report["settings"]
    split = report["split"]
    lines = [f"Command ({s['date']}, {s['wall_seconds']:.0f} s on a shared 2-core CPU):", "", "```bash",
             s["command"], "```", "",
             _wrap(f"Settings: the test split of each bundle (its own `train_config`: near-duplicate clusters, seed "
             f"{s['split_seed']}); samples at the `musicgen sample` defaults ({s['sampling']}), {s['num_samples']} "
             f"per bundle, seed {s['seed']}, as many events as the bundle's median test piece; two-sample excerpts of "
             f"{s['excerpt_notes']} notes on average (events per note of its test pieces); copy = >= {s['copy_n']} "
             f"consecutive events shared with a training piece (at every trained transposition), test pieces cut to "
             f"the samples' length. Today's model: `{report['reference']}`."), ""]
    if split["same"]:
        lines.append(_wrap(f"Test split: all bundles hold the same {split['pieces']} test pieces (compared by content "
                           f"key)."))
    else:
        by_path = split.get("by_path", {"differ": {}})
        lines.append(_wrap(f"**Test split differs** from `{rows[0]['name']}`'s {split['pieces']} pieces: " + ", ".join(
            f"`{n}` misses {a}, adds {b}" for n, (a, b) in split["differ"].items()) + " (content keys); by file "
            "name: " + (", ".join(f"`{n}` misses {a}, adds {b}" for n, (a, b) in by_path["differ"].items()) or
                         "the same pieces") + ". Such rows are each scored on their own unseen test pieces, but not "
            "on the same ones: their NLL differences include the difference between test sets."))
    if len(set(split.get("corpora", {}).values())) > 1:
        lines.append("")
        lines.append(_wrap("Corpora: " + ", ".join(f"`{n}` {c}" for n, c in split["corpora"].items()) + "."))
    lines += ["", "| bundle | encoding | events/note | NLL nats/event | nats/note | nats/note (common) | "
              "two-sample acc [95%] | copy (test) | " + " | ".join(SHORT[k] for k in STATISTICS) + " |",
              "|" + "---|" * (8 + len(STATISTICS))]
    for r in rows:
        two = r["two_sample"]
        acc = (f"{two['accuracy']:.3f} [{two['ci_low']:.2f}–{two['ci_high']:.2f}]" if "accuracy" in two else "-")
        lines.append(f"| {r['name']} | {r['encoding']} | {r['events_per_note']:.2f} | {r['nll_event']:.4f} | "
                     f"{r['nll_note']:.4f} | {r['nll_note_common']:.4f} | {acc} | {100 * r['copy_rate']:.0f}% ({100 * r['heldout_copy_rate']:.0f}%)"
                     f" | " + " | ".join(_f(r["overlap"][k], ".2f") for k in STATISTICS) + " |")
    lines += seed_summary(rows) + recipe_summary(rows)
    lines += ["", _wrap(f"NLL: of every test event after the first of each piece, from the bundle's start state. nats/note = "
              f"the total over the notes the bundle's own encoding keeps; (common) = the total over "
              f"{rows[0]['common_notes']} notes, the most any encoding keeps of these pieces, for every row that "
              f"shares them (an encoding that merges notes has fewer to predict, so the common count compares total "
              f"information); rows on other test pieces share a count among themselves ("
              + "; ".join(sorted({f"{r['common_notes']} notes: " + ", ".join(r["common_group"]) for r in rows}))
              + ")."),
              "", _wrap("Statistic columns: overlap of the samples' per-piece values with the test pieces' (KDE "
                        "overlapped area; histograms: pooled-histogram overlap), 1 = the same distribution."), "",
              "### Goals (issue 13)", "", "| goal | " + " | ".join(r["name"] for r in rows) + " |",
              "|---|" + "---|" * len(rows)]
    for key, text in GOAL_TEXT.items():
        lines.append(f"| {text} | " + " | ".join(r["goals"][key][1] for r in rows) + " |")
    lines += ["", "### Statistics: median [interquartile range] per piece", "",
              "| statistic | test pieces | " + " | ".join(r["name"] for r in rows) + " |", "|---|---|" + "---|" * len(rows)]
    for key in stats.SCALAR_FEATURES + tuple(stats.SHARE_FEATURES):
        spec = ".1f" if key in ("pitch_range", "pitch_classes_used") else ".3f"
        lines.append(f"| {key} | {_mi(rows[0]['spread'][key]['test'], spec)} | "
                     + " | ".join(_mi(r["spread"][key]["samples"], spec) for r in rows) + " |")
    for key in stats.SHARE_FEATURES:
        lines.append(f"| {key}, pooled over all notes | {_f(rows[0]['pooled'][key]['test'], '.3f')} | "
                     + " | ".join(_f(r["pooled"][key]["samples"], ".3f") for r in rows) + " |")
    lines += ["", "Per bundle:", ""] + [_wrap(
        f"- `{r['name']}` = `{r['path']}`: {r['events']} test events, {r['notes']} notes; samples of "
        f"{r['sample_length']} events ({_f(r['samples_events'], '.0f')} on average), two-sample excerpts of "
        f"{r['excerpt_length']} events ({r['two_sample'].get('n_generated', '-')} generated, "
        f"{r['two_sample'].get('n_real', '-')} real)", "  ") for r in rows]
    return "\n".join(lines)
