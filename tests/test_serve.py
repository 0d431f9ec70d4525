"""musicgen.serve: the HTTP routes, their limits (4xx, 503) and the `musicgen serve` verb, over loopback sockets."""

import base64
import http.client
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pretty_midi
import pytest

from musicgen.cli import main
from musicgen.errors import UsageError
from musicgen.serve import MAX_BODY_BYTES, MAX_CONNECTIONS, make_server

DEFAULT = Path(__file__).resolve().parents[1] / "trained" / "default"
FAST = {"length": 24, "seed": 1, "audio": False, "roll": False}


@pytest.fixture(scope="module")
def server():
    srv = make_server([DEFAULT], port=0, workers=1, queue=1, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    srv.studio.close()


def call(server, method, path, body=None, headers=None):
    """``(status, headers, body bytes)`` of one request on a fresh connection."""
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    out = response.status, dict(response.getheaders()), response.read()
    conn.close()
    return out


def test_page_and_assets(server):
    status, headers, body = call(server, "GET", "/")
    assert status == 200 and b"<title>musicgen studio</title>" in body
    assert headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"] and headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" not in body and b"http" not in body.replace(b"http-equiv", b"")  # no inline code, no CDN
    status, headers, body = call(server, "GET", "/static/app.js")
    assert status == 200 and b"/api/generate" in body and headers["Content-Type"].startswith("text/javascript")
    for path in ("/static/../serve.py", "/static/%2e%2e/serve.py", "/static/studio.py", "/etc/passwd",
                 "/api/result/../../etc/passwd", "//etc/passwd", "/static/"):
        assert call(server, "GET", path)[0] == 404, path


def test_models(server):
    status, _, body = call(server, "GET", "/api/models")
    info = json.loads(body)
    assert status == 200 and [m["name"] for m in info["models"]] == ["default"]
    assert info["models"][0]["cell"] == "gru" and info["programs"][40] == "Violin"
    assert info["limits"]["max_length"] == 4096 and info["limits"]["workers"] == 1


def test_generate_and_download(server):
    status, _, body = call(server, "POST", "/api/generate", {"length": 24, "seed": 3, "program": 0})
    assert status == 200, body
    summary = json.loads(body)
    assert summary["seed"] == 3 and set(summary["files"]) == {"sample.mid", "sample.json", "sample.wav", "sample.png"}
    status, headers, midi = call(server, "GET", summary["files"]["sample.mid"])
    assert status == 200 and headers["Content-Type"] == "audio/midi"
    assert headers["Content-Disposition"] == f'attachment; filename="musicgen-{summary["id"][:8]}.mid"'
    assert pretty_midi.PrettyMIDI(io.BytesIO(midi)).instruments[0].notes
    status, _, sidecar = call(server, "GET", summary["files"]["sample.json"])
    assert json.loads(sidecar)["seed"] == 3
    status, headers, wav = call(server, "GET", summary["files"]["sample.wav"])
    assert status == 200 and wav[:4] == b"RIFF" and headers["Content-Type"] == "audio/wav"
    assert call(server, "GET", summary["files"]["sample.png"])[2][:4] == b"\x89PNG"
    assert call(server, "GET", f"/api/result/{summary['id']}/sample.txt")[0] == 404
    assert call(server, "GET", f"/api/result/{'0' * 32}/sample.mid")[0] == 404


def test_generate_with_a_primer(server):
    pm = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.instruments[0].notes = [pretty_midi.Note(80, p, i * 0.5, i * 0.5 + 0.5) for i, p in enumerate((67, 71, 74))]
    buf = io.BytesIO()
    pm.write(buf)
    body = dict(FAST, primer={"name": "g.mid", "data": base64.b64encode(buf.getvalue()).decode()})
    status, _, out = call(server, "POST", "/api/generate", body)
    assert status == 200, out
    midi = call(server, "GET", json.loads(out)["files"]["sample.mid"])[2]
    notes = sorted(pretty_midi.PrettyMIDI(io.BytesIO(midi)).instruments[0].notes, key=lambda n: (n.start, n.pitch))
    assert [n.pitch for n in notes[:3]] == [67, 71, 74]
    body["primer"]["data"] = base64.b64encode(b"MThd\x00\x00\x00\x06garbage").decode()
    status, _, out = call(server, "POST", "/api/generate", body)
    assert status == 400 and json.loads(out)["error"].startswith("primer: cannot use it: unreadable MIDI")


@pytest.mark.parametrize("body, status, words", [
    ({"temperature": 0}, 400, "temperature: expected a number in (0, 10], got 0"),
    ({"top_p": "x"}, 400, "top_p"), ({"length": 100000}, 400, "length"), ({"model": "/etc"}, 400, "model"),
    ([1, 2], 400, "request: expected a JSON object"),
])
def test_invalid_values_are_400_with_a_message(server, body, status, words):
    raw = json.dumps(body).encode()
    got, _, out = call(server, "POST", "/api/generate", raw, {"Content-Type": "application/json"})
    assert got == status and words in json.loads(out)["error"]


def test_request_limits(server):
    assert call(server, "POST", "/api/generate", b"{}", {"Content-Type": "text/plain"})[0] == 415
    assert call(server, "POST", "/api/generate", b"{not json", {"Content-Type": "application/json"})[0] == 400
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.putrequest("POST", "/api/generate")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
    conn.endheaders()  # the body is never sent: the answer comes first
    response = conn.getresponse()
    assert response.status == 413 and b"at most" in response.read()
    conn.close()
    assert call(server, "POST", "/api/other", FAST)[0] == 404
    assert call(server, "DELETE", "/")[0] == 501


def test_foreign_host_and_origin_are_403(server):
    assert call(server, "GET", "/", headers={"Host": "attacker.example:8000"})[0] == 403
    port = server.server_address[1]
    status, _, out = call(server, "POST", "/api/generate", FAST, {"Origin": "http://attacker.example"})
    assert status == 403 and b"Origin" in out
    assert call(server, "POST", "/api/generate", FAST, {"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert call(server, "GET", "/api/models", headers={"Host": f"localhost:{port}"})[0] == 200


def test_full_queue_is_503_then_recovers(server):
    slots = server.slots  # workers=1, queue=1: two held places fill it
    assert slots.enter()
    waiting = threading.Thread(target=lambda: (slots.enter(), slots.leave()))
    waiting.start()  # takes the queue place and blocks on the running one
    try:
        for _ in range(50):
            status, headers, out = call(server, "POST", "/api/generate", FAST)
            if status == 503:
                break
        assert status == 503 and headers["Retry-After"] == "2" and json.loads(out)["error"].startswith("busy")
    finally:
        slots.leave()
        waiting.join()
    assert call(server, "POST", "/api/generate", FAST)[0] == 200


def test_a_burst_gets_answers_not_a_crash(server):
    with ThreadPoolExecutor(6) as ex:
        statuses = list(ex.map(lambda _: call(server, "POST", "/api/generate", FAST)[0], range(6)))
    assert set(statuses) <= {200, 503} and statuses.count(200) >= 1
    assert call(server, "GET", "/api/models")[0] == 200


def test_too_many_connections_are_503(server):
    # hold every connection permit of the live semaphore (waiting for the threads of earlier tests to let theirs go;
    # swapping in another semaphore would let such a thread release the new one)
    held = sum(server.connections.acquire(timeout=10) for _ in range(MAX_CONNECTIONS))
    try:
        assert held == MAX_CONNECTIONS
        assert call(server, "GET", "/")[0] == 503
    finally:
        for _ in range(held):
            server.connections.release()


def test_make_server_refuses_bad_settings(tmp_path):
    with pytest.raises(UsageError, match=r"--workers: expected an integer in \[1, 64\], got 0"):
        make_server([DEFAULT], port=0, workers=0)
    with pytest.raises(UsageError, match="--model: no usable bundle"):
        make_server([tmp_path], port=0)


def test_cli_serve_errors_are_one_line(capsys, tmp_path):
    assert main(["serve", "--model", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err and "none" in err
    assert main(["serve", "--models-dir", str(tmp_path), "--port", "0", "--workers", "-1"]) == 2
