"""``musicgen serve``: the browser studio, one static page and a small JSON API over the standard library.

Web stack: ``http.server.ThreadingHTTPServer`` and nothing else. The API is four routes and one page, so a framework
(Starlette + uvicorn + python-multipart, or FastAPI on top, or Gradio's hundreds of files and its CDN fonts) would add
packages to install and keep patched without removing code: the checks a framework does not do for us (bounded
queue, request caps, upload isolation) are ours either way. The stdlib server is documented as "not for
production"; it is bound to 127.0.0.1 by default and given the limits below, and it is the user's own studio.

Routes::

    GET  /                          the page (musicgen/static/index.html; app.js and style.css beside it)
    GET  /static/NAME               one of the packaged assets (read into memory at start; no file path from a URL)
    GET  /api/models                bundles, limits and the audio renderer
    POST /api/generate              JSON request (see ``studio.check_request``) → JSON summary with result URLs
    GET  /api/result/ID/FILE        sample.mid | sample.json | sample.wav | sample.png of a finished job

Limits: a request body over ``MAX_BODY_BYTES`` is 413; a body that is not ``application/json`` is 415; a bad
value is 400 with ``{"error": "FIELD: …"}``; more than ``workers + queue`` generations running or waiting is 503
with ``Retry-After``; more than ``MAX_CONNECTIONS`` open connections get 503 at once; a socket idle for
``SOCKET_TIMEOUT`` seconds is closed. While bound to a loopback address, a request whose ``Host`` is not a loopback
name (DNS rebinding) or whose ``Origin`` is another site is 403.
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import urlsplit

from musicgen.errors import MusicgenError, UsageError

MAX_BODY_BYTES = 2 << 20  # a request (JSON with a base64 primer of at most 1 MiB)
MAX_CONNECTIONS = 32
SOCKET_TIMEOUT = 30.0  # seconds
ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
          "style.css": "text/css; charset=utf-8"}
RESULT_PATH = re.compile(r"/api/result/([^/]+)/([^/]+)")
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def load_assets() -> dict[str, bytes]:
    """The page's files, read once from the package (``musicgen/static``)."""
    folder = resources.files("musicgen") / "static"
    return {name: (folder / name).read_bytes() for name in ASSETS}


class Slots:
    """At most ``workers`` jobs run at once and ``queue`` more wait; ``enter`` returns False (→ 503) beyond that."""

    def __init__(self, workers: int, queue: int):
        self.workers, self.queue = workers, queue
        self._admitted = threading.BoundedSemaphore(workers + queue)
        self._running = threading.Semaphore(workers)

    def enter(self) -> bool:
        if not self._admitted.acquire(blocking=False):
            return False
        self._running.acquire()
        return True

    def leave(self) -> None:
        self._running.release()
        self._admitted.release()


class StudioServer(ThreadingHTTPServer):
    """A threading HTTP server with a cap on open connections, holding the ``Studio``, the assets and the slots."""

    daemon_threads = True

    def __init__(self, address, studio, workers: int = 1, queue: int = 8, quiet: bool = False):
        self.studio, self.slots, self.quiet = studio, Slots(workers, queue), quiet
        self.assets = load_assets()
        self.connections = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, Handler)
        host = self.server_address[0]
        self.loopback_only = _is_loopback(host)

    def process_request(self, request, client_address):
        if not self.connections.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nRetry-After: 1\r\n"
                                b"Connection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


class Handler(BaseHTTPRequestHandler):
    """Routes the five URLs; every answer carries ``SECURITY_HEADERS``."""

    server: StudioServer
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT

    def version_string(self) -> str:
        return "musicgen-serve"

    # ------------------------------------------------------------------------------------------------ answers
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        for key, value in {**SECURITY_HEADERS, "Content-Type": content_type, "Content-Length": str(len(body)),
                           **(extra or {})}.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: dict, extra: dict | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", extra)

    def _error(self, status: int, message: str, extra: dict | None = None) -> None:
        self._json(status, {"error": message}, extra)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if not self.server.quiet:
            sys.stderr.write(f"musicgen serve: {self.address_string()} {format % args}\n")

    def log_error(self, format, *args):  # noqa: A002
        sys.stderr.write(f"musicgen serve: {self.address_string()} {format % args}\n")

    def _allowed(self) -> bool:
        """False (after answering 403) for a foreign Host while bound to loopback, or a foreign Origin."""
        host = (self.headers.get("Host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.server.loopback_only and name not in LOOPBACK_NAMES:
            self.close_connection = True  # a POST body is left unread
            self._error(403, f"Host: expected a loopback name ({', '.join(LOOPBACK_NAMES)}), got {host!r}")
            return False
        origin = self.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc.lower() != host:
            self.close_connection = True
            self._error(403, f"Origin: expected http://{host}, got {origin!r}")
            return False
        return True

    # ------------------------------------------------------------------------------------------------- verbs
    def do_GET(self):  # noqa: N802 (http.server's naming)
        if not self._allowed():
            return
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            return self._send(200, self.server.assets["index.html"], ASSETS["index.html"])
        if path.startswith("/static/") and path[len("/static/"):] in ASSETS:
            name = path[len("/static/"):]
            return self._send(200, self.server.assets[name], ASSETS[name])
        if path == "/api/models":
            return self._json(200, _models_info(self.server))
        match = RESULT_PATH.fullmatch(path)
        if match:
            return self._result(*match.groups())
        self._error(404, f"no such page: {path[:200]!r}")

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        if not self._allowed():
            return
        if urlsplit(self.path).path != "/api/generate":
            self.close_connection = True
            return self._error(404, f"no such API: {urlsplit(self.path).path[:200]!r}")
        data = self._read_json()
        if data is None:
            return
        try:
            req = self.server.studio.check_request(data)
        except UsageError as exc:
            return self._error(400, str(exc))
        if not self.server.slots.enter():
            slots = self.server.slots
            return self._error(503, f"busy: {slots.workers} generation(s) running and {slots.queue} waiting; "
                                    f"try again in a moment", {"Retry-After": "2"})
        try:
            job = self.server.studio.run(req)
        except UsageError as exc:  # a primer that does not parse, a value generate refuses
            return self._error(400, str(exc))
        except MusicgenError as exc:  # e.g. fluidsynth failed
            return self._error(500, str(exc))
        except Exception as exc:  # a bug must not leave the browser without an answer
            self.log_error("internal error: %s: %s", type(exc).__name__, exc)
            return self._error(500, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.server.slots.leave()
        self._json(200, job.summary)

    def _read_json(self):
        """The request body as parsed JSON, or None after answering 4xx."""
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            self._error(415, "Content-Type: expected application/json")
            self.close_connection = True
            return None
        try:
            size = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(411, "Content-Length: expected the body's size in bytes")
            self.close_connection = True
            return None
        if not 0 <= size <= MAX_BODY_BYTES:
            self._error(413, f"request: {size} bytes, at most {MAX_BODY_BYTES} (the primer may have 1 MiB)")
            self.close_connection = True  # the unread body must not be taken for the next request
            return None
        try:
            return json.loads(self.rfile.read(size))
        except (ValueError, UnicodeDecodeError) as exc:
            self._error(400, f"request: not valid JSON: {exc}")
            return None

    def _result(self, job_id: str, name: str) -> None:
        from musicgen.studio import RESULT_FILES

        path = self.server.studio.result_file(job_id, name)
        if path is None:
            return self._error(404, "no such result (it may have expired; generate again)")
        disposition = "inline" if name.endswith((".wav", ".png")) else "attachment"
        self._send(200, path.read_bytes(), RESULT_FILES[name],
                   {"Content-Disposition": f'{disposition}; filename="musicgen-{job_id[:8]}{name[6:]}"'})


def _models_info(server: StudioServer) -> dict:
    import pretty_midi

    from musicgen import studio

    return dict(models=server.studio.models(), renderer=server.studio.renderer,
                programs=list(pretty_midi.constants.INSTRUMENT_MAP),
                limits=dict(max_length=studio.MAX_LENGTH, max_seconds=studio.MAX_SECONDS,
                            max_primer_bytes=studio.MAX_PRIMER_BYTES, primer_suffixes=list(studio.PRIMER_SUFFIXES),
                            workers=server.slots.workers, queue=server.slots.queue))


def make_server(model_paths, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, queue: int = 8,
                quiet: bool = False) -> StudioServer:
    """Load the bundles and bind a ``StudioServer`` (``port=0``: any free port; see ``server.url``).

    Raises ``UsageError`` naming ``--workers``/``--queue``/``--port``/``--model`` for bad values, no usable bundle
    or an address that cannot be bound.
    """
    from musicgen.studio import Studio

    for flag, value, lo in (("--workers", workers, 1), ("--queue", queue, 0), ("--port", port, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= (65535 if lo == 0 else 64):
            raise UsageError(f"{flag}: expected an integer in [{lo}, {65535 if lo == 0 else 64}], got {value!r}")
    studio = Studio(model_paths)
    if not studio.bundles:
        studio.close()
        detail = "; ".join(f"{k}: {v}" for k, v in studio.errors.items()) or "no bundle folders given or found"
        raise UsageError(f"--model: no usable bundle ({detail})")
    try:
        return StudioServer((host, port), studio, workers=workers, queue=queue, quiet=quiet)
    except OSError as exc:
        studio.close()
        raise UsageError(f"--host/--port: cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def cli_serve(args) -> int:
    """``musicgen serve``: bundles from ``--model`` (repeatable) or the folders in ``--models-dir``; serve until
    Ctrl-C."""
    from musicgen.generate import resolve_model_path
    from musicgen.studio import find_bundles

    paths = [resolve_model_path(m) for m in args.model] if args.model else find_bundles(args.models_dir)
    if not paths and args.models_dir == "trained":
        paths = [resolve_model_path(None)]  # trained/default beside the package's source tree
    server = make_server(paths, args.host, args.port, args.workers, args.queue, quiet=args.quiet)
    for name, error in server.studio.errors.items():
        print(f"musicgen serve: warning: bundle {name!r} not offered: {error}", file=sys.stderr)
    print(f"musicgen studio: {server.url}  ({len(server.studio.bundles)} bundle(s), audio: "
          f"{server.studio.renderer}; Ctrl-C stops)", flush=True)
    if not server.loopback_only:
        print("musicgen serve: warning: listening beyond this machine; anyone who can reach it can generate",
              file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.studio.close()
    return 0
