"""Response latency of ``musicgen live`` on this CPU, with scripted MIDI ports (no hardware) and the real clock.

A scripted player plays a short phrase, waits for the answer to end, plays the next (``TurnTakingInput``). For each
exchange it measures, on ``time.perf_counter``:

    latency  the phrase's end (the pause's end, or the trigger key) → the first answered note_on sent, less the
             rest the model chose to open its answer with (the issue's "last note → first answered note, excluding
             the chosen wait")
    compute  encode the phrase + sample the answer + decode it (``Answer.compute_seconds``)
    timing   every message sent minus its scheduled time (origin + the model's time at the bpm)

Two triggers: ``pause`` (the answer is computed during the wait) and ``key`` (a trigger key: computed on the spot).

Usage: ``python benchmarks/live_latency.py [--model trained/default] [--exchanges 40] [--length 64] [--bpm 480]
[--untrained SPEC]``. ``--untrained plain`` or e.g. ``--untrained voices=4,voice_polyphony=1,meter,key=normalize``:
instead of the bundle's weights, seeded random ones of its sizes, with its tokenizer changed by SPEC (and context
inputs where SPEC adds meter/key), so a context bundle's cost can be set beside a plain one's before one is trained.
``--compare-compute N --untrained plain --untrained voices=4,meter,key=normalize``: no session; N answers to one
phrase per bundle (no carry), the bundles taking turns, so a loaded machine's drift hits them alike: the compute of
each (encode + sample + decode). Prints a Markdown table for docs/live.md. Goal (issue 16): p99 latency <= 50 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
from pathlib import Path

import mido
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from musicgen.bundle import load_bundle  # noqa: E402
from musicgen.live import LiveSettings, Responder  # noqa: E402
from musicgen.live_ports import RecordingOutput, TurnTakingInput  # noqa: E402
from musicgen.live_session import LiveSession, RealClock  # noqa: E402

TUNES = [[60, 62, 64, 65, 67], [67, 65, 64, 62, 60], [60, 64, 67, 72], [72, 71, 69, 67, 65, 64],
         [62, 65, 69, 67], [64, 62, 60, 59, 60]]
TRIGGER_KEY = 21


def untrained(like, spec: str, seed: int = 0):
    """A ``Bundle`` with ``like``'s model sizes, its tokenizer config changed by ``spec`` (``plain``, or comma-separated
    ``field`` / ``field=value`` items), context inputs for the result's meter/key, and N(0, 0.1) weights from
    ``default_rng(seed)``; logit biases favour notes (+2) and 6/12-step shifts (+3), so answers hold music."""
    from musicgen.bundle import Bundle
    from musicgen.context import context_sizes
    from musicgen.models import expected_weight_shapes
    from musicgen.tokenizer import Tokenizer

    changes = {}
    for item in (i for i in spec.split(",") if i not in ("", "plain")):
        name, _, value = item.partition("=")
        changes[name] = True if not value else int(value) if value.isdigit() else value
    tc = dataclasses.replace(like.tokenizer_config, **changes)
    tok = Tokenizer(tc)
    cfg = dataclasses.replace(like.model_config, vocab_size=tok.vocab_size, context=context_sizes(tc))
    rng = np.random.default_rng(seed)
    weights = {k: rng.normal(0, 0.1, shape).astype(np.float32) for k, shape in expected_weight_shapes(cfg).items()}
    bias = np.zeros(tok.vocab_size, np.float32)
    first, size = tok.ranges["NOTE_ON"]
    bias[first:first + 2 * size] = 2.0
    bias[[tok.token("TIME_SHIFT", 6), tok.token("TIME_SHIFT", 12)]] = 3.0
    weights["logits_bias"] = bias
    return Bundle(Path(f"untrained-{spec}"), {}, cfg, like.train_config, tc, weights, {})


def phrases(count: int, beat: float, key: bool) -> list:
    out = []
    for k in range(count):
        tune, events = TUNES[k % len(TUNES)], []
        for i, pitch in enumerate(tune):
            events += [(i * beat / 2, mido.Message("note_on", note=pitch, velocity=80)),
                       (i * beat / 2 + 0.4 * beat, mido.Message("note_off", note=pitch))]
        if key:
            events.append((len(tune) * beat / 2, mido.Message("note_on", note=TRIGGER_KEY, velocity=64)))
        out.append(events)
    return out


def measure(bundle, trigger: str, args) -> dict:
    clock = RealClock()
    settings = LiveSettings(bpm=args.bpm, wait=args.wait if trigger == "pause" else 0, length=args.length,
                            seed=args.seed, trigger_key=TRIGGER_KEY if trigger == "key" else None)
    out = RecordingOutput(clock)
    session = LiveSession(Responder(bundle, settings), None, out, clock)
    session.inport = TurnTakingInput(phrases(args.exchanges, 60.0 / args.bpm, trigger == "key"), clock,
                                     lambda: len(session.exchanges))
    exchanges = session.run(max_exchanges=args.exchanges)
    latency = np.array([ex.latency for ex in exchanges if ex.latency is not None]) * 1e3
    compute = np.array([ex.answer.compute_seconds for ex in exchanges]) * 1e3
    timing = np.array([sent - (ex.origin + offset) for ex in exchanges
                       for (sent, _), (offset, _) in zip(ex.sent, ex.answer.schedule)]) * 1e3
    events = np.array([len(ex.answer.tokens) for ex in exchanges])
    return dict(trigger=trigger, n=len(latency), latency=latency, compute=compute, timing=timing, events=events,
                speculative=sum(ex.speculative for ex in exchanges))


def compare_compute(bundles: dict, args) -> list[dict]:
    """``args.compare_compute`` answers per bundle to one phrase, the bundles taking turns: per bundle the compute
    (ms) and events of each answer."""
    from musicgen.live import PlayedNote

    beat = 60.0 / args.bpm
    notes = [PlayedNote(p, i * beat / 2, i * beat / 2 + 0.4 * beat, 80) for i, p in enumerate(TUNES[0])]
    responders = {name: Responder(b, LiveSettings(bpm=args.bpm, length=args.length, seed=args.seed, carry=False))
                  for name, b in bundles.items()}
    rows = {name: dict(bundle=name, compute=[], events=[]) for name in bundles}
    for k in range(args.compare_compute):
        for name, responder in responders.items():
            responder.exchanges = k  # answer k's seed
            answer = responder.respond(notes)
            rows[name]["compute"].append(answer.compute_seconds * 1e3)
            rows[name]["events"].append(len(answer.tokens))
    return [dict(r, compute=np.array(r["compute"]), events=np.array(r["events"])) for r in rows.values()]


def pct(a: np.ndarray) -> str:
    return " / ".join(f"{np.percentile(a, q):.1f}" for q in (50, 99)) + f" / {a.max():.1f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="trained/default")
    p.add_argument("--exchanges", type=int, default=40)
    p.add_argument("--length", type=int, default=64, help="events per answer")
    p.add_argument("--bpm", type=float, default=480.0, help="fast, so the run is short; latency does not depend on it")
    p.add_argument("--wait", type=float, default=2.0,
                   help="beats of silence that end a phrase (pause trigger); 2 beats at 480 bpm = 250 ms")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--untrained", action="append", default=None, metavar="SPEC",
                   help="seeded random weights of --model's sizes, its tokenizer changed by SPEC (see the doc); "
                        "repeatable with --compare-compute")
    p.add_argument("--compare-compute", type=int, default=0, metavar="N",
                   help="no session: N answers per bundle, the bundles taking turns; compute only")
    args = p.parse_args()
    like = load_bundle(args.model)
    specs = args.untrained or [None]
    bundles = {spec or args.model: like if spec is None else untrained(like, spec, args.seed) for spec in specs}
    if len(bundles) > 1 and not args.compare_compute:
        p.error("several --untrained need --compare-compute")
    bundle = next(iter(bundles.values()))
    compared = compare_compute(bundles, args) if args.compare_compute else None
    rows = [measure(bundle, trigger, args) for trigger in ("pause", "key")] if compared is None else []
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    options = (f"--compare-compute {args.compare_compute}" if compared is not None else
               f"--exchanges {args.exchanges} --wait {args.wait:g}")
    print(f"`python benchmarks/live_latency.py --model {args.model} {options} --length {args.length} --bpm "
          f"{args.bpm:g} --seed {args.seed}" + "".join(f" --untrained {s}" for s in args.untrained or [])
          + f"`: {bundle.model_config.cell} {bundle.model_config.layers}x{bundle.model_config.units}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the end "
          f"(shared machine), " + ("no session." if compared is not None else "real clock, scripted ports."))
    print()
    if compared is not None:
        print(f"| bundle | context inputs | vocabulary | answers | events per answer ({args.length} sampled + "
              f"closing note-offs) | compute p50 / p99 / max (ms) |")
        print("|---|---|---:|---:|---:|---|")
        for r, b in zip(compared, bundles.values()):
            print(f"| {r['bundle']} | {list(b.model_config.context) or 'none'} | {b.model_config.vocab_size} "
                  f"| {len(r['compute'])} | {int(np.median(r['events']))} | {pct(r['compute'])} |")
        return 0
    print("| trigger | answers | events per answer | latency p50 / p99 / max (ms) | compute p50 / p99 / max (ms) "
          "| timing error p50 / p99 / max (ms) |")
    print("|---|---:|---:|---|---|---|")
    for r in rows:
        how = f"computed during the wait: {r['speculative']}" if r["trigger"] == "pause" else "computed on the spot"
        print(f"| {r['trigger']} ({how}) | {r['n']} | {int(np.median(r['events']))} | {pct(r['latency'])} "
              f"| {pct(r['compute'])} "
              f"| {pct(r['timing'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
