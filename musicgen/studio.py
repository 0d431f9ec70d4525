"""The work behind ``musicgen serve``: bundles loaded once, request checks (``studio_request``), primers parsed in a
worker, jobs.

No HTTP here (that is ``musicgen.serve``); this module turns a JSON-able request dict into files in a temporary
folder. Nothing a request holds becomes a path: a bundle is picked by the name ``Studio`` gave it at start, a result
by a random 32-hex id, a file by one of ``RESULT_FILES``, and an uploaded primer is written under a fresh temporary
folder by a worker process under a fixed name (only its suffix is kept, and only one of ``PRIMER_SUFFIXES``).

TensorFlow is never imported: generation is ``generate.generate`` (numpy), audio ``render.render_wav``, the piano roll
``piano_roll.plot_piano_roll`` (matplotlib's Agg canvas).

Example::

    studio = Studio(["trained/default"])
    job = studio.run(studio.check_request({"length": 256, "seed": 3}))
    job.folder / "sample.mid"
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import re
import secrets
import shutil
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicgen.errors import BundleError, UsageError
from musicgen.safeio import atomic_path, atomic_write_text
from musicgen.studio_request import (FIELDS, MAX_LENGTH, MAX_PRIMER_BYTES, MAX_SECONDS,  # noqa: F401 (re-exported)
                                     PRIMER_SUFFIXES, Request, _is_number, _need, check_request)

MAX_PRIMER_EVENTS = 4096  # primer tokens; a longer primer is refused (the model reads it event by event)
PRIMER_TIMEOUT = 20.0  # seconds a worker may take to parse one primer (wall clock, from its start)
RESULT_FILES = {"sample.mid": "audio/midi", "sample.json": "application/json", "sample.wav": "audio/wav",
                "sample.png": "image/png"}
MAX_RESULTS = 64  # finished jobs kept; the oldest folder is deleted beyond this
WAV_RATE = 22050  # frames per second of the page's audio (half of CD: a 25 s sample is about 2 MB)
RESULT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Job:
    """A finished generation: its ``id``, the ``folder`` holding ``RESULT_FILES`` and a summary for the page."""

    id: str
    folder: Path
    summary: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------ primers
def _primer_worker(conn, suffix: str, data: bytes, tokenizer_json: str, max_events: int) -> None:
    """In a worker process: parse ``data`` as a ``suffix`` file and send back a JSON header and int32 tokens
    (raw bytes, no pickle: the parent never unpickles what parsed an upload)."""
    try:
        from musicgen.config import TokenizerConfig
        from musicgen.reader import read_piece
        from musicgen.tokenizer import Tokenizer

        tokenizer = Tokenizer(TokenizerConfig.from_json(tokenizer_json))
        with tempfile.TemporaryDirectory(prefix="musicgen-primer-") as tmp:
            path = Path(tmp) / f"primer{suffix}"
            path.write_bytes(data)
            piece = read_piece(path, tokenizer.config.time_mode)
            tokens = np.asarray(tokenizer.encode(piece), dtype="<i4")
        if tokens.size > max_events:
            raise UsageError(f"{tokens.size} events, at most {max_events}; upload a shorter excerpt")
        conn.send_bytes(json.dumps({"qpm": piece.qpm}).encode())
        conn.send_bytes(tokens.tobytes())
    except Exception as exc:  # an IngestError for a bad file, or anything a parser raises on a crafted one
        conn.send_bytes(json.dumps({"error": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}).encode())
    finally:
        conn.close()


def _worker_context():
    """forkserver (a clean, single-threaded parent for each worker; fork from a threaded server can deadlock) with
    the parsing modules preloaded; spawn where there is no forkserver."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["musicgen.midi_io", "musicgen.tokenizer"])
        return ctx
    return mp.get_context("spawn")


def parse_primer(suffix: str, data: bytes, tokenizer, timeout: float = PRIMER_TIMEOUT) -> tuple[np.ndarray, float]:
    """Parse an uploaded primer in a worker process killed after ``timeout`` seconds.

    Returns ``(tokens, qpm)``: int64 ids, shape (T,), as ``tokenizer.encode`` gives them; quarter notes per minute.
    Raises ``UsageError`` naming ``primer`` when it cannot be read, takes too long or has over ``MAX_PRIMER_EVENTS``.
    """
    ctx = _worker_context()
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_primer_worker, daemon=True,
                       args=(child, suffix, data, tokenizer.config.to_json(), MAX_PRIMER_EVENTS))
    deadline = time.monotonic() + timeout
    proc.start()
    child.close()
    try:
        _need(parent.poll(max(0.0, deadline - time.monotonic())),
              f"primer: parsing took longer than {timeout:g} s (or the parser died); try a smaller file")
        header = json.loads(parent.recv_bytes(1 << 16))
        if "error" in header:
            raise UsageError(f"primer: cannot use it: {header['error']}")
        _need(parent.poll(max(0.0, deadline - time.monotonic())), f"primer: parsing took longer than {timeout:g} s")
        raw = parent.recv_bytes(4 * MAX_PRIMER_EVENTS)
    except (EOFError, OSError):  # the worker died, or sent more than it may
        raise UsageError("primer: the parser died on this file") from None
    finally:
        parent.close()
        if proc.is_alive():
            proc.kill()
        proc.join(5)
    tokens = np.frombuffer(raw, dtype="<i4").astype(np.int64)
    _need(tokens.size <= MAX_PRIMER_EVENTS,
          f"primer: {tokens.size} events, at most {MAX_PRIMER_EVENTS}; upload a shorter excerpt")
    qpm = header.get("qpm")
    return tokens, float(qpm) if _is_number(qpm) and qpm > 0 else 120.0


# --------------------------------------------------------------------------------------------------------- studio
def find_bundles(folder: str | Path) -> list[Path]:
    """The bundle folders (holding ``bundle.json``) directly inside ``folder``, sorted by name; [] if none."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if (p / "bundle.json").is_file()) if folder.is_dir() else []


class Studio:
    """Bundles loaded once (checked by ``bundle.load_bundle``), jobs run into a private temporary folder.

    Args:
        model_paths: bundle folders; each is offered under its folder name (``name-2`` … on clashes).
        results_dir: where job folders go (default: a fresh temporary folder, removed by ``close``).
        primer_timeout: seconds a primer's worker may take.
    A bundle that fails its checks is listed in ``models()`` with its error and cannot be picked.
    """

    def __init__(self, model_paths, results_dir: str | Path | None = None, primer_timeout: float = PRIMER_TIMEOUT):
        from musicgen.bundle import load_bundle

        self.bundles, self.errors = {}, {}
        for path in model_paths:
            path = Path(path)
            name, k = path.resolve().name, 2
            while name in self.bundles or name in self.errors:
                name, k = f"{path.resolve().name}-{k}", k + 1
            try:
                self.bundles[name] = load_bundle(path)
            except BundleError as exc:
                self.errors[name] = str(exc)
        self._own_tmp = results_dir is None
        self.root = Path(tempfile.mkdtemp(prefix="musicgen-serve-") if results_dir is None else results_dir)
        self.primer_timeout = primer_timeout
        self.results: OrderedDict[str, Path] = OrderedDict()
        self._lock = threading.Lock()
        self.renderer = renderer_name()

    def models(self) -> list[dict]:
        """One dict per bundle for the page: name, cell, size, validation NLL, ``error`` for one that failed."""
        out = []
        for name, b in self.bundles.items():
            mc = b.model_config
            out.append(dict(name=name, cell=mc.cell, layers=mc.layers, units=mc.units, vocab_size=mc.vocab_size,
                            val_nll=b.metrics.get("val_nll"), programs=b.tokenizer_config.programs))
        out += [dict(name=name, error=error) for name, error in self.errors.items()]
        return out

    def check_request(self, data) -> Request:
        return check_request(data, list(self.bundles))

    def run(self, req: Request) -> Job:
        """Generate one sample for ``req`` and write ``RESULT_FILES`` (audio/roll on request) into a new job folder."""
        from musicgen.generate import generate

        bundle = self.bundles[req.model]
        started = time.perf_counter()
        primer, tempo, primer_info = None, req.tempo, None
        if req.primer is not None:
            primer, qpm = parse_primer(*req.primer, bundle.tokenizer, self.primer_timeout)
            tempo = tempo or qpm
            primer_info = dict(name=req.primer_name, sha256=hashlib.sha256(req.primer[1]).hexdigest(),
                               events=int(primer.size))
        try:
            result = generate(bundle, req.sample_config(tempo), primer=primer)
        except UsageError as exc:  # generate names the command line's flag (--style); the page names the field
            raise UsageError(str(exc).removeprefix("--")) from None
        midi = result.midis[0]
        if req.program is not None:  # "play as": generate's `program` only opens a PROGRAM vocabulary's sample
            for inst in midi.instruments:
                inst.program = inst.program if inst.is_drum else req.program
        sidecar = dict(result.sidecars[0], primer_upload=primer_info, play_as_program=req.program, midi="sample.mid")
        job_id = secrets.token_hex(16)
        job = Job(job_id, self.root / job_id)
        job.folder.mkdir(parents=True)
        with atomic_path(job.folder / "sample.mid") as tmp:
            midi.write(str(tmp))
        atomic_write_text(job.folder / "sample.json", json.dumps(sidecar, indent=2, sort_keys=True) + "\n")
        made = time.perf_counter()
        if req.audio:
            _render_wav(midi, job.folder / "sample.wav")
        if req.roll:
            from musicgen.piano_roll import plot_piano_roll

            plot_piano_roll(midi, job.folder / "sample.png", width=1000, height=400, title=f"seed {sidecar['seed']}")
        job.summary = dict(id=job.id, model=req.model, seed=sidecar["seed"], events=sidecar["events"],
                           notes=sidecar["notes"], duration_seconds=sidecar["duration_seconds"],
                           files={name: f"/api/result/{job.id}/{name}" for name in RESULT_FILES
                                  if (job.folder / name).is_file()},
                           renderer=self.renderer if req.audio else None,
                           timing=dict(generate_s=round(made - started, 3),
                                       render_s=round(time.perf_counter() - made, 3)))
        self._keep(job)
        return job

    def _keep(self, job: Job) -> None:
        with self._lock:
            self.results[job.id] = job.folder
            while len(self.results) > MAX_RESULTS:
                _, old = self.results.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)

    def result_file(self, job_id: str, name: str) -> Path | None:
        """The path of a result file, or None unless ``job_id`` is a live job and ``name`` one of ``RESULT_FILES``."""
        if not RESULT_ID.fullmatch(job_id) or name not in RESULT_FILES:
            return None
        with self._lock:
            folder = self.results.get(job_id)
        path = folder / name if folder is not None else None
        return path if path is not None and path.is_file() else None

    def close(self) -> None:
        """Remove the results folder if the studio made it."""
        if self._own_tmp:
            shutil.rmtree(self.root, ignore_errors=True)


def renderer_name() -> str:
    """What ``render_wav`` will use: ``"fluidsynth (NAME.sf2)"`` or ``"sine fallback (REASON)"``."""
    from musicgen.render import find_soundfont

    sf2, reason = find_soundfont()
    if sf2 is not None and shutil.which("fluidsynth"):
        return f"fluidsynth ({sf2.name})"
    return f"sine fallback ({reason or 'the fluidsynth program is not installed'})"


def _render_wav(midi, path: Path) -> None:
    """``render_wav`` at ``WAV_RATE``; its fallback warning is already in ``renderer_name`` and not repeated."""
    from musicgen.render import RenderWarning, render_wav

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RenderWarning)
        render_wav(midi, path, sample_rate=WAV_RATE)
