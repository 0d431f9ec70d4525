"""start_state: the state sampling starts from (Keras parity, bundle part, generate), and the first-bars checks."""

import json
import math

import numpy as np
import pytest

from musicgen.bundle import load_bundle, save_bundle
from musicgen.config import ModelConfig, TokenizerConfig, TrainConfig
from musicgen.errors import BundleError
from musicgen.models import expected_weight_shapes
from musicgen.sampler import StepModel, sample_tokens
from musicgen.scoring import score_pieces
from musicgen.start_state import (arrays_state, compute_start_state, corpus_pitch_range, first_beats_out_of_range,
                                  load_start_state, save_start_state, start_metrics, state_arrays, states_after)
from musicgen.tokenizer import Tokenizer

CELLS = ["lstm", "gru", "simple_rnn"]
# 3 specials + 24 NOTE_ON (48..71) + 24 NOTE_OFF + 12 TIME_SHIFT = 63 ids
TOK = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=71, velocity_bins=0, programs=False, max_shift_steps=12))


def ids(*events):
    return [TOK.token(name, value) for name, value in events]


def random_weights(cfg, seed=0, scale=0.4):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, scale, s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}


def random_state(cfg, seed=1):
    rng = np.random.default_rng(seed)
    parts = 2 if cfg.cell == "lstm" else 1
    return [tuple(rng.uniform(-0.9, 0.9, cfg.units) for _ in range(parts)) for _ in range(cfg.layers)]


# ------------------------------------------------------------------------------------------ first-bars measures
def test_first_beats_out_of_range_counts_by_onset_beat():
    # 12 steps per quarter: notes at beats 0, 1, 3.9 (first 4 beats) and 4, 6 (later)
    tokens = [TOK.bos_id] + ids(("NOTE_ON", 48), ("TIME_SHIFT", 12), ("NOTE_OFF", 48), ("NOTE_ON", 60),
                                ("TIME_SHIFT", 12), ("TIME_SHIFT", 12), ("TIME_SHIFT", 11), ("NOTE_OFF", 60),
                                ("NOTE_ON", 71), ("TIME_SHIFT", 1), ("NOTE_ON", 50), ("TIME_SHIFT", 12),
                                ("TIME_SHIFT", 12), ("NOTE_ON", 62), ("TIME_SHIFT", 3)) + [TOK.eos_id]
    got = first_beats_out_of_range(TOK, [np.array(tokens)], pitch_lo=55, pitch_hi=65, beats=4)
    assert got == {"beats": 4, "pitch_lo": 55, "pitch_hi": 65, "first_notes": 3, "first_out": 2,
                   "first_share": 2 / 3, "later_notes": 2, "later_out": 1, "later_share": 0.5}
    two = first_beats_out_of_range(TOK, [np.array(tokens)] * 2, 48, 71, beats=1)
    assert (two["first_notes"], two["first_out"], two["later_notes"], two["later_out"]) == (2, 0, 8, 0)
    empty = first_beats_out_of_range(TOK, [np.array([TOK.bos_id, TOK.eos_id])], 48, 71)
    assert empty["first_notes"] == 0 and math.isnan(empty["first_share"])


def test_corpus_pitch_range_is_the_percentiles_of_the_notes():
    def piece(pitches):
        events = sum([[("NOTE_ON", p), ("TIME_SHIFT", 1), ("NOTE_OFF", p)] for p in pitches], [])
        return np.array([TOK.bos_id] + ids(*events) + [TOK.eos_id])

    pieces = [piece([50, 61]), piece([62, 70] + [60] * 996)]  # 1000 notes: 50, 60 x 996, 61, 62, 70
    assert corpus_pitch_range(TOK, pieces, 0.0, 100.0) == (50, 70)
    # linear percentiles, rounded: 0.1th = 50 + 0.999 * 10 = 59.99 -> 60; 99.9th = 62 + 0.001 * 8 -> 62
    assert corpus_pitch_range(TOK, pieces) == (60, 62)
    assert corpus_pitch_range(TOK, pieces, 1.0, 99.0) == (60, 60)
    with pytest.raises(ValueError, match="pieces"):
        corpus_pitch_range(TOK, [np.array([TOK.bos_id, TOK.eos_id])])


# ----------------------------------------------------------------------------------------------- state helpers
@pytest.mark.parametrize("cell", CELLS)
def test_states_after_is_the_final_state_of_each_piece(cell):
    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell=cell, embedding_dim=4, units=6, layers=2, dropout=0.0)
    step = StepModel(random_weights(cfg), cfg, dtype=np.float64)
    rng = np.random.default_rng(0)
    pieces = [rng.integers(1, TOK.vocab_size, n) for n in (7, 1, 20, 13)]
    start = random_state(cfg)
    after = states_after(step, pieces, start_state=start, batch=3)
    for k, piece in enumerate(pieces):  # one piece alone, step by step
        state = [tuple(a.reshape(1, -1) for a in layer) for layer in start]
        _, state = step.run(piece[None, :], state)
        for got, want in zip(after, state):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a[k], b[0], rtol=1e-12, atol=1e-12)
    mean = compute_start_state(step, pieces, eos_id=TOK.eos_id, tail=5)
    closed = [p if p[-1] == TOK.eos_id else np.append(p, TOK.eos_id) for p in pieces]
    tails = states_after(step, [p[-5:] for p in closed])
    for got, want in zip(mean, tails):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b.mean(axis=0))


def test_state_arrays_round_trip_and_are_checked(tmp_path):
    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell="lstm", embedding_dim=4, units=6, layers=2, dropout=0.0)
    state = random_state(cfg)
    assert sorted(state_arrays(state)) == ["rnn_0_c", "rnn_0_h", "rnn_1_c", "rnn_1_h"]
    back = load_start_state(save_start_state(state, tmp_path / "s.npz"), cfg)
    for a, b in zip(back, state):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, np.float32(y))
    arrays = state_arrays(state)
    with pytest.raises(BundleError, match="expected"):
        arrays_state({k: v for k, v in arrays.items() if k != "rnn_1_c"}, cfg)
    with pytest.raises(BundleError, match=r"\(6,\)"):
        arrays_state({**arrays, "rnn_0_h": np.zeros(5, np.float32)}, cfg)
    with pytest.raises(BundleError, match="finite"):
        arrays_state({**arrays, "rnn_0_h": np.full(6, np.nan, np.float32)}, cfg)
    np.savez(tmp_path / "bad.npz", rnn_0_h=np.array([{"x": 1}] * 6, dtype=object))
    with pytest.raises(BundleError, match="unreadable"):
        load_start_state(tmp_path / "bad.npz", ModelConfig(vocab_size=9, cell="gru", units=6, layers=1))


# -------------------------------------------------------------------------------------------- parity with Keras
@pytest.mark.parametrize("cell", CELLS)
def test_numpy_steps_from_a_start_state_match_keras_started_there(cell):
    import keras

    from musicgen.models import build_model, export_weights

    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell=cell, embedding_dim=8, units=12, layers=2, dropout=0.0)
    keras.utils.set_random_seed(2)
    model = build_model(cfg, batch_size=2, stateful=True)
    start = random_state(cfg)
    for i, layer_state in enumerate(start):
        for var, value in zip(model.get_layer(f"rnn_{i}").states, layer_state):
            var.assign(np.tile(np.float32(value), (2, 1)))
    tokens = np.random.default_rng(3).integers(1, TOK.vocab_size, (2, 25)).astype("int32")
    expected = np.asarray(model(tokens), np.float64)
    step = StepModel(export_weights(model, cfg), cfg, dtype=np.float64)
    got, _ = step.run(tokens, [tuple(np.tile(a, (2, 1)) for a in layer) for layer in start])
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())
    # score_pieces from that state gives Keras's per-event cross-entropy
    scores = score_pieces(step, list(tokens), start_state=start)
    logp = expected - expected.max(-1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
    for row, s in enumerate(scores):
        want = -logp[row, np.arange(24), tokens[row, 1:]]
        np.testing.assert_allclose(s.nll, want, atol=1e-4)


# --------------------------------------------------------------------------------- bundle part and generation
def _parts(cell="gru"):
    from musicgen.models import build_model

    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell=cell, embedding_dim=4, units=6, layers=2, dropout=0.0)
    return dict(model=build_model(cfg), model_config=cfg, train_config=TrainConfig(epochs=1),
                tokenizer_config=TOK.config, metrics={"val_nll": 1.5})


def test_bundle_start_state_is_optional_checksummed_and_used_by_generate(tmp_path):
    from musicgen.generate import generate

    parts = _parts("lstm")
    old = load_bundle(save_bundle(tmp_path / "old", **parts))
    assert old.start_state is None and "start_state.npz" not in old.info["files"]
    state = random_state(parts["model_config"])
    path = save_bundle(tmp_path / "new", start_state=state, **parts)
    new = load_bundle(path)
    assert new.info["files"]["start_state.npz"]
    np.testing.assert_allclose(new.start_state[1][1], state[1][1], rtol=1e-6)
    # old bundle: exactly the zero-state samples; new: the sampler fed from the stored state
    zero = sample_tokens(StepModel(old.weights, old.model_config), old.model_config, TOK, [TOK.bos_id], 40, 7,
                         num_samples=3)
    def same(generated, sampled):  # generate adds BOS before and EOS after; sample_tokens pads rows with PAD
        return all(np.array_equal(t[1:-1], s[s != TOK.pad_id]) for t, s in zip(generated, sampled))

    assert same(generate(old, length=40, seed=7, num_samples=3, max_note_length=0).tokens, zero)
    moved = sample_tokens(StepModel(new.weights, new.model_config), new.model_config, TOK, [TOK.bos_id], 40, 7,
                          num_samples=3, start_state=new.start_state)
    got = generate(new, length=40, seed=7, num_samples=3, max_note_length=0).tokens
    assert same(got, moved)
    sidecar = generate(new, length=5, seed=1).sidecars[0]  # the sidecar names the start state the sample came from
    assert sidecar["model_start_state_sha256"] == new.info["files"]["start_state.npz"]
    assert generate(old, length=5, seed=1).sidecars[0]["model_start_state_sha256"] is None
    assert not all(np.array_equal(a, b) for a, b in zip(moved, zero))
    # a primer is fed from the start state as well: primer + continuation == feeding both from it
    primer = np.array([TOK.bos_id] + ids(("NOTE_ON", 60), ("TIME_SHIFT", 6)))
    step = StepModel(new.weights, new.model_config, dtype=np.float64)
    direct, _ = step.run(primer[None, :], [tuple(np.asarray(a, np.float64)[None] for a in l) for l in state])
    first = sample_tokens(step, new.model_config, TOK, primer, 1, 0, start_state=new.start_state,
                          temperature=1e-3, close=False, max_note_steps=0)
    logits = direct[0, -1].copy()
    logits[[TOK.pad_id, TOK.bos_id, TOK.eos_id, TOK.token("NOTE_ON", 60)]] = -np.inf
    logits[TOK.ranges["NOTE_OFF"][0]:TOK.ranges["NOTE_OFF"][0] + 24] = -np.inf
    logits[TOK.token("NOTE_OFF", 60)] = direct[0, -1, TOK.token("NOTE_OFF", 60)]
    assert first[0, 0] == int(np.argmax(logits))
    # tampering is caught by bundle.json's checksum; a state of the wrong size by the shape check
    save_start_state([tuple(np.zeros(6) for _ in range(2))] * 2, path / "start_state.npz")
    with pytest.raises(BundleError, match="start_state.npz does not match its checksum"):
        load_bundle(path)
    save_start_state([tuple(np.zeros(5) for _ in range(2))] * 2, path / "start_state.npz")
    info = json.loads((path / "bundle.json").read_text())
    from musicgen.safeio import sha256_file

    info["files"]["start_state.npz"] = sha256_file(path / "start_state.npz")
    (path / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match=r"expected finite floats of shape \(6,\)"):
        load_bundle(path)


def test_start_metrics_compares_the_start_state_with_zeros_and_later_events(tmp_path):
    parts = _parts("gru")
    cfg = parts["model_config"]
    state = random_state(cfg)
    bundle = load_bundle(save_bundle(tmp_path / "b", start_state=state, **parts))
    rng = np.random.default_rng(0)
    pieces = [rng.integers(1, TOK.vocab_size, n) for n in (10, 50, 3)]
    got = start_metrics(bundle, pieces, first=4)
    step = StepModel(bundle.weights, cfg, dtype=np.float64)
    start = score_pieces(step, pieces, start_state=bundle.start_state)
    zero = score_pieces(step, pieces)
    assert got["nll_first_start"] == pytest.approx(np.concatenate([s.nll[:4] for s in start]).mean())
    assert got["nll_first_zero"] == pytest.approx(np.concatenate([s.nll[:4] for s in zero]).mean())
    assert got["nll_later"] == pytest.approx(np.concatenate([s.nll[4:] for s in start]).mean())
    assert (got["events_first"], got["events_later"], got["has_start_state"]) == (4 + 4 + 2, 5 + 45, True)
    bundle.start_state = None
    plain = start_metrics(bundle, pieces, first=4)
    assert plain["nll_first_start"] == plain["nll_first_zero"] == got["nll_first_zero"]


# ------------------------------------------------------------------------------ trained: the first bars (issue 19)
def melodies(tok, n, seed=0):
    """``n`` pieces: a walk of ±1–2 semitones inside MIDI 60..72, eighth notes (vocabulary 36..95 leaves room)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        pitch, tokens = 66, [tok.bos_id]
        for _ in range(int(rng.integers(30, 60))):
            pitch = int(np.clip(pitch + rng.choice([-2, -1, 1, 2]), 60, 72))
            tokens += [tok.token("NOTE_ON", pitch), tok.token("TIME_SHIFT", 6), tok.token("NOTE_OFF", pitch)]
        out.append(np.array(tokens + [tok.eos_id], np.int32))
    return out


def test_a_briefly_trained_model_starts_its_samples_as_well_as_it_continues_them(tmp_path):
    """Stateful BPTT only ever showed this LSTM BOS after another piece's EOS; from zeros its first beats left the
    corpus's range (17% of notes, later 0.5%) and its first-32-event NLL was 40% above the later events'."""
    from musicgen.dataset import split_pieces
    from musicgen.generate import generate
    from musicgen.trainer import train_model

    tok = Tokenizer(TokenizerConfig(min_pitch=36, max_pitch=95, velocity_bins=0, programs=False, max_shift_steps=12))
    pieces = melodies(tok, 60)
    keys = [f"piece-{i}" for i in range(len(pieces))]
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="lstm", embedding_dim=8, units=32, layers=1, dropout=0.0)
    train_cfg = TrainConfig(epochs=3, batch_size=4, bptt=32, val_fraction=0.2, learning_rate=1e-2, patience=5)
    result = train_model(pieces, keys, cfg, train_cfg, tmp_path / "run", tokenizer=tok, tensorboard=False,
                         verbose=0)
    assert [tuple(a.shape for a in layer) for layer in result.start_state] == [((32,), (32,))]
    bundle = load_bundle(save_bundle(tmp_path / "b", model=result.model, model_config=cfg, train_config=train_cfg,
                                     tokenizer_config=tok.config, metrics=result.metrics,
                                     start_state=result.start_state))
    train_idx, val_idx = split_pieces(keys, 0.2, 0)
    lo, hi = corpus_pitch_range(tok, [pieces[i] for i in train_idx])
    assert (lo, hi) == (60, 72)
    samples = generate(bundle, length=200, seed=1, num_samples=32).tokens
    got = first_beats_out_of_range(tok, samples, lo, hi, beats=4)
    assert got["first_notes"] > 100 and got["first_share"] <= got["later_share"] + 0.03, got
    metrics = start_metrics(bundle, [pieces[i] for i in val_idx], first=32)
    assert metrics["nll_first_start"] <= 1.1 * metrics["nll_later"], metrics
    assert metrics["nll_first_zero"] > metrics["nll_first_start"], metrics  # the zero start was the problem


def test_rtrl_trains_from_zeros_and_keeps_the_zero_start():
    from musicgen.train_rtrl import fit_rtrl

    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell="gru", embedding_dim=4, units=4, layers=1, dropout=0.0)
    pieces = [np.array([TOK.bos_id] + ids(("NOTE_ON", 60 + k), ("TIME_SHIFT", 6), ("NOTE_OFF", 60 + k))
                       + [TOK.eos_id]) for k in range(4)]
    result = fit_rtrl(pieces, [f"k{i}" for i in range(4)], cfg, TrainConfig(epochs=1, val_fraction=0.25),
                      verbose=0)
    assert result.start_state is None


def test_start_state_of_a_context_model_feeds_each_tail_the_context_of_its_whole_piece():
    from musicgen.context import context_features, context_sizes
    from musicgen.tokenizer import time_signature_value

    tok = Tokenizer(TOK.config.replace(meter=True, key="normalize"))
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="gru", embedding_dim=4, units=6, layers=1, dropout=0.0,
                      context=context_sizes(tok.config))
    step = StepModel(random_weights(cfg), cfg, dtype=np.float64, tokenizer=tok)
    rng = np.random.default_rng(2)
    head = [tok.bos_id, tok.token("KEY", 21), tok.token("TIME_SIG", time_signature_value(6, 8))]
    pieces = [np.array(head + list(rng.integers(3, 3 + 48 + 12, n)) + [tok.eos_id]) for n in (9, 30, 14)]
    mean = compute_start_state(step, pieces, eos_id=tok.eos_id, tail=6)
    finals = []
    for p in pieces:  # each tail from zeros, with the context its whole piece gives it
        _, state = step.run(p[None, -6:], context=context_features(p, tok)[None, -6:])
        finals.append(state[0][0][0])
    np.testing.assert_allclose(mean[0][0], np.mean(finals, axis=0), rtol=1e-12)
    _, alone = step.run(pieces[1][None, -6:], context=context_features(pieces[1][-6:], tok)[None])
    assert not np.allclose(alone[0][0][0], finals[1])  # the tail alone would not know its key and meter
