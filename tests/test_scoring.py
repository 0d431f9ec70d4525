"""scoring: numpy per-event NLL equals Keras's cross-entropy on the same weights (three cells), batching is exact."""

import numpy as np
import pytest

from musicgen.config import ModelConfig
from musicgen.sampler import StepModel
from musicgen.scoring import score_pieces, summarize


def _pieces(vocab, lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(1, vocab, size=n) for n in lengths]


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_numpy_nll_matches_keras_per_event(cell):
    import keras

    from musicgen.models import build_model, export_weights

    cfg = ModelConfig(vocab_size=23, cell=cell, embedding_dim=8, units=12, layers=2, dropout=0.0)
    keras.utils.set_random_seed(1)
    model = build_model(cfg)
    pieces = _pieces(cfg.vocab_size, [9, 30, 2, 17])
    scores = score_pieces(StepModel(export_weights(model, cfg), cfg, dtype=np.float64), pieces, batch=3)
    for piece, score in zip(pieces, scores):
        logits = np.asarray(model(piece[None, :-1], training=False))[0].astype(np.float64)
        logp = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1, keepdims=True)) \
            - logits.max(1, keepdims=True)
        expected = -logp[np.arange(len(piece) - 1), piece[1:]]
        np.testing.assert_allclose(score.nll, expected, rtol=1e-5, atol=1e-5)
        assert np.array_equal(score.correct, logits.argmax(1) == piece[1:])


def test_batching_and_truncation_do_not_change_scores():
    cfg = ModelConfig(vocab_size=11, cell="gru", embedding_dim=4, units=5, layers=1, dropout=0.0)
    rng = np.random.default_rng(0)
    weights = {"embedding": rng.normal(size=(11, 4)), "rnn_0_kernel": rng.normal(size=(4, 15)),
               "rnn_0_recurrent_kernel": rng.normal(size=(5, 15)), "rnn_0_bias": rng.normal(size=(2, 15)),
               "logits_kernel": rng.normal(size=(5, 11)), "logits_bias": rng.normal(size=11)}
    step = StepModel(weights, cfg, dtype=np.float64)
    pieces = _pieces(11, [5, 40, 1, 12, 33])
    one = score_pieces(step, pieces, batch=1)
    many = score_pieces(step, pieces, batch=64)
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.nll, b.nll, rtol=1e-12)
    assert len(one[2].nll) == 0
    first = score_pieces(step, pieces, max_events=4)
    assert [len(s.nll) for s in first] == [4, 4, 0, 4, 4]
    np.testing.assert_allclose(first[1].nll, one[1].nll[:4])
    # a start state other than zero changes the first events
    state = [(np.full(5, 0.5),)]
    moved = score_pieces(step, pieces, start_state=state)
    assert not np.allclose(moved[1].nll[:3], one[1].nll[:3])
    total = summarize(one)
    assert total["events"] == 4 + 39 + 11 + 32
    assert np.isclose(total["nll_nats"], np.concatenate([s.nll for s in one]).mean())
    assert summarize(one, first=2)["events"] == 8


def test_a_model_with_context_is_scored_with_each_piece_s_own_context():
    from musicgen.config import TokenizerConfig
    from musicgen.context import context_features, context_sizes
    from musicgen.models import expected_weight_shapes
    from musicgen.tokenizer import Tokenizer, time_signature_value

    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=0, programs=False,
                                    meter=True, key="token"))
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="gru", embedding_dim=4, units=5, layers=1, dropout=0.0,
                      context=context_sizes(tok.config))
    rng = np.random.default_rng(3)
    weights = {k: rng.normal(0, 0.5, s) for k, s in expected_weight_shapes(cfg).items()}
    step = StepModel(weights, cfg, dtype=np.float64, tokenizer=tok)
    head = [tok.bos_id, tok.token("KEY", 7), tok.token("TIME_SIG", time_signature_value(3, 4))]
    pieces = [np.array(head + list(rng.integers(3, 3 + 24 + 8, n)), np.int64) for n in (20, 6, 33)]
    scores = score_pieces(step, pieces, batch=2)
    for piece, score in zip(pieces, scores):
        logits, _ = step.run(piece[None], context=context_features(piece, tok)[None])
        logits = logits[0, :-1]
        top = logits.max(1)
        expected = top + np.log(np.exp(logits - top[:, None]).sum(1)) - logits[np.arange(len(piece) - 1), piece[1:]]
        np.testing.assert_allclose(score.nll, expected, rtol=1e-12)
    blind = score_pieces(StepModel({**weights, **{f"context_{k}": np.zeros_like(weights[f"context_{k}"])
                                                  for k in range(4)}}, cfg, np.float64, tok), pieces)
    assert not np.allclose(blind[0].nll, scores[0].nll)  # the context matters
    with pytest.raises(ValueError, match="tokenizer"):
        score_pieces(StepModel(weights, cfg, dtype=np.float64), pieces)


def test_masks_on_renormalize_over_the_events_the_rules_allow():
    """``rules=``: at every step the target's probability is renormalized over the events the sampler's rules allow,
    so no event costs more than without masks; a NOTE_OFF right after its NOTE_ON is the only NOTE_OFF allowed, and
    the first event after BOS (a NOTE_ON, no note sounding yet) is worked out by hand from the logits and the mask.
    An event the rules forbid (a NOTE_OFF of a silent pitch) is scored without the mask and counted."""
    import functools

    from conftest import numpy_bundle

    from musicgen.rules import EventRules

    bundle = numpy_bundle("gru", seed=3)
    tok = bundle.tokenizer
    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=tok)
    on, off, shift = (tok.ranges[k][0] for k in ("NOTE_ON", "NOTE_OFF", "TIME_SHIFT"))
    piece = np.array([tok.bos_id, on + 3, shift + 5, off + 3, on + 7, on + 10, shift + 2, off + 10, off + 7])
    rules = functools.partial(EventRules, tok, allow_eos=True)
    plain, = score_pieces(step, [piece])
    masked, = score_pieces(step, [piece], rules=rules)
    assert masked.forbidden == 0 and np.all(masked.nll <= plain.nll + 1e-12) and masked.nll.sum() < plain.nll.sum()
    logits, _ = step.step(step.init_state(1), piece[:1])
    allowed = EventRules(tok, 1, allow_eos=True)
    allowed.observe(piece[:1])
    mask = np.isfinite(allowed.apply(np.zeros((1, tok.vocab_size))))[0]
    first = np.asarray(logits, np.float64)[0]
    expected = np.log(np.exp(first[mask]).sum()) - first[piece[1]]
    assert np.isclose(masked.nll[0], expected) and mask[piece[1]] and not mask[off:off + tok.ranges["NOTE_OFF"][1]].any()
    broken = piece.copy()
    broken[3] = off + 4  # pitch 4 is not sounding
    bad, = score_pieces(step, [broken], rules=rules)
    assert bad.forbidden == 1
    unmasked, = score_pieces(step, [broken])
    assert np.isclose(bad.nll[2], unmasked.nll[2])  # the forbidden event: scored as without masks
