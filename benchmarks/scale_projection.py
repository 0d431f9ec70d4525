"""Lakh-scale ingest time on C idle cores, projected from the CPU seconds that ``benchmarks/scale.py`` measured.

Reads the JSON rows that ``scale.py`` prints (one log or several) and takes, per event of the measured corpus:

* ``W``: the worker function's CPU (``worker`` row: ``tokenize_chunk``, parse + tokenize + pack), parallel;
* ``P`` / ``S``: the near-duplicate clustering's pool CPU (parallel) and its driver CPU (serial) (``dedup`` row:
  ``record_clusters`` alone, ``--dedup-workers`` processes);
* ``R``: the rest of ingest's CPU (``ingest`` row ``cpu_s`` minus the worker and dedup CPU for its events): scan,
  hashes, results, manifest, shards written from the packs; counted as serial (it partly overlaps the workers, so
  this errs long).

``T = E * ((W + P) / C + S + R)`` for ``E = files * events_per_file``. CPU seconds do not depend on the machine's
load the way wall times do (the runs here shared 2 cores with a training run), so ``T`` is what C *idle* cores of
this CPU would take; it assumes CPU per event stays flat with corpus size (``scale.py``'s 20k and 200k rows check it).

    python benchmarks/scale_projection.py LOG [LOG ...] --corpus c20000 [--cores 2] [--files 176581]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def rows(paths: list[Path]) -> list[dict]:
    out = []
    for path in paths:
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def rates(found: list[dict], corpus: str) -> dict:
    """CPU seconds per event: ``W``, ``P``, ``S``, ``R`` (see the module docstring) from the rows of ``corpus``
    (its ingest, dedup and worker rows; without a worker row, the last one of any corpus)."""
    mine = [r for r in found if Path(r["corpus"]).name == corpus]
    ingest = next(r["ingest"] for r in reversed(mine) if "ingest" in r)
    dedup = next(r["dedup"] for r in reversed(mine) if "dedup" in r)
    worker = next((r["worker"] for r in reversed(mine) if "worker" in r), None) or \
        next(r["worker"] for r in reversed(found) if "worker" in r)  # its own, else the last one
    events = ingest["events"]
    w = 1 / worker["events_per_cpu_s"]
    p, s = dedup["pool_cpu_s"] / events, dedup["driver_cpu_s"] / events
    return {"W": w, "P": p, "S": s, "R": max(0.0, ingest["cpu_s"] / events - w - p - s), "events": events,
            "ingest_cpu_s": ingest["cpu_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("logs", nargs="+", type=Path, help="outputs of benchmarks/scale.py")
    ap.add_argument("--corpus", default="c20000", help="the measured corpus whose rates are projected")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--files", type=int, default=176_581, help="Lakh MIDI: 176,581 files")
    ap.add_argument("--events-per-file", default="2000,3000,5000")
    args = ap.parse_args()
    r = rates(rows(args.logs), args.corpus)
    us = {k: round(v * 1e6, 3) for k, v in r.items() if k in "WPSR"}
    print(f"# rates from {args.corpus} ({r['events']:,} events, ingest {r['ingest_cpu_s']} CPU-s), microseconds of "
          f"CPU per event: worker W {us['W']}, dedup pool P {us['P']}, dedup driver S {us['S']}, rest R {us['R']}")
    print(f"| events per file | events | workers (W+P)/{args.cores} | serial S+R | ingest on {args.cores} idle cores |")
    print("|---|---|---|---|---|")
    for epf in (int(x) for x in args.events_per_file.split(",")):
        e = args.files * epf
        par, ser = e * (r["W"] + r["P"]) / args.cores, e * (r["S"] + r["R"])
        print(f"| {epf:,} | {e:.2e} | {par:.0f} s | {ser:.0f} s | **{(par + ser) / 60:.1f} min** |")


if __name__ == "__main__":
    main()
