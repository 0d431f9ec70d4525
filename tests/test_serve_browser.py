"""`musicgen serve` in a real browser: Playwright drives Chromium through the page (a file of its own so that it
skips alone, with its reason, where no browser is installed; .ci/run installs playwright and Debian's chromium).

The browser is ``$MUSICGEN_CHROMIUM``, else Debian's ``/usr/bin/chromium``, else Playwright's own download
(``playwright install chromium``, which needs the network once). With ``MUSICGEN_SCREENSHOT=PATH`` the test also
saves the page after generating (docs/img/serve.png is made that way, see README "Play"). Waits pass functions
(``() => …``), not expressions: the page's Content-Security-Policy forbids eval, which Playwright uses to poll an
expression.
"""

import io
import os
import shutil
import threading
from pathlib import Path

import pretty_midi
import pytest

from musicgen.serve import make_server

DEFAULT = Path(__file__).resolve().parents[1] / "trained" / "default"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def chromium_path() -> str | None:
    """Debian's chromium (or ``$MUSICGEN_CHROMIUM``); None: let Playwright use its own download."""
    for candidate in (os.environ.get("MUSICGEN_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=chromium_path())
        except sync_api.Error as exc:
            pytest.skip(f"no Chromium to drive (apt-get install chromium, or playwright install chromium): "
                        f"{str(exc).splitlines()[0]}")
        yield b
        b.close()


@pytest.fixture(scope="module")
def url():
    srv = make_server([DEFAULT], port=0, quiet=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv.url
    srv.shutdown()
    srv.server_close()
    srv.studio.close()


def primer_midi() -> bytes:
    """G4 B4 D5 as quarter notes at 90 qpm, a piano."""
    pm = pretty_midi.PrettyMIDI(initial_tempo=90.0)
    pm.instruments.append(pretty_midi.Instrument(0))
    pm.instruments[0].notes = [pretty_midi.Note(80, p, i * 2 / 3, (i + 1) * 2 / 3) for i, p in enumerate((67, 71, 74))]
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


def test_generate_hear_see_download(browser, url, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"request failed: {req.url}"))
    page.goto(url)
    page.wait_for_function("() => document.getElementById('model').options.length > 0")
    assert page.locator("#model").input_value() == "default"
    page.fill("#limit-value", "160")
    page.fill("#temperature", "0.9")
    page.fill("#top-p", "0.95")
    page.fill("#seed", "7")
    page.fill("#voices", "3")
    # trained/default has KEY events and picks its own programs: a primer sets its key, so no --key/--program here
    page.set_input_files("#primer", files=[{"name": "primer.mid", "mimeType": "audio/midi", "buffer": primer_midi()}])
    page.click("#generate")
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)
    page.wait_for_function("() => { const a = document.getElementById('audio'); "
                           "return a.readyState >= 1 && a.duration > 1; }", timeout=30_000)
    page.wait_for_function("() => { const i = document.getElementById('roll'); "
                           "return i.complete && i.naturalWidth === 1000; }", timeout=30_000)
    assert page.locator("#summary").inner_text().startswith("seed 7 · ")
    assert page.locator("#error").is_hidden() and not errors, errors
    if os.environ.get("MUSICGEN_SCREENSHOT"):
        page.screenshot(path=os.environ["MUSICGEN_SCREENSHOT"], full_page=True)
    with page.expect_download() as info:
        page.click("#download-midi")
    path = tmp_path / info.value.suggested_filename
    info.value.save_as(path)
    assert path.suffix == ".mid"
    midi = pretty_midi.PrettyMIDI(str(path))
    notes = sorted(midi.instruments[0].notes, key=lambda n: (n.start, n.pitch))
    assert [n.pitch for n in notes[:3]] == [67, 71, 74] and len(notes) > 3  # the primer, then the model's notes
    with page.expect_download() as info:
        page.click("#download-json")
    sidecar = Path(info.value.path()).read_text()
    assert '"seed": 7' in sidecar and '"primer.mid"' in sidecar and '"key": "G major"' in sidecar
    assert '"voices": 3' in sidecar
    page.close()


def test_invalid_value_shows_a_message(browser, url):
    page = browser.new_page()
    page.goto(url)
    page.wait_for_function("() => document.getElementById('model').options.length > 0")
    page.fill("#temperature", "0")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert page.locator("#error").inner_text() == "temperature: expected a number in (0, 10], got 0"
    assert page.locator("#result").is_hidden()
    page.fill("#temperature", "1")
    page.check("#limit-seconds")
    page.fill("#limit-value", "ten")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('error').textContent.startsWith('seconds:')")
    assert "got 'ten'" in page.locator("#error").inner_text()
    page.fill("#limit-value", "10")
    page.fill("#voices", "many")
    page.click("#generate")
    page.wait_for_function("() => document.getElementById('error').textContent.startsWith('voices:')")
    assert page.locator("#error").inner_text() == "voices: expected an integer in [0, 64] or null, got 'many'"
    page.close()
