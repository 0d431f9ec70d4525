from pathlib import Path

import numpy as np
import pytest

from musicgen import dedup, dedup_store
from musicgen.config import TokenizerConfig
from musicgen.dedup import Fingerprint, Pairs, cluster_ids, find_duplicates, note_features, similar_pairs
from musicgen.errors import UsageError
from musicgen.tokenizer import Tokenizer

BEAT, SECONDS = TokenizerConfig(), TokenizerConfig.seconds()


def chorale(seed: int, chords: int = 48):
    """Four voices moving by small random steps, one chord every 1 or 2 beats (times in quarter notes)."""
    rng = np.random.default_rng(seed)
    voices = np.array([48, 55, 62, 69])
    pitch, start, end, t = [], [], [], 0.0
    for _ in range(chords):
        voices = np.clip(voices + rng.integers(-3, 4, size=4), 36, 84)
        length = float(rng.choice([1.0, 2.0]))
        for p in voices.tolist():
            pitch.append(p), start.append(t), end.append(t + length)
        t += length
    return np.array(pitch), np.array(start), np.array(end)


def encode(notes, config=BEAT, shift=0, stretch=1.0, velocity=None):
    pitch, start, end = notes
    vel = np.full(pitch.size, 80) if velocity is None else velocity
    return Tokenizer(config).encode_arrays(pitch + shift, start * stretch, end * stretch, vel, np.zeros(pitch.size))


def test_note_features_by_hand():
    # C-E-G at beat 0, D one beat later, A two beats after that (IOI doubles: 2 log2 2 = 2)
    codes, anchors = note_features([60, 64, 67, 62, 69], [0, 0, 0, 12, 36])
    assert codes.tolist() == [(4 + 48) * 16 + 0, (3 + 48) * 16 + 0, (-5 + 48) * 16 + 1, (7 + 48) * 16 + (2 + 8)]
    assert anchors.tolist() == [60, 64, 67, 62]
    assert note_features([60], [0])[0].size == 0
    assert note_features([0, 127], [0, 5])[0].tolist() == [(48 + 48) * 16 + 1]  # intervals clip at ±48


def test_fingerprint_ignores_transposition_tempo_and_velocity():
    notes = chorale(0)
    base = dedup.fingerprints([encode(notes)], BEAT)[0]
    assert len(base) > 100
    rng = np.random.default_rng(1)
    same = [encode(notes, shift=5), encode(notes, shift=-7),
            encode(notes, velocity=rng.integers(1, 128, size=notes[0].size))]
    for tokens in same:
        assert np.array_equal(dedup.fingerprints([tokens], BEAT)[0].hashes, base.hashes)
    # seconds mode: at 120 and at 96 quarter notes per minute the time shifts differ, the fingerprint does not
    fast, slow = encode(notes, SECONDS, stretch=0.5), encode(notes, SECONDS, stretch=0.625)
    assert not np.array_equal(fast, slow)
    a, b = dedup.fingerprints([fast, slow], SECONDS)
    assert np.array_equal(a.hashes, b.hashes)
    assert dedup.transposition(base, dedup.fingerprints([encode(notes, shift=5)], BEAT)[0]) == 5


def test_planted_copies_cluster_and_distinct_pieces_do_not():
    originals = [chorale(seed) for seed in range(12)]
    pieces = [encode(n) for n in originals]
    rng = np.random.default_rng(7)
    pieces.append(encode(originals[3], shift=3))  # 12: transposed
    pieces.append(encode(originals[5], velocity=rng.integers(20, 120, size=originals[5][0].size)))  # 13
    half = tuple(x[:96] for x in originals[8])  # the first 24 chords
    pieces.append(encode(half, shift=-2))  # 14: a transposed excerpt
    edited = (originals[9][0].copy(), *originals[9][1:])
    edited[0][::25] += 1  # 15: a few wrong notes
    pieces.append(encode(edited))
    dups = find_duplicates(pieces, None, BEAT)
    c = dups.clusters
    assert c[12] == c[3] and c[13] == c[5] and c[14] == c[8] and c[15] == c[9]
    assert len(set(c[:12].tolist())) == 12  # distinct pieces stay apart
    assert [g.tolist() for g in dups.groups()] == [[3, 12], [5, 13], [8, 14], [9, 15]]
    assert (dups.pairs.similarity[dups.pairs.b == 14] == 1.0).all()  # containment: the excerpt is all inside
    assert 0.5 < dups.pairs.similarity[dups.pairs.b == 15][0] < 1.0


def test_seconds_mode_tempo_change_clusters():
    notes = [chorale(seed) for seed in range(4)]
    pieces = [encode(n, SECONDS, stretch=0.5) for n in notes] + [encode(notes[2], SECONDS, stretch=0.8, shift=1)]
    assert find_duplicates(pieces, None, SECONDS).clusters.tolist() == [0, 1, 2, 3, 2]


def test_similar_pairs_and_clusters_by_hand(monkeypatch):
    def fp(*h):
        return Fingerprint(np.array(sorted(h), np.uint64), np.zeros(len(h), np.int16))

    fps = [fp(*range(10)), fp(*range(10, 20)), fp(*range(4, 10), 50, 51), fp(*range(10, 14), 60), fp()]
    pairs = similar_pairs(fps, threshold=0.5)  # 0~2: 6 common of min(10, 8) = 0.75; 1~3: 4 common < MIN_COMMON
    assert (pairs.a.tolist(), pairs.b.tolist(), pairs.common.tolist()) == ([0], [2], [6])
    assert pairs.similarity.tolist() == [0.75]
    assert len(similar_pairs(fps, threshold=0.8)) == 0
    assert similar_pairs(fps, threshold=0.5, min_common=4).b.tolist() == [2, 3]
    assert similar_pairs(fps, 0.5, max_df=1).a.size == 0  # every shared shingle is too common
    for numpy_pairs in (2**22, 0):  # counted with numpy, and as a scipy sparse product: the same pairs and counts
        monkeypatch.setattr(dedup, "NUMPY_PAIRS", numpy_pairs)
        small = similar_pairs(fps, threshold=0.5, min_common=4)
        assert (small.a.tolist(), small.b.tolist(), small.common.tolist()) == ([0, 1], [2, 3], [6, 4])
    with pytest.raises(UsageError, match="threshold"):
        similar_pairs(fps, 0.0)
    chain = Pairs(np.array([0, 2]), np.array([2, 4]), np.ones(2), np.full(2, 9))
    assert cluster_ids(6, chain, keys=["a", "b", "c", "b", "d", "e"]).tolist() == [0, 1, 0, 1, 0, 2]
    ring = Pairs(np.array([3, 1, 0, 5]), np.array([7, 7, 6, 6]), np.ones(4), np.full(4, 9))  # 1~3 through 7
    assert cluster_ids(9, ring).tolist() == [0, 1, 2, 1, 3, 0, 0, 1, 4]


def test_opaque_ids_without_a_tokenizer():
    piece = np.arange(40) % 17
    pieces = [piece, np.concatenate([[99], piece]), np.arange(40) * 3]
    assert find_duplicates(pieces, None, None).clusters.tolist() == [0, 0, 1]


def _bundled_chorale(stem: str) -> np.ndarray:
    corpus = pytest.importorskip("music21.corpus")
    path = next(Path(p) for p in corpus.getComposer("bach") if Path(p).stem == stem and Path(p).suffix == ".mxl")
    return Tokenizer(BEAT).encode(path)


def test_real_chorale_duplicates_cluster():
    stems = ["bwv227.1", "bwv227.11", "bwv253", "bwv414", "bwv1.6"]
    dups = find_duplicates([_bundled_chorale(s) for s in stems], None, BEAT)
    assert [g.tolist() for g in dups.groups()] == [[0, 1], [2, 3]]
    by_pair = {(a, b): s for a, b, s in zip(dups.pairs.a.tolist(), dups.pairs.b.tolist(),
                                            dups.pairs.similarity.tolist())}
    assert by_pair[(0, 1)] > 0.9 and by_pair[(2, 3)] > 0.8
    assert abs(dedup.transposition(dups.fingerprints[2], dups.fingerprints[3])) == 2  # bwv414 is a tone away


def write_midi(path, notes, shift=0, qpm=120.0):
    import pretty_midi

    pitch, start, end = notes
    pm = pretty_midi.PrettyMIDI(initial_tempo=qpm)
    inst = pretty_midi.Instrument(0)
    beat = 60.0 / qpm
    for p, s, e in zip(pitch.tolist(), start.tolist(), end.tolist()):
        inst.notes.append(pretty_midi.Note(80, p + shift, s * beat, e * beat))
    pm.instruments.append(inst)
    pm.write(str(path))


def test_ingest_records_clusters_and_the_cli_lists_them(tmp_path, capsys):
    import json

    from musicgen.cli import main
    from musicgen.corpus import ingest

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for seed in range(4):
        write_midi(corpus / f"piece{seed}.mid", chorale(seed))
    write_midi(corpus / "piece1-up3-slow.mid", chorale(1), shift=3, qpm=90.0)
    cache = tmp_path / "cache"
    ingest(corpus, cache, progress=False)
    manifest = json.loads((cache / "manifest.json").read_text())
    assert manifest["clusters"] == [{"members": ["piece1-up3-slow.mid", "piece1.mid"], "similarity": [1.0, 1.0],
                                     "semitones": [0, -3]}]
    record = json.loads((cache / dedup_store.CLUSTERS_FILE).read_text())
    by_path = dict(zip(record["paths"], record["cluster"]))
    assert by_path["piece1.mid"] == by_path["piece1-up3-slow.mid"] and len(set(by_path.values())) == 4
    assert record["threshold"] == dedup.DEFAULT_THRESHOLD and record["ngram"] == dedup.DEFAULT_NGRAM

    assert main(["corpus", "duplicates", str(cache)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "2 pieces: piece1-up3-slow.mid | piece1.mid (-3 st, 1.000)"
    assert lines[1].startswith("5 pieces in 4 clusters (3 of 1, 1 of 2); 1 near-duplicate groups hold 2 pieces "
                               "(threshold 0.5, 8-note shingles")
    assert main(["corpus", "duplicates", str(cache), "--threshold", "0"]) == 2
    assert "--threshold: expected a number in (0, 1], got 0.0" in capsys.readouterr().err


def test_fingerprint_is_the_same_with_voices_on_or_off():
    # four voices, and a fifth part doubling the top one at the unison: with voices the doubled notes stay two
    # notes, without they merge; fingerprints count notes of one pitch and onset once, so both agree
    pitch, start, end = chorale(3)
    top = np.arange(3, pitch.size, 4)
    pitch, start, end = (np.concatenate([a, a[top]]) for a in (pitch, start, end))
    voice = np.concatenate([np.tile(np.arange(4), pitch.size // 5), np.full(top.size, 4)])
    voiced = TokenizerConfig(voices=5)
    with_voices = Tokenizer(voiced).encode_arrays(pitch, start, end, np.full(pitch.size, 80), np.zeros(pitch.size),
                                                  voice)
    assert Tokenizer(voiced).decode_arrays(with_voices)["pitch"].size == pitch.size  # nothing merged
    a = dedup.fingerprints([with_voices], voiced)[0]
    b = dedup.fingerprints([encode((pitch, start, end))], BEAT)[0]
    assert len(a) > 100 and np.array_equal(a.hashes, b.hashes)


def test_clusters_json_parts_make_the_text_json_dumps_makes():
    import json

    from musicgen.dedup_store import _json_parts

    record = {"threshold": 0.5, "ngram": 8, "shards": {"size": 1, "mtime_ns": 2}, "paths": ['a"b.mid', "é.mid"] * 5,
              "keys": [], "cluster": np.arange(7), "groups": [{"members": ["x"], "similarity": [0.5]}]}
    plain = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in record.items()}
    for batch in (1, 3, 4096):
        assert "".join(_json_parts(record, batch)) == json.dumps(plain) + "\n"
