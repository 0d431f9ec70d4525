import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import TokenizerConfig
from musicgen.dedup import fingerprint
from musicgen.errors import UsageError
from musicgen.fingerprints import batch_fingerprints, flat_fingerprints
from musicgen.tokenizer import Tokenizer
from tests.test_dedup import chorale, encode

BEAT = TokenizerConfig()
CONFIGS = [BEAT, TokenizerConfig.seconds(), TokenizerConfig(voices=4), TokenizerConfig(key="normalize"),
           TokenizerConfig(velocity_bins=0, programs=False)]


def same(batch, pieces, tok, ngram):
    for j, p in enumerate(pieces):
        ref = fingerprint(p, tok, ngram)
        got = batch[j]
        assert np.array_equal(got.hashes, ref.hashes) and np.array_equal(got.anchors, ref.anchors), j
        assert got.anchors.dtype == np.int16 and got.music == ref.music, j


def test_a_batch_gives_each_piece_its_own_fingerprint():
    tok = Tokenizer(BEAT)
    a, b = encode(chorale(0)), encode(chorale(1), shift=4)
    eos = tok.eos_id
    tail = np.concatenate([b, [tok.token("NOTE_ON", 60), tok.token("TIME_SHIFT", 12), eos]])  # after EOS: ignored
    short = np.array([tok.bos_id, tok.token("NOTE_ON", 60), tok.token("TIME_SHIFT", 3), eos])  # one note: no key
    up = encode(chorale(0), shift=4)
    pieces = [a, np.zeros(0, np.int32), tail, short, a[:40], b, up]
    batch = batch_fingerprints(pieces, tok, 8)
    same(batch, pieces, tok, 8)
    assert batch.sizes.tolist()[1] == 0 and batch.music[1] == "" and batch.music[3] == ""
    assert np.array_equal(batch[2].hashes, batch[5].hashes)  # the EOS tail changes nothing
    assert np.array_equal(batch[0].hashes, batch[6].hashes)  # transposed: the same shingles
    assert batch.offsets.tolist() == np.concatenate([[0], np.cumsum(batch.sizes)]).tolist()


@pytest.mark.parametrize("config", CONFIGS, ids=["beat", "seconds", "voices", "normalize", "bare"])
def test_random_token_sequences_match_the_one_piece_function(config):
    tok = Tokenizer(config)
    rng = np.random.default_rng(3)
    pieces = [rng.integers(0, tok.vocab_size, rng.integers(0, 400)) for _ in range(60)]
    same(batch_fingerprints(pieces, tok, 3), pieces, tok, 3)
    same(batch_fingerprints(pieces, tok, 8), pieces, tok, 8)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, Tokenizer(BEAT).vocab_size - 1), max_size=120), max_size=6),
       st.integers(2, 6))
def test_any_batch_matches_piece_by_piece(pieces, ngram):
    tok = Tokenizer(BEAT)
    arrays = [np.array(p, np.int64) for p in pieces]
    same(batch_fingerprints(arrays, tok, ngram), arrays, tok, ngram)


def test_flat_input_and_a_bad_id():
    tok = Tokenizer(BEAT)
    a, b = encode(chorale(2)), encode(chorale(3))
    flat = flat_fingerprints(np.concatenate([a, b]), np.array([a.size, b.size]), tok, 8)
    same(flat, [a, b], tok, 8)
    assert len(batch_fingerprints([], tok, 8)) == 0
    with pytest.raises(UsageError, match=f"tokens: id {tok.vocab_size} is outside"):
        batch_fingerprints([a, np.array([1, tok.vocab_size])], tok, 8)
