"""The report of ``musicgen.evaluate.evaluate`` for people and files: the terminal table (``format_table``), JSON
(``to_json``, ``write_json``; non-finite numbers as null) and histogram PNGs (``write_plots``). Formats a finished
result dict; scores nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from musicgen import stats
from musicgen.errors import UsageError


SAMPLING_LABELS = {
    "raw": "temperature 1, no top-k/top-p, EOS allowed, no note masks, no forced NOTE_OFF (the model's own "
           "distribution)",
    "rules": "`musicgen sample` defaults: temperature 1, EOS off, note-consistency masks, NOTE_OFF forced after 8 "
             "quarter notes",
}


# ------------------------------------------------------------------------------------------------------ the table
_FEATURE_NAMES = {"pitch_range": "pitch range (semitones)", "pitch_classes_used": "pitch classes used",
                  "pitch_class_entropy": "pitch-class entropy (bits)", "polyphony": "polyphony (notes)",
                  "notes_per_beat": "notes per beat", "pitch_in_scale_rate": "pitch-in-scale rate",
                  "pitch_class_histogram": "pitch-class histogram", "ioi_histogram": "inter-onset histogram",
                  "on_beat_onset_share": "on-beat onset share", "long_note_share": "notes >= 4 beats (share)",
                  "chord_onset_share": "notes in 3+ note onsets"}


def _num(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, spec)


def _score_lines(result: dict) -> list[str]:
    lines = [f"{'':28}{'nats/event':>11}{'bits/event':>11}{'perplexity':>11}{'accuracy':>10}"]
    for key, row in result["scores"].items():
        name = {"model": "model", "unigram": "unigram (add-one)"}.get(key) or \
            f"Kneser-Ney {row['order']}-gram, D {row['discount']:g}"
        lines.append(f"{name:28}{_num(row['nll_nats'], '.4f'):>11}{_num(row['nll_bits'], '.4f'):>11}"
                     f"{_num(row['perplexity'], '.2f'):>11}{_num(row['accuracy'], '.3f'):>10}")
    model = result["scores"]["model"]
    if "nll_nats_per_note" in model:
        lines.append(f"model per note: {_num(model['nll_nats_per_note'], '.4f')} nats, "
                     f"{_num(model['nll_bits_per_note'], '.4f')} bits over {model['notes']} notes "
                     f"({_num(model['events_per_note'], '.2f')} scored events per note)")
    b, sp = result.get("baselines"), result["split"]
    if b is None:
        return lines + ["baselines not fitted"]
    lines.append(f"baselines fit on the {sp['train']} training pieces at every transposition within "
                 f"±{b['transpose']} semitones the pitch range allows ({b['train_pieces']} pieces, "
                 f"{b['train_events']} events)")
    sel = b.get("selection")
    if sel:
        where = "valid split" + (" (legacy split: the same pieces as test)" if sp["legacy"] else "")
        lines.append(f"Kneser-Ney order {sel['orders'][0]}..{sel['orders'][-1]} and discount "
                     f"{{{', '.join(f'{d:g}' for d in sel['discounts'])}}} chosen on the {where}")
        if result["scores"]["kneser_ney"]["order"] == sel["orders"][-1]:
            lines.append("the best order is the highest tried: a higher --max-order may score lower")
        lines.append(f"model vs the best n-gram: {100 * result['margin']:.1f}% lower NLL")
    return lines


def _mean_sd(row: dict, side: str) -> str:
    return f"{_num(row[side + '_mean'], '.2f')} ± {_num(row[side + '_std'], '.2f')}"


def _sample_lines(result: dict) -> list[str]:
    s, sp = result["samples"], result["split"]
    sets = s["sets"]
    lines = ["", f"samples: {s['num_samples']} x {s['length']} events per set, seed {s['seed']}, vs the "
                 f"{sp[sp['name']]} {sp['name']} pieces (mean ± sd; overlap 1 = same distribution)"]
    lines += [f"  {name:6}= {SAMPLING_LABELS.get(name, '')}" for name in sets]
    lines.append(f"{'':28}" + "".join(f"{name:>16}" for name in sets) + f"{sp['name']:>16}"
                 + "".join(f"{'overlap ' + name:>15}" for name in sets))
    first = next(iter(sets.values()))["stats"]
    for key, row in first.items():
        if "generated_mean" in row:
            cells = "".join(f"{_mean_sd(v['stats'][key], 'generated'):>16}" for v in sets.values())
            real = _mean_sd(row, "real")
        else:
            cells, real = " " * 16 * len(sets), ""
        overlaps = "".join(f"{_num(v['stats'][key]['overlap'], '.3f'):>15}" for v in sets.values())
        lines.append(f"{_FEATURE_NAMES.get(key, key):28}{cells}{real:>16}{overlaps}")
    for name, v in sets.items():
        mem, two = v["memorization"], v["two_sample"]
        lines.append(f"{name}: {_num(v['events_mean'], '.0f')} events per sample on average (BOS and EOS included)")
        if mem is not None:
            lines.append(f"{name}: longest run shared with training: median {_num(mem['sample_longest_median'], '.0f')}"
                         f" events ({sp['name']} pieces: {_num(mem['heldout_longest_median'], '.0f')}); copying >= "
                         f"{mem['copy_n']} events: {_num(100 * mem['copy_rate'], '.0f')}% of samples "
                         f"({sp['name']} pieces: {_num(100 * mem['heldout_copy_rate'], '.0f')}%)")
        fb = v.get("first_beats")
        if fb is not None:
            lo, hi = fb["pitch_lo"], fb["pitch_hi"]
            lines.append(f"{name}: notes outside the training pieces' pitch range {lo}-{hi} (0.1-99.9th percentile): "
                         f"{_num(100 * fb['first_share'], '.1f')}% of those starting in the first {fb['beats']} beats "
                         f"({fb['first_notes']} notes), {_num(100 * fb['later_share'], '.2f')}% later")
        if two is None:
            pass
        elif "error" in two:
            lines.append(f"{name}: two-sample test not run: {two['error']}")
        else:
            lines.append(f"{name}: two-sample classifier accuracy {_num(two['accuracy'], '.3f')} "
                         f"[{_num(two['ci_low'], '.3f')}, {_num(two['ci_high'], '.3f')}] on excerpts of "
                         f"{two['length']} events ({two['n_generated']} generated, {two['n_real']} real; "
                         f"0.5 = indistinguishable)")
    return lines


def format_table(result: dict) -> str:
    """The result of ``evaluate`` as plain text for the terminal."""
    m, c, sp = result["model"], result["corpus"], result["split"]
    legacy = " (legacy split: valid = test = the pieces held out in training)" if sp["legacy"] else ""
    lines = [f"{m['path']} ({m['cell']} {m['layers']}x{m['units']}) on {c['path']}: split {sp['name']}{legacy}",
             f"pieces: {sp['train']} train, {sp['valid']} valid, {sp['test']} test; evaluated: {sp[sp['name']]} "
             f"{sp['name']} pieces, {result['scores']['model']['events']} events", ""]
    lines += _score_lines(result)
    st = result.get("start")
    if st is not None:
        origin = "the bundle's start state" if st["has_start_state"] else "zeros (no start state in this bundle)"
        lines.append(f"start of a piece: first {st['first']} events {_num(st['nll_first_start'], '.4f')} nats/event "
                     f"from {origin} ({_num(st['nll_first_zero'], '.4f')} from zeros); later events "
                     f"{_num(st['nll_later'], '.4f')} (ratio {_num(st['first_over_later'], '.2f')})")
    if "samples" in result:
        lines += _sample_lines(result)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------ files
def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def to_json(result: dict) -> str:
    """The report as JSON text; non-finite numbers become null."""
    return json.dumps(_json_safe(result), indent=2, allow_nan=False) + "\n"


def write_json(result: dict, path: str | Path) -> Path:
    """Write ``result`` as JSON atomically (temporary file, then rename)."""
    from musicgen.safeio import atomic_write_text

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, to_json(result))
    return path


def write_plots(result: dict, out_dir: str | Path) -> list[Path]:
    """PNGs in ``out_dir``: ``pitch_class_histogram.png`` and ``ioi_histogram.png`` (pooled shares, each sample set
    vs the evaluated pieces) and ``features.png`` (per-piece distribution of each scalar feature)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "samples" not in result:
        raise UsageError("plot: no statistics to plot (num_samples is 0)")
    sets, real_name = result["samples"]["sets"], result["split"]["name"]
    labels = list(sets) + [real_name]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for key, ticks in (("pitch_class_histogram", stats.PITCH_CLASS_NAMES), ("ioi_histogram", stats.IOI_LABELS)):
        rows = [v["stats"][key]["generated"] for v in sets.values()] + [next(iter(sets.values()))["stats"][key]["real"]]
        fig, ax = plt.subplots(figsize=(8, 3.5))
        x, width = np.arange(len(ticks)), 0.8 / len(rows)
        for i, (label, row) in enumerate(zip(labels, rows)):
            ax.bar(x + (i - (len(rows) - 1) / 2) * width, row, width, label=label)
        ax.set_xticks(x, ticks)
        ax.set_ylabel("share")
        unit = " (beats)" if key == "ioi_histogram" and result["corpus"]["time_mode"] == "beat" else ""
        overlaps = ", ".join(f"{n} {_num(v['stats'][key]['overlap'], '.3f')}" for n, v in sets.items())
        ax.set_title(f"{_FEATURE_NAMES[key]}{unit} — overlap {overlaps}")
        ax.legend()
        written.append(_save_figure(fig, out / f"{key}.png"))
        plt.close(fig)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, key in zip(axes.ravel(), stats.SCALAR_FEATURES):
        rows = [v["stats"][key]["generated_values"] for v in sets.values()]
        rows.append(next(iter(sets.values()))["stats"][key]["real_values"])
        values = [[v for v in r if v is not None and math.isfinite(v)] for r in rows]
        ax.hist(values, bins=12, weights=[np.full(len(v), 1 / max(len(v), 1)) for v in values], label=labels)
        ax.set_title(_FEATURE_NAMES[key], fontsize=9)
        ax.set_ylabel("share of pieces", fontsize=8)
    axes[0, 0].legend(fontsize=8)
    written.append(_save_figure(fig, out / "features.png"))
    plt.close(fig)
    return written


def _save_figure(fig, path: Path) -> Path:
    from musicgen.safeio import atomic_path

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path
