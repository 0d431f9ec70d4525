"""numpy step kernels vs Keras, logit filters, inverse-CDF draws, validity masks, the sampling loop."""

import numpy as np
import pytest

from musicgen.config import ModelConfig, TokenizerConfig
from musicgen.models import expected_weight_shapes
from musicgen.sampler import EventRules, StepModel, draw, filter_logits, init_state, sample_tokens, step
from musicgen.tokenizer import Tokenizer

TOK = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4))  # 3+12+12+8+4+129


def random_weights(cfg, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, scale, s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}


def ids(*events):
    return [TOK.token(name, value) for name, value in events]


# ------------------------------------------------------------------------------------------------- Keras parity
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_step_kernels_match_keras_logits(cell, layers):
    import keras

    from musicgen.models import build_model, export_weights

    cfg = ModelConfig(vocab_size=23, cell=cell, embedding_dim=8, units=16, layers=layers, dropout=0.1)
    keras.utils.set_random_seed(7)
    model = build_model(cfg)
    rng = np.random.default_rng(1)
    for i in range(layers):  # Keras initializes biases at zero (LSTM forget at one): make them matter
        bias = model.get_layer(f"rnn_{i}").cell.bias
        bias.assign(rng.normal(0, 0.5, bias.shape).astype("float32"))
    model.get_layer("logits").bias.assign(rng.normal(0, 0.5, 23).astype("float32"))
    weights = export_weights(model, cfg)
    tokens = rng.integers(0, 23, (3, 30)).astype("int32")
    expected = np.asarray(model(tokens))

    got, _ = StepModel(weights, cfg).run(tokens)
    assert got.dtype == np.float32 and got.shape == (3, 30, 23)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    # the functional API (raw dict each call) gives the same numbers, and the state carries across calls
    state = init_state(weights, cfg, 3)
    for t in range(30):
        logits, state = step(weights, cfg, state, tokens[:, t])
    np.testing.assert_allclose(logits, got[:, -1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_step_kernels_match_keras_logits_with_context(cell):
    import keras

    from musicgen.models import build_model, export_weights

    cfg = ModelConfig(vocab_size=23, cell=cell, embedding_dim=8, units=16, layers=2, dropout=0.0, context=(5, 3, 7))
    keras.utils.set_random_seed(3)
    model = build_model(cfg)
    assert [t.name for t in model.inputs] == ["tokens", "context"]
    rng = np.random.default_rng(2)
    for k, size in enumerate(cfg.context):  # embeddings start small: make each feature move the logits
        emb = model.get_layer(f"context_{k}").embeddings
        emb.assign(rng.normal(0, 1.0, emb.shape).astype("float32"))
    weights = export_weights(model, cfg)
    assert {k: v.shape for k, v in weights.items()} == expected_weight_shapes(cfg)
    tokens = rng.integers(0, 23, (3, 20)).astype("int32")
    context = np.stack([rng.integers(0, n, (3, 20)) for n in cfg.context], axis=-1).astype("int32")
    expected = np.asarray(model((tokens, context)))
    without = np.asarray(model((tokens, np.zeros_like(context))))
    assert np.abs(expected - without).max() > 0.1  # the context is not ignored
    got, _ = StepModel(weights, cfg).run(tokens, context=context)
    assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    with pytest.raises(ValueError, match="context"):
        StepModel(weights, cfg).step(StepModel(weights, cfg).init_state(3), tokens[:, 0])


def test_without_context_the_model_is_the_one_built_before_context_existed():
    from musicgen.models import build_model

    cfg = ModelConfig(vocab_size=23, cell="gru", embedding_dim=8, units=16, layers=1, dropout=0.0)
    model = build_model(cfg)
    assert [layer.name for layer in model.layers] == ["tokens", "embedding", "rnn_0", "logits"]
    assert [w.shape for w in model.get_weights()] == [(23, 8), (8, 48), (16, 48), (2, 48), (16, 23), (23,)]
    assert "context" not in cfg.to_dict()


def test_step_does_not_modify_the_state_it_is_given():
    cfg = ModelConfig(vocab_size=TOK.vocab_size, cell="lstm", embedding_dim=4, units=8, layers=2)
    model = StepModel(random_weights(cfg), cfg)
    state = model.init_state(2)
    _, state1 = model.step(state, np.array([1, 5]))
    before = [a.copy() for layer in state1 for a in layer]
    model.step(state1, np.array([7, 9]))
    assert all(np.array_equal(a, b) for a, b in zip(before, [a for layer in state1 for a in layer]))
    assert all(not a.any() for layer in state for a in layer)


# --------------------------------------------------------------------------------------------------- filters
def probs_row():
    return np.log(np.array([[0.1, 0.2, 0.3, 0.4]], np.float32))


def kept(logits):
    return np.isfinite(logits[0]).tolist()


def test_top_k_keeps_the_k_most_likely():
    assert kept(filter_logits(probs_row(), top_k=2)) == [False, False, True, True]
    assert kept(filter_logits(probs_row(), top_k=1)) == [False, False, False, True]
    assert kept(filter_logits(probs_row(), top_k=0)) == [True] * 4
    assert kept(filter_logits(probs_row(), top_k=9)) == [True] * 4


@pytest.mark.parametrize("p, expected", [(0.4, [False, False, False, True]), (0.41, [False, False, True, True]),
                                         (0.7, [False, False, True, True]), (0.71, [False, True, True, True]),
                                         (1e-9, [False, False, False, True]), (1.0, [True] * 4)])
def test_top_p_keeps_the_smallest_set_reaching_p(p, expected):
    assert kept(filter_logits(probs_row(), top_p=p)) == expected


def test_temperature_divides_logits_and_filters_respect_masked_entries():
    row = np.array([[1.0, -np.inf, 3.0, 2.0]], np.float32)
    np.testing.assert_array_equal(filter_logits(row.copy(), temperature=0.5), [[2.0, -np.inf, 6.0, 4.0]])
    assert kept(filter_logits(row.copy(), top_k=3)) == [True, False, True, True]
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(row.copy(), temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(row.copy(), top_p=0)


def test_draw_is_the_inverse_cdf():
    logits = np.repeat(np.log(np.array([[0.1, 1.0, 0.2, 0.3, 0.4]], np.float32)), 6, axis=0)
    logits[:, 1] = -np.inf  # id 1: masked
    got = draw(logits, np.array([0.0, 0.05, 0.15, 0.35, 0.65, 0.999999]))
    assert got.tolist() == [0, 0, 2, 3, 4, 4]
    rng = np.random.default_rng(0)
    many = draw(np.repeat(logits[:1], 40000, axis=0), rng.random(40000))
    np.testing.assert_allclose(np.bincount(many, minlength=5) / 40000, [0.1, 0.0, 0.2, 0.3, 0.4], atol=0.01)


# ---------------------------------------------------------------------------------------------------- masks
def allowed(rules, stream=0):
    logits = rules.apply(np.zeros((rules.batch, TOK.vocab_size), np.float32))
    return {TOK.describe(i) for i in np.flatnonzero(np.isfinite(logits[stream]))}


def feed(rules, tokens):
    for t in tokens:
        rules.observe(np.array([t]))


def test_note_off_only_for_sounding_pitches_of_the_current_program():
    rules = EventRules(TOK, 1)
    a = allowed(rules)
    assert not any(name == "NOTE_OFF" for name, _ in a)
    assert {("PAD", 0), ("BOS", 0), ("EOS", 0)} & a == set()
    assert ("NOTE_ON", 48) in a and ("TIME_SHIFT", 8) in a and ("PROGRAM", 128) in a
    feed(rules, ids(("NOTE_ON", 50), ("NOTE_ON", 52), ("PROGRAM", 40), ("NOTE_ON", 55)))
    a = allowed(rules)
    assert {v for name, v in a if name == "NOTE_OFF"} == {55}
    assert ("NOTE_ON", 55) not in a and ("NOTE_ON", 50) in a  # 50 sounds in program 0, not in 40
    feed(rules, ids(("PROGRAM", 0), ("NOTE_OFF", 50)))
    assert {v for name, v in allowed(rules) if name == "NOTE_OFF"} == {52}
    assert rules.sounding.tolist() == [2]
    assert rules.sounding_notes(0) == [(0, 52), (40, 55)]
    assert rules.closing_tokens(0) == ids(("NOTE_OFF", 52), ("PROGRAM", 40), ("NOTE_OFF", 55))


def test_orphan_note_off_in_a_primer_keeps_the_count_right():
    rules = EventRules(TOK, 1)
    feed(rules, ids(("NOTE_OFF", 50), ("NOTE_ON", 50), ("NOTE_ON", 50)))
    assert rules.sounding.tolist() == [1]


def test_polyphony_cap_pitch_range_and_eos():
    rules = EventRules(TOK, 2, pitch_range=(50, 53), max_polyphony=2, allow_eos=True)
    assert {v for name, v in allowed(rules) if name == "NOTE_ON"} == {50, 51, 52, 53}
    assert ("EOS", 0) in allowed(rules)
    rules.observe(np.array(ids(("NOTE_ON", 50), ("NOTE_ON", 50))))
    rules.observe(np.array(ids(("NOTE_ON", 51), ("PROGRAM", 128))))
    assert not any(name == "NOTE_ON" for name, _ in allowed(rules, 0))    # two notes sound: at the cap
    assert {v for name, v in allowed(rules, 1) if name == "NOTE_ON"} == set(range(48, 60))  # drums: full range
    rules.observe(np.array(ids(("NOTE_OFF", 51), ("NOTE_ON", 49))))
    assert {v for name, v in allowed(rules, 0) if name == "NOTE_ON"} == {51, 52, 53}


def test_time_limit_shortens_the_last_shift_and_eos_ends_a_stream():
    rules = EventRules(TOK, 3, allow_eos=True)
    rules.observe(np.array(ids(("TIME_SHIFT", 8), ("TIME_SHIFT", 2), ("TIME_SHIFT", 1))), limit_steps=10)
    out = rules.observe(np.array(ids(("TIME_SHIFT", 5), ("TIME_SHIFT", 8), ("EOS", 0))), limit_steps=10)
    assert out.tolist() == ids(("TIME_SHIFT", 2), ("TIME_SHIFT", 8), ("PAD", 0))
    assert rules.elapsed.tolist() == [10, 10, 1] and rules.done.tolist() == [True, True, True]
    assert rules.observe(np.array(ids(*[("NOTE_ON", 50)] * 3))).tolist() == [TOK.pad_id] * 3


def test_overdue_note_must_end_next():
    rules = EventRules(TOK, 2, max_note_steps=10)
    rules.observe(np.array(ids(("NOTE_ON", 50), ("NOTE_ON", 50))))
    rules.observe(np.array(ids(("TIME_SHIFT", 4), ("TIME_SHIFT", 8))))
    rules.observe(np.array(ids(("NOTE_ON", 52), ("NOTE_ON", 52))))
    rules.observe(np.array(ids(("TIME_SHIFT", 5), ("TIME_SHIFT", 2))))
    assert len(allowed(rules, 0)) > 10                                          # 9 steps: anything goes
    assert allowed(rules, 1) == {("NOTE_OFF", 50)}                              # 10 steps: only 50 may end
    rules.observe(np.array(ids(("TIME_SHIFT", 1), ("NOTE_OFF", 50))))
    assert allowed(rules, 0) == {("NOTE_OFF", 50)}
    assert len(allowed(rules, 1)) > 10                                          # 52 has sounded 2 steps
    rules.reset_clock()                                                         # after a primer: ages are kept
    assert allowed(rules, 0) == {("NOTE_OFF", 50)}
    rules.observe(np.array(ids(("PROGRAM", 40), ("TIME_SHIFT", 8))))            # 50 overdue in program 0
    assert allowed(rules, 0) == {("PROGRAM", 0)}
    assert allowed(rules, 1) == {("NOTE_OFF", 52)}


def longest_note_steps(tokens):
    start, longest, now, program = {}, 0, 0, 0
    for t in tokens:
        name, value = TOK.describe(int(t))
        if name == "TIME_SHIFT":
            now += value
        elif name == "PROGRAM":
            program = value
        elif name == "NOTE_ON":
            start[(program, value)] = now
        elif name == "NOTE_OFF" and (program, value) in start:
            longest = max(longest, now - start.pop((program, value)))
    return max([longest] + [now - s for s in start.values()])


def test_max_note_steps_bounds_every_note_of_a_model_that_never_ends_notes():
    w = random_weights(CFG, seed=5, scale=0.5)
    first, size = TOK.ranges["NOTE_OFF"]
    w["logits_bias"][first:first + size] -= 20.0                                # NOTE_OFF all but impossible
    free = sample_tokens(w, CFG, TOK, [TOK.bos_id], 300, 0, num_samples=4, close=False)
    capped = sample_tokens(w, CFG, TOK, [TOK.bos_id], 300, 0, num_samples=4, close=False, max_note_steps=12)
    assert max(longest_note_steps(r) for r in free) > 40
    for row in capped:  # a TIME_SHIFT may carry a note past the limit by at most one shift (8 steps here)
        assert longest_note_steps(row) <= 12 + 8


# ---------------------------------------------------------------------------------------------- sampling loop
CFG = ModelConfig(vocab_size=TOK.vocab_size, cell="gru", embedding_dim=8, units=16, layers=2)


def offs_favoured_weights():
    """Random weights whose logits favour NOTE_OFF, so the mask has orphans to stop."""
    w = random_weights(CFG, seed=3, scale=0.5)
    for name, shift in (("NOTE_OFF", 4.0), ("NOTE_ON", 3.5), ("PROGRAM", -4.5), ("VELOCITY", -2.0)):
        first, size = TOK.ranges[name]
        w["logits_bias"][first:first + size] += shift
    return w


def replay(tokens, max_polyphony=0, pitch_range=(48, 59)):
    """Independent check of one stream: returns (orphan NOTE_OFFs, notes left sounding, max polyphony, bad pitches)."""
    sounding, program, orphans, peak, bad = set(), 0, 0, 0, 0
    for t in tokens:
        name, value = TOK.describe(int(t))
        if name == "PROGRAM":
            program = value
        elif name == "NOTE_ON":
            bad += (program != 128 and not pitch_range[0] <= value <= pitch_range[1]) or (program, value) in sounding
            sounding.add((program, value))
            peak = max(peak, len(sounding))
        elif name == "NOTE_OFF":
            orphans += (program, value) not in sounding
            sounding.discard((program, value))
    return orphans, len(sounding), peak, bad


def test_ten_thousand_sampled_events_have_no_orphan_note_off():
    out = sample_tokens(offs_favoured_weights(), CFG, TOK, [TOK.bos_id], 500, 0, num_samples=20, max_polyphony=4,
                        pitch_range=(50, 56))
    assert out.shape[0] == 20 and out.shape[1] >= 500 and out.dtype == np.int32
    kinds = [TOK.describe(int(t))[0] for t in out.ravel()]
    assert kinds.count("NOTE_OFF") > 1000 and kinds.count("NOTE_ON") > 1000
    assert not {"BOS", "EOS"} & set(kinds)
    for row in out:
        orphans, left, peak, bad = replay(row, pitch_range=(50, 56))
        assert (orphans, left, bad) == (0, 0, 0) and peak <= 4


def test_unmasked_model_would_emit_orphans():  # the test above is not vacuous
    model = StepModel(offs_favoured_weights(), CFG)
    logits, _ = model.step(model.init_state(1), np.array([TOK.bos_id]))
    first, size = TOK.ranges["NOTE_OFF"]
    p = np.exp(logits[0] - logits[0].max())
    assert p[first:first + size].sum() / p.sum() > 0.3


def greedy(weights, primer, length):
    model, rules = StepModel(weights, CFG), EventRules(TOK, 1)
    state, out = model.init_state(1), []
    for t in primer:
        logits, state = model.step(state, np.array([t]))
        rules.observe(np.array([t]))
    for _ in range(length):
        t = int(np.argmax(rules.apply(logits)[0]))
        rules.observe(np.array([t]))
        out.append(t)
        logits, state = model.step(state, np.array([t]))
    return out


@pytest.mark.parametrize("control", [dict(temperature=1e-4), dict(top_k=1), dict(top_p=1e-6)])
def test_sharp_settings_reduce_to_greedy_decoding(control):
    w, primer = random_weights(CFG, seed=5, scale=0.8), [TOK.bos_id] + ids(("NOTE_ON", 50), ("TIME_SHIFT", 3))
    out = sample_tokens(w, CFG, TOK, primer, 40, 11, num_samples=2, close=False, **control)
    assert out[0].tolist() == out[1].tolist() == greedy(w, primer, 40)


def test_temperature_pushes_towards_or_away_from_the_likely_events():
    w = random_weights(CFG, seed=5, scale=0.8)
    best = greedy(w, [TOK.bos_id], 60)
    agree = {t: (sample_tokens(w, CFG, TOK, [], 60, 2, num_samples=8, temperature=t, close=False) == best).mean()
             for t in (0.3, 1.0, 3.0)}
    assert agree[0.3] > agree[1.0] > agree[3.0]


def test_seed_determinism_and_streams_independent_of_batch_size():
    w = random_weights(CFG, seed=2)
    a = sample_tokens(w, CFG, TOK, [], 80, 123, num_samples=3)
    b = sample_tokens(w, CFG, TOK, [], 80, 123, num_samples=3)
    c = sample_tokens(w, CFG, TOK, [], 80, 124, num_samples=3)
    single = sample_tokens(w, CFG, TOK, [], 80, 123, num_samples=1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a[0], a[1])
    assert single[0][single[0] != 0].tolist() == a[0][a[0] != 0].tolist()
    shared = [sample_tokens(w, CFG, TOK, [], 30, np.random.default_rng(9)) for _ in range(2)]
    assert np.array_equal(*shared)


def test_primer_conditions_the_continuation_and_its_notes_can_be_closed():
    w = offs_favoured_weights()
    primer = [TOK.bos_id] + ids(("PROGRAM", 7), ("NOTE_ON", 55))  # a note left sounding by the primer
    out = sample_tokens(w, CFG, TOK, primer + [TOK.eos_id, TOK.bos_id], 50, 4, num_samples=4)  # EOS cuts it
    other = sample_tokens(w, CFG, TOK, [], 50, 4, num_samples=4)
    assert not np.array_equal(out[:, :50], other[:, :50])
    for row in out:
        full = np.concatenate([primer, row])
        assert replay(full)[:2] == (0, 0)


def test_time_limit_ends_each_stream_exactly_on_the_limit():
    out = sample_tokens(random_weights(CFG, seed=8), CFG, TOK, [], 2000, 5, num_samples=4, limit_steps=30)
    first, size = TOK.ranges["TIME_SHIFT"]
    for row in out:
        shifts = row[(row >= first) & (row < first + size)] - first + 1
        assert shifts.sum() == 30
        assert replay(row)[:2] == (0, 0)
    assert out.shape[1] < 2000


def test_allow_eos_ends_streams_early_and_pads():
    w = random_weights(CFG, seed=8)
    w["logits_bias"][TOK.eos_id] += 4.0
    out = sample_tokens(w, CFG, TOK, [], 300, 1, num_samples=5, allow_eos=True)
    never = sample_tokens(w, CFG, TOK, [], 300, 1, num_samples=5)
    assert out.shape[1] < 300 and (out == TOK.pad_id).any() and TOK.eos_id not in out
    assert never.shape[1] >= 300 and TOK.eos_id not in never and TOK.pad_id not in never[:, :300]


def test_without_well_formed_masks_the_model_chooses_note_events_itself():
    rules = EventRules(TOK, 1, well_formed=False, pitch_range=(50, 53))
    a = allowed(rules)
    assert {v for name, v in a if name == "NOTE_OFF"} == set(range(48, 60))  # nothing sounds, every OFF allowed
    assert {v for name, v in a if name == "NOTE_ON"} == {50, 51, 52, 53}     # a pitch range still holds
    feed(rules, ids(("NOTE_ON", 50), ("PROGRAM", 128)))
    assert {v for name, v in allowed(rules) if name == "NOTE_ON"} == set(range(48, 60))  # drums: full range
    feed(rules, ids(("PROGRAM", 0)))
    assert ("NOTE_ON", 50) in allowed(rules) and rules.sounding.tolist() == [1]
    free = EventRules(TOK, 1, well_formed=False)
    assert {"PAD", "BOS", "EOS"} & {name for name, _ in allowed(free)} == set()  # the sampler's own needs stay
    out = sample_tokens(offs_favoured_weights(), CFG, TOK, [TOK.bos_id], 300, 0, num_samples=4, well_formed=False)
    orphans = sum(replay(row, pitch_range=(48, 59))[0] for row in out)
    assert orphans > 50  # the model favours NOTE_OFFs and nothing stops it from ending silent pitches


# ------------------------------------------------------------------------------------------ meter and key context
def _meterkey_model():
    from musicgen.context import context_sizes

    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, meter=True,
                                    key="normalize"))
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="gru", embedding_dim=8, units=16, layers=1,
                      context=context_sizes(tok.config))
    weights = random_weights(cfg, seed=4, scale=0.5)
    first, size = tok.ranges["TIME_SIG"]
    weights["logits_bias"][first:first + size] += 3.0  # make TIME_SIG likely, so its mask is exercised
    return tok, cfg, weights


def test_sampling_with_context_keeps_key_and_meter_rules_and_the_tracker_feeds_the_model():
    from musicgen.context import context_features

    tok, cfg, weights = _meterkey_model()
    model = StepModel(weights, cfg, tokenizer=tok)
    out = sample_tokens(model, cfg, tok, [], 300, 5, num_samples=6)
    key0, sig0 = tok.ranges["KEY"][0], tok.ranges["TIME_SIG"][0]
    signatures = 0
    for row in out:
        row = row[row != tok.pad_id]
        full = np.concatenate([[tok.bos_id], row])
        is_key = (full >= key0) & (full < key0 + 24)
        assert is_key[1] and is_key.sum() == 1
        ctx = context_features(full, tok)
        for i in np.flatnonzero((full >= sig0) & (full < sig0 + 64)):
            signatures += 1
            assert ctx[i - 1, 2] in (0, 2)  # meter unknown or at a bar start
            before = full[:i][::-1]
            since_shift = before[:np.argmax([tok.describe(int(t))[0] in ("TIME_SHIFT", "BOS") for t in before])]
            assert all(tok.describe(int(t))[0] == "KEY" for t in since_shift)  # first event of its step
    assert signatures >= 6
    # the numpy model stepped with the tracker's context gives the logits of the whole sequence run at once
    full = np.concatenate([[tok.bos_id], out[0][out[0] != tok.pad_id]])
    ctx = context_features(full, tok)
    logits, _ = model.run(full[None], model.init_state(1), ctx[None])
    zero, _ = model.run(full[None], model.init_state(1), np.zeros_like(ctx)[None])
    assert np.abs(logits - zero).max() > 0.1


def test_a_given_key_reproduces_the_stream_in_which_the_model_drew_that_key():
    tok, cfg, weights = _meterkey_model()
    model = StepModel(weights, cfg, tokenizer=tok)
    free = sample_tokens(model, cfg, tok, [], 120, 11, num_samples=4)
    key0 = tok.ranges["KEY"][0]
    keys = free[:, 0] - key0
    assert ((keys >= 0) & (keys < 24)).all() and len(set(keys.tolist())) > 1
    forced = sample_tokens(model, cfg, tok, [], 120, 11, num_samples=4, key=int(keys[2]))
    assert (forced[:, 0] == key0 + keys[2]).all()
    np.testing.assert_array_equal(forced[2][forced[2] != tok.pad_id], free[2][free[2] != tok.pad_id])
    other = int(np.flatnonzero(keys != keys[2])[0])
    assert not np.array_equal(forced[other][:120], free[other][:120])


def test_a_given_style_reproduces_the_stream_in_which_the_model_drew_that_style():
    from musicgen.context import context_sizes

    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=4, key="token",
                                    styles=("a", "b", "c")))
    cfg = ModelConfig(vocab_size=tok.vocab_size, cell="gru", embedding_dim=8, units=16, layers=1,
                      context=context_sizes(tok.config))
    model = StepModel(random_weights(cfg, seed=6, scale=0.5), cfg, tokenizer=tok)
    free = sample_tokens(model, cfg, tok, [], 80, 9, num_samples=6)
    style0, key0 = tok.ranges["STYLE"][0], tok.ranges["KEY"][0]
    styles = free[:, 0] - style0
    assert ((styles >= 0) & (styles < 3)).all() and len(set(styles.tolist())) > 1
    assert ((free[:, 1] >= key0) & (free[:, 1] < key0 + 24)).all()  # BOS STYLE KEY
    assert (((free[:, 2:] >= style0) & (free[:, 2:] < style0 + 3)).sum()) == 0  # no STYLE anywhere else
    wanted = (styles + 1) % 3  # one style per stream, each another than it drew
    forced = sample_tokens(model, cfg, tok, [], 80, 9, num_samples=6, style=wanted)
    assert (forced[:, 0] == style0 + wanted).all()
    again = sample_tokens(model, cfg, tok, [], 80, 9, num_samples=6, style=styles)
    np.testing.assert_array_equal(again, free)
    assert not np.array_equal(forced[:, 1:], free[:, 1:])  # the style feature changes what follows


def test_a_primer_continuing_a_history_is_tracked_and_masked_as_its_tail():
    """``context=``: sampling after a primer that continues a token history (live's carried conversation), from the
    state the history left, draws what sampling after the whole history as one primer draws."""
    from musicgen.context import ContextTracker, context_features
    from musicgen.meter import time_signature_value

    tok, cfg, weights = _meterkey_model()
    model = StepModel(weights, cfg, tokenizer=tok)
    sig = tok.token("TIME_SIG", time_signature_value(3, 4))
    head = np.array([tok.bos_id, tok.token("KEY", 2), sig, tok.token("NOTE_ON", 50), tok.token("TIME_SHIFT", 8)])
    state = model.run(head[None], model.init_state(1), context_features(head, tok)[None])[1]
    state = [tuple(a[0] for a in layer) for layer in state]
    history = ContextTracker(tok, 1)
    history.run(head)
    primer = np.array([tok.token("NOTE_OFF", 50), tok.token("TIME_SHIFT", 4)])  # 12 steps: beat 2 of the 3/4 bar
    tail = sample_tokens(model, cfg, tok, primer, 60, 3, start_state=state, context=history)[0]
    whole = sample_tokens(model, cfg, tok, np.concatenate([head, primer]), 60, 3)[0]
    np.testing.assert_array_equal(tail, whole)
    cold = sample_tokens(model, cfg, tok, primer, 60, 3, start_state=state)[0]  # the primer as a fresh array
    assert not np.array_equal(cold, whole)
    assert history.position.tolist() == [8]  # sampling left the caller's tracker alone
