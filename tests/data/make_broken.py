"""Write tests/data/broken/: small, deliberately odd or broken files for the ingest tests.

Run from the repository root: ``python tests/data/make_broken.py``. The bytes are built by hand (no MIDI library), so
the output is identical on every run; tests/data/README.md lists every file and what ingest makes of it.
"""

from __future__ import annotations

import random
import struct
from pathlib import Path

OUT = Path(__file__).parent / "broken"


def vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def header(fmt: int = 0, ntracks: int = 1, division: int = 480, length: int = 6) -> bytes:
    return b"MThd" + struct.pack(">IHHH", length, fmt, ntracks, division) + b"\0" * (length - 6)


def track(events: bytes, declared: int | None = None) -> bytes:
    body = events + b"\x00\xff\x2f\x00"  # end of track
    return b"MTrk" + struct.pack(">I", len(body) if declared is None else declared) + body


def tempo(bpm: float) -> bytes:
    """Set-tempo meta event. Below ~3.58 bpm the microseconds per quarter overflow the standard 3 data bytes, so
    the event is written with as many bytes as it needs (a length the standard does not allow)."""
    mspq = round(60_000_000 / bpm)
    size = max(3, (mspq.bit_length() + 7) // 8)
    return b"\x00\xff\x51" + bytes([size]) + mspq.to_bytes(size, "big")


def notes(pitches, dur: int = 480, gap: int = 0, channel: int = 0, vel: int = 90) -> bytes:
    """One note after another: (delta gap) note on, (delta dur) note off."""
    out = b""
    for p in pitches:
        out += vlq(gap) + bytes([0x90 | channel, p, vel]) + vlq(dur) + bytes([0x80 | channel, p, 0])
    return out


def many_notes(n: int) -> bytes:
    """n short notes with running status (note-on velocity 0 as note-off): 6 bytes a note."""
    out = bytearray(b"\x00\x90\x3c\x50\x01\x3c\x00")
    for i in range(1, n):
        p = 48 + i % 24
        out += bytes([0, p, 80, 1, p, 0])
    return bytes(out)


SCALE = [60, 62, 64, 65, 67]
FILES: dict[str, bytes] = {
    "empty.mid": b"",
    "truncated.mid": (header() + track(tempo(120) + notes(SCALE)))[:40],
    "random_bytes.mid": random.Random(0).randbytes(300),
    "bad_header_length.mid": header(length=4)[:12] + track(notes(SCALE)),
    "track_longer_than_file.mid": header() + track(notes(SCALE), declared=100_000),
    "division_zero.mid": header(division=0) + track(notes(SCALE)),
    "header_only.mid": header(ntracks=0),
    "text_named.mid": b"This is not a MIDI file, just some text with a .mid name.\n",
    "no_notes.mid": header() + track(tempo(120) + b"\x00\xff\x03\x05Empty"),
    "drums_only.mid": header() + track(notes([36, 38, 42, 36], dur=120, channel=9)),
    "tempo_1bpm.mid": header() + track(tempo(1) + notes(SCALE)),
    "tempo_3.58bpm.mid": header() + track(tempo(60_000_000 / 0xFFFFFF) + notes(SCALE)),
    "tempo_1200bpm.mid": header() + track(tempo(1200) + notes(SCALE)),
    "hour_gap.mid": header() + track(tempo(120) + notes([60]) + notes([64], gap=480 * 2 * 3600)),
    "many_notes.mid": header() + track(many_notes(20_000)),
    "type2.mid": header(fmt=2, ntracks=2) + track(notes(SCALE)) + track(notes(SCALE[::-1])),
    "one_tick_per_beat.mid": header(division=1) + track(notes(SCALE, dur=1)),
    "upper/UPPER_CASE.MID": header() + track(tempo(90) + notes(SCALE + [72], dur=240)),
    "notes.txt": b"A plain text file beside the music; ingest must list it as ignored.\n",
}


def main() -> None:
    for name, data in FILES.items():
        path = OUT / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    print(f"wrote {len(FILES)} files to {OUT}")


if __name__ == "__main__":
    main()
