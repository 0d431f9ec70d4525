"""musicgen.streaming: window-by-window batches equal dataset.StreamBatches' (lists and the sharded store)."""

from functools import partial

import numpy as np
import pytest

from musicgen.dataset import StreamBatches, transposer
from musicgen.errors import UsageError
from musicgen.streaming import StreamingBatches


def _pieces():
    # piece j holds values 100*(j+1) + 0..len-1: every event unique and traceable
    return [np.arange(n, dtype=np.int32) + 100 * (j + 1) for j, n in enumerate([7, 5, 9, 4, 0, 11])]


def _assert_same(a, b, epochs=3):
    assert (a.steps_per_epoch, a.targets_per_epoch) == (b.steps_per_epoch, b.targets_per_epoch)
    for epoch in range(epochs):
        got, want = list(a.epoch(epoch)), list(b.epoch(epoch))
        assert len(got) == len(want) == a.steps_per_epoch
        for (x, y, w), (x2, y2, w2) in zip(got, want):
            for u, v in zip(x if isinstance(x, tuple) else (x,), x2 if isinstance(x2, tuple) else (x2,)):
                assert u.dtype == v.dtype
                np.testing.assert_array_equal(u, v)
            np.testing.assert_array_equal(y, y2)
            np.testing.assert_array_equal(w, w2)
            assert w.dtype == np.float32 and y.dtype == np.int32


@pytest.mark.parametrize("batch_size,bptt,seed", [(3, 4, 0), (1, 6, 1), (4, 5, 2), (7, 3, 3), (2, 40, 4)])
def test_equal_to_stream_batches_on_lists(batch_size, bptt, seed):
    _assert_same(StreamingBatches(_pieces(), batch_size, bptt, seed, pad_id=9),
                 StreamBatches(_pieces(), batch_size, bptt, seed, pad_id=9))


def test_hand_counted_layout_of_one_epoch():
    # 25 events (pieces of 7, 5, 9, 4): 24 targets, 3 rows of 8, bptt 4 -> 2 steps; row r starts at stream 8r
    pieces = _pieces()[:4]
    b = StreamingBatches(pieces, batch_size=3, bptt=4, seed=0)
    assert (b.events, b.row_length, b.steps_per_epoch) == (25, 8, 2)
    plan = b.plan(0)
    stream = np.roll(np.concatenate([pieces[i] for i in plan.order]), -plan.phase)
    xs = np.concatenate([x for x, _, _ in b.epoch(0)], axis=1)
    ys = np.concatenate([y for _, y, _ in b.epoch(0)], axis=1)
    assert xs.reshape(-1).tolist() == stream[:-1].tolist() and ys.reshape(-1).tolist() == stream[1:].tolist()


class FakeTokenizer:
    """Pitches are tokens 10..29; transposition adds the shift to those tokens."""

    def transpose_bounds(self, tokens):
        pitches = tokens[(tokens >= 10) & (tokens < 30)]
        return (-20, 20) if pitches.size == 0 else (10 - int(pitches.min()), 29 - int(pitches.max()))

    def transpose_tokens(self, tokens, semitones):
        out = np.array(tokens, copy=True)
        out[(tokens >= 10) & (tokens < 30)] += semitones
        return out


def test_equal_with_transposition_and_its_draws():
    rng = np.random.default_rng(5)
    pieces = [np.concatenate([[1], rng.integers(3, 32, size=int(n)), [2]]).astype(np.int32)
              for n in rng.integers(2, 30, size=12)]
    tok = FakeTokenizer()
    _assert_same(StreamingBatches(pieces, 3, 7, seed=11, tokenizer=tok, transpose=3),
                 StreamBatches(pieces, 3, 7, seed=11, augment=transposer(tok, 3)), epochs=4)
    with pytest.raises(UsageError, match="transpose: augmentation needs the tokenizer"):
        StreamingBatches(pieces, 3, 7, transpose=3)
    with pytest.raises(UsageError, match="batch_size: 64 streams need at least 65"):
        StreamingBatches([np.arange(10)], 64, 8)


def _context_pieces():
    from musicgen.config import TokenizerConfig
    from musicgen.tokenizer import Tokenizer, time_signature_value

    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=12, velocity_bins=0,
                                    programs=False, meter=True, key="token"))
    pieces = []
    for i in range(5):  # KEY(i), 3/4 or 4/4, 3 + i quarter notes of pitch 50 + i
        out = [tok.bos_id, tok.token("KEY", i), tok.token("TIME_SIG", time_signature_value(3 + i % 2, 4))]
        for _ in range(3 + i):
            out += [tok.token("NOTE_ON", 50 + i), tok.token("TIME_SHIFT", 12), tok.token("NOTE_OFF", 50 + i)]
        pieces.append(np.array(out + [tok.eos_id], np.int32))
    return tok, pieces


def test_equal_with_real_transposition_and_context_features():
    from musicgen.context import context_features

    tok, pieces = _context_pieces()
    features = partial(context_features, tokenizer=tok)
    for batch_size, bptt, seed in [(2, 5, 0), (3, 8, 1), (1, 64, 2)]:
        _assert_same(StreamingBatches(pieces, batch_size, bptt, seed, tokenizer=tok, transpose=2, features=features),
                     StreamBatches(pieces, batch_size, bptt, seed, augment=transposer(tok, 2), features=features))


def test_the_piece_cache_stays_bounded():
    b = StreamingBatches(_pieces() * 20, batch_size=2, bptt=3, seed=0, cache_pieces=3)
    for _ in b.epoch(0):
        assert len(b._cache) <= 3
    assert b.plan(0).order.size == 100  # the empty pieces are left out, as StreamBatches does


def test_equal_on_a_sharded_store_with_stored_bounds(tmp_path):
    from musicgen.cache import config_hash
    from musicgen.context import context_features
    from musicgen.shards import PieceSequence, ShardStore, write_store

    tok, pieces = _context_pieces()
    n = len(pieces)
    index = write_store(tmp_path, [f"k{i}" for i in range(n)], [f"p{i}.mid" for i in range(n)], [0] * n,
                        lambda i: (pieces[i], 120.0), tok, config_hash(tok.config), shard_bytes=60)
    assert len(index["shards"]) >= 3  # pieces of 15-27 events, 2 bytes each: a few per shard
    stored = PieceSequence(ShardStore(tmp_path)).take([4, 0, 2, 3])  # a split's training part, lazily
    features = partial(context_features, tokenizer=tok)
    chosen = [pieces[i] for i in (4, 0, 2, 3)]
    assert stored.bounds.tolist() == [list(tok.transpose_bounds(p)) for p in chosen]
    _assert_same(StreamingBatches(stored, 2, 6, 3, tokenizer=tok, transpose=2, features=features),
                 StreamBatches(chosen, 2, 6, 3, augment=transposer(tok, 2), features=features), epochs=3)


def test_fork_gives_the_same_batches_with_its_own_cache():
    pieces = [np.arange(1, 1 + n) for n in (5, 9, 4, 7)]
    source = StreamingBatches(pieces, batch_size=2, bptt=3, seed=1)
    first = source.batch(0, 0)
    twin = source.fork()
    assert twin._cache is not source._cache and len(twin._cache) == 0
    for k in range(source.steps_per_epoch):
        for a, b in zip(twin.batch(1, k), source.batch(1, k)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(twin.batch(0, 0), first):
        np.testing.assert_array_equal(a, b)
