"""Loopback load test of `musicgen serve`: requests/s and latency of 512-event generations.

Starts ``python -m musicgen serve --host 127.0.0.1 --port 0`` as a child process (its own GIL, as a user runs it),
then for each (mode, concurrency) sends a fixed number of ``POST /api/generate`` requests from that many client
threads, each with its own seed, and waits for every answer (bounded: ``--requests`` per row, 300 s per request;
the address is always 127.0.0.1, nothing leaves the machine).

Modes: ``midi`` (sample + MIDI + sidecar: ``audio``/``roll`` false) and ``full`` (also the WAV and the PNG piano
roll, what the page asks for). Latency is from sending the request to the end of the answer; a 503 (queue full) is
counted, not retried. Rows whose concurrency exceeds ``--workers + --queue`` show the bounded queue at work.

Usage: ``python benchmarks/serve_load.py [--model trained/default] [--length 512] [--workers 1] [--queue 8]``.
Prints a Markdown table for benchmarks/RESULTS.md, with the machine's load average before and after.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROWS = (("midi", 1, 40), ("midi", 4, 40), ("midi", 16, 48), ("full", 1, 12), ("full", 4, 12))


def start_server(model: str, workers: int, queue: int) -> tuple[subprocess.Popen, str, int]:
    cmd = [sys.executable, "-m", "musicgen", "serve", "--model", model, "--host", "127.0.0.1", "--port", "0",
           "--workers", str(workers), "--queue", str(queue), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        proc.kill()
        raise SystemExit(f"serve did not start: {line!r}")
    return proc, "127.0.0.1", int(match.group(1))


def one_request(host: str, port: int, body: dict) -> tuple[int, float, dict]:
    """``(status, seconds, the server's timing)`` of one request."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection(host, port, timeout=300)
    conn.request("POST", "/api/generate", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    timing = json.loads(data).get("timing", {}) if response.status == 200 else {}
    return response.status, time.perf_counter() - started, timing


def run_row(host: str, port: int, mode: str, concurrency: int, requests: int, length: int) -> dict:
    full = mode == "full"
    bodies = [dict(length=length, seed=i, temperature=1.0, top_p=0.95, audio=full, roll=full) for i in range(requests)]
    one_request(host, port, dict(bodies[0], seed=10_000))  # warm-up (imports, first matplotlib figure)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as ex:
        results = list(ex.map(lambda b: one_request(host, port, b), bodies))
    wall = time.perf_counter() - started
    ok = [t for status, t, _ in results if status == 200]
    timings = [timing for status, _, timing in results if status == 200]
    return dict(mode=mode, concurrency=concurrency, requests=requests, ok=len(ok),
                busy=sum(status == 503 for status, _, _ in results),
                other=sum(status not in (200, 503) for status, _, _ in results), wall=wall,
                generate_s=float(np.mean([t["generate_s"] for t in timings])) if timings else float("nan"),
                render_s=float(np.mean([t["render_s"] for t in timings])) if timings else float("nan"),
                rps=len(ok) / wall, p50=float(np.percentile(ok, 50)) if ok else float("nan"),
                p95=float(np.percentile(ok, 95)) if ok else float("nan"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "trained" / "default"))
    parser.add_argument("--length", type=int, default=512, help="events per generation")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--queue", type=int, default=8)
    args = parser.parse_args()
    load_before = os.getloadavg()
    proc, host, port = start_server(args.model, args.workers, args.queue)
    try:
        rows = []
        for mode, concurrency, requests in ROWS:
            rows.append(run_row(host, port, mode, concurrency, requests, args.length))
            r = rows[-1]
            print(f"{mode} c={concurrency}: {r['ok']}/{requests} ok, {r['busy']} busy, {r['rps']:.2f} req/s, "
                  f"p95 {r['p95']:.2f} s", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    load_after = os.getloadavg()
    print(f"\n`python benchmarks/serve_load.py --length {args.length} --workers {args.workers} --queue {args.queue}`, "
          f"model {Path(args.model).name}, {os.cpu_count()} CPUs, load average (1/5/15 min) before "
          f"{'/'.join(f'{x:.1f}' for x in load_before)}, after {'/'.join(f'{x:.1f}' for x in load_after)}\n")
    print("| mode | clients | requests | 200 | 503 (queue full) | other | req/s | p50 latency | p95 latency "
          "| server: sample + MIDI / WAV + PNG (mean) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['concurrency']} | {r['requests']} | {r['ok']} | {r['busy']} | {r['other']} | "
              f"{r['rps']:.2f} | {r['p50']:.2f} s | {r['p95']:.2f} s | {r['generate_s']:.2f} s / "
              f"{r['render_s']:.2f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
