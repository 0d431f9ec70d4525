import numpy as np
import pytest

from musicgen.dataset import StreamBatches, eval_groups, split_pieces, transposer
from musicgen.errors import UsageError


def _keys(n):
    return [f"{i:064x}" for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete():
    keys = _keys(200)
    train, val = split_pieces(keys, 0.1, seed=3)
    again_train, again_val = split_pieces(keys, 0.1, seed=3)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    assert sorted(np.concatenate([train, val]).tolist()) == list(range(200))
    assert 8 <= len(val) <= 35  # ~20 expected
    # order independent: a piece's side depends on its key only
    rev_train, rev_val = split_pieces(keys[::-1], 0.1, seed=3)
    assert {keys[::-1][i] for i in rev_val} == {keys[i] for i in val}
    # the seed changes the split
    assert not np.array_equal(split_pieces(keys, 0.1, seed=4)[1], val)


def test_split_small_corpora_keep_both_sides_and_duplicates_together():
    train, val = split_pieces(_keys(2), 0.01, seed=0)
    assert len(train) == 1 and len(val) == 1
    train, val = split_pieces(_keys(3), 0.99, seed=0)
    assert len(train) >= 1 and len(val) >= 1
    assert split_pieces(_keys(5), 0.0, seed=0)[1].size == 0
    assert split_pieces(["a"], 0.5, seed=0)[0].tolist() in ([0], [])
    keys = ["same", "same", "other", "third", "fourth"]
    train, val = split_pieces(keys, 0.4, seed=1)
    assert (0 in val) == (1 in val)
    with pytest.raises(UsageError, match="val_fraction"):
        split_pieces(keys, 1.0, 0)


def _pieces():
    # piece j holds values 100*j + 0..len-1, so every event is unique and traceable
    return [np.arange(n, dtype=np.int32) + 100 * (j + 1) for j, n in enumerate([7, 5, 9, 4])]


def test_batches_layout_targets_shift_and_each_event_once():
    batches = StreamBatches(_pieces(), batch_size=3, bptt=4, seed=0)
    assert batches.events == 25 and batches.targets_per_epoch == 24
    assert batches.row_length == 8 and batches.steps_per_epoch == 2
    stream = batches.epoch_stream(0)
    assert sorted(stream.tolist()) == sorted(np.concatenate(_pieces()).tolist())
    got = list(batches.epoch(0))
    assert len(got) == 2
    for x, y, w in got:
        assert x.shape == y.shape == w.shape == (3, 4) and x.dtype == np.int32 and w.dtype == np.float32
    # rows continue across windows: batch 1 row i follows batch 0 row i in the stream
    xs = np.concatenate([g[0] for g in got], axis=1)
    ys = np.concatenate([g[1] for g in got], axis=1)
    ws = np.concatenate([g[2] for g in got], axis=1)
    assert np.array_equal(xs.reshape(-1), stream[:-1])
    assert np.array_equal(ys.reshape(-1), stream[1:])
    assert ws.sum() == 24
    # targets are the inputs shifted by one, inside each row
    assert np.array_equal(xs[:, 1:], ys[:, :-1])


def test_padding_has_zero_weight_and_pad_id():
    batches = StreamBatches(_pieces(), batch_size=4, bptt=5, seed=1, pad_id=0)
    x, y, w = batches.epoch_arrays(2)
    assert x.shape == (4, 10)  # 24 targets / 4 rows = 6 per row → 2 windows of 5
    assert w.sum() == 24 and np.all(w[:, :6] == 1) and np.all(w[:, 6:] == 0)
    assert np.all(x[:, 6:] == 0) and np.all(y[:, 6:] == 0)


def test_epochs_differ_but_are_reproducible_from_seed_and_epoch():
    a = StreamBatches(_pieces(), batch_size=2, bptt=3, seed=7)
    b = StreamBatches(_pieces(), batch_size=2, bptt=3, seed=7)
    assert np.array_equal(a.epoch_stream(5), b.epoch_stream(5))
    streams = {tuple(a.epoch_stream(e)) for e in range(8)}
    assert len(streams) > 4  # shuffled order and random phase each epoch
    gen = a.forever(first_epoch=3)
    first = [next(gen) for _ in range(a.steps_per_epoch)]
    expected = list(a.epoch(3))
    assert all(np.array_equal(f[0], e[0]) for f, e in zip(first, expected))
    assert np.array_equal(next(gen)[0], next(a.epoch(4))[0])


def test_phase_stays_below_bptt():
    pieces = [np.arange(50, dtype=np.int32)]
    batches = StreamBatches(pieces, batch_size=1, bptt=6, seed=0)
    for e in range(20):
        s = batches.epoch_stream(e)
        assert 0 <= int(s[0]) < 6 and np.array_equal(np.sort(s), np.arange(50))


def test_too_few_events_is_a_usage_error():
    with pytest.raises(UsageError, match="batch_size: 64"):
        StreamBatches([np.arange(10)], batch_size=64, bptt=8)


class FakeTokenizer:
    """Pitches are tokens 10..29; transposition adds the shift to those tokens."""

    def transpose_bounds(self, tokens):
        pitches = tokens[(tokens >= 10) & (tokens < 30)]
        return 10 - int(pitches.min()), 29 - int(pitches.max())

    def transpose_tokens(self, tokens, semitones):
        out = tokens.copy()
        mask = (tokens >= 10) & (tokens < 30)
        out[mask] += semitones
        return out


def test_transposition_stays_in_bounds_and_varies():
    aug = transposer(FakeTokenizer(), 3)
    assert transposer(FakeTokenizer(), 0) is None
    piece = np.array([1, 11, 5, 27, 2], dtype=np.int32)  # bounds (-1, +2)
    rng = np.random.default_rng(0)
    shifts = set()
    for _ in range(60):
        out = aug(piece, rng)
        assert out[0] == 1 and out[2] == 5 and out[4] == 2
        shift = int(out[1] - 11)
        assert out[3] - 27 == shift
        shifts.add(shift)
    assert shifts == {-1, 0, 1, 2}
    batches = StreamBatches([piece] * 4, batch_size=2, bptt=3, seed=0, augment=aug)
    assert batches.epoch_stream(0).shape == (20,)


def test_eval_groups_whole_pieces_from_their_start():
    pieces = [np.array([1, 2, 3, 4]), np.array([5, 6]), np.array([7]), np.array([8, 9, 10])]
    groups = list(eval_groups(pieces, group_size=2))
    assert len(groups) == 2
    x, y, w = groups[0]  # shortest first: [5, 6] and [8, 9, 10]
    assert x.tolist() == [[5, 0], [8, 9]] and y.tolist() == [[6, 0], [9, 10]]
    assert w.tolist() == [[1, 0], [1, 1]]
    x, y, w = groups[1]
    assert x.tolist() == [[1, 2, 3], [0, 0, 0]] and y.tolist() == [[2, 3, 4], [0, 0, 0]]
    assert w.sum() == 3


def test_eval_groups_pad_to_a_multiple():
    (x, y, w), = eval_groups([np.arange(1, 7)], group_size=1, multiple=4)
    assert x.tolist() == [[1, 2, 3, 4, 5, 0, 0, 0]] and w.sum() == 5


# ------------------------------------------------------------------------------------------------------ context
def _context_tokenizer():
    from musicgen.config import TokenizerConfig
    from musicgen.tokenizer import Tokenizer

    return Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=12, velocity_bins=0,
                                     programs=False, meter=True, key="token"))


def _beat_piece(tok, i):
    """Piece i: KEY(i), 3/4, four quarter notes of pitch 50 + i on beats 0, 1, 2, 0."""
    from musicgen.tokenizer import time_signature_value

    out = [tok.bos_id, tok.token("KEY", i), tok.token("TIME_SIG", time_signature_value(3, 4))]
    for _ in range(4):
        out += [tok.token("NOTE_ON", 50 + i), tok.token("TIME_SHIFT", 12), tok.token("NOTE_OFF", 50 + i)]
    return np.array(out + [tok.eos_id], np.int32)


def test_batches_carry_the_context_of_the_augmented_stream_cut_like_the_inputs():
    from functools import partial

    from musicgen.context import context_features

    tok = _context_tokenizer()
    key0 = tok.ranges["KEY"][0]

    def raise_key(tokens, rng):  # stands in for a transposition that moves the KEY
        return np.where((tokens >= key0) & (tokens < key0 + 24), tokens + 1, tokens)

    pieces = [_beat_piece(tok, i) for i in range(3)]
    batches = StreamBatches(pieces, batch_size=2, bptt=5, seed=0, augment=raise_key,
                            features=partial(context_features, tokenizer=tok))
    for epoch in range(4):
        (x, ctx), y, w = batches.epoch_arrays(epoch)
        assert ctx.shape == x.shape + (4,) and ctx.dtype == np.int32
        assert not ctx[w == 0].any()  # padding: unknown
        onsets = 0
        for i in range(3):
            on = (x == tok.token("NOTE_ON", 50 + i)) & (w > 0)
            onsets += on.sum()  # every onset, also those of the piece the phase cut in two (but the stream's last)
            assert (ctx[on][:, 3] == 1 + (i + 1)).all()  # key feature: 1 + the raised KEY value
            beats = sorted(ctx[on][:, 1].tolist())  # beats 0, 0, 1, 2 of the bar (+1)
            assert beats == [1, 1, 2, 3] or beats in ([1, 2, 3], [1, 1, 3], [1, 1, 2])
        assert onsets >= 11
        batch = next(batches.epoch(epoch))
        assert isinstance(batch[0], tuple) and batch[0][1].shape == (2, 5, 4)
        np.testing.assert_array_equal(batch[0][1], ctx[:, :5])


def test_eval_groups_give_each_piece_its_own_context():
    from functools import partial

    from musicgen.context import context_features

    tok = _context_tokenizer()
    pieces = [_beat_piece(tok, 0), _beat_piece(tok, 1)[:6]]
    (x, ctx), y, w = next(eval_groups(pieces, 3, multiple=4, features=partial(context_features, tokenizer=tok)))
    assert x.shape == (3, 16) and ctx.shape == (3, 16, 4)
    np.testing.assert_array_equal(ctx[0, :5], context_features(pieces[1], tok)[:-1])
    np.testing.assert_array_equal(ctx[1, :15], context_features(pieces[0], tok)[:-1])
    assert not ctx[0, 5:].any() and not ctx[2].any()
