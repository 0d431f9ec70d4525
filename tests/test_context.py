"""Context features (metric position, key): hand-written sequences with hand-written answers, tracker == vectorized."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from musicgen.config import TokenizerConfig
from musicgen.context import ContextTracker, context_features, context_names, context_sizes, held_edges
from musicgen.errors import UsageError
from musicgen.meter import key_name, parse_key
from musicgen.tokenizer import Tokenizer, time_signature_value

TOK = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=0, programs=False,
                                meter=True, key="token"))
# every feature at once: meter, key, last_pitch, neighbor pitches and held notes (five voices) and style
TOKV = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=59, max_shift_steps=8, velocity_bins=0, programs=False,
                                 meter=True, key="token", voices=5, last_pitch=True, neighbor_pitches=True,
                                 held_notes=True, styles=("a", "b")))


def ids(tok, *events):
    out = []
    for name, value in events:
        if name == "TIME_SIG":
            value = time_signature_value(*value)
        out.append(tok.token(name, value))
    return np.array(out)


def tracked(tok, tokens):
    """Tracker rows for one stream."""
    tracker = ContextTracker(tok, 1)
    return np.concatenate([tracker.update([t]) for t in tokens]) if len(tokens) else np.zeros((0, 0), np.int32)


def test_sizes_and_names():
    assert context_sizes(TokenizerConfig()) == () and context_names(TokenizerConfig()) == ()
    assert context_sizes(TokenizerConfig(meter=True)) == (25, 17, 3)
    assert context_sizes(TokenizerConfig(key="normalize")) == (25,)
    assert context_sizes(TokenizerConfig(meter=True, key="token", steps_per_quarter=4)) == (9, 17, 3, 25)
    assert context_names(TOK.config) == ("step_in_beat", "beat_in_bar", "bar_start", "key")
    assert context_sizes(TokenizerConfig(key="token", styles=("a", "b", "c"))) == (25, 4)  # style last: 1 + 3


# pickup bar of 1/4, then 4/4 (chained shifts across a bar), then 3/8, then a second piece
PIECES = [("BOS", 0), ("KEY", 14), ("TIME_SIG", (1, 4)), ("NOTE_ON", 50), ("TIME_SHIFT", 8), ("TIME_SHIFT", 4),
          ("TIME_SIG", (4, 4)), ("NOTE_OFF", 50), ("TIME_SHIFT", 6), ("NOTE_ON", 52), ("TIME_SHIFT", 6),
          ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 4),
          ("TIME_SIG", (3, 8)), ("TIME_SHIFT", 8), ("EOS", 0), ("BOS", 0), ("NOTE_ON", 50)]
EXPECTED = [(0, 0, 0, 0), (0, 0, 0, 15), (1, 1, 2, 15), (1, 1, 2, 15), (9, 1, 1, 15), (1, 1, 2, 15),
            (1, 1, 2, 15), (1, 1, 2, 15), (7, 1, 1, 15), (7, 1, 1, 15), (1, 2, 1, 15),
            (9, 2, 1, 15), (5, 3, 1, 15), (1, 4, 1, 15), (9, 4, 1, 15), (1, 1, 2, 15),
            (1, 1, 2, 15), (3, 2, 1, 15), (3, 2, 1, 15), (0, 0, 0, 0), (0, 0, 0, 0)]


def test_hand_written_pieces_with_pickup_meter_changes_and_two_pieces():
    tokens = ids(TOK, *PIECES)
    got = context_features(tokens, TOK)
    assert got.dtype == np.int32 and got.shape == (len(PIECES), 4)
    assert got.tolist() == [list(row) for row in EXPECTED]
    np.testing.assert_array_equal(tracked(TOK, tokens), got)


def test_half_note_and_sixteenth_beats_and_a_beat_shorter_than_a_step():
    tokens = ids(TOK, ("BOS", 0), ("TIME_SIG", (3, 2)), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8), ("TIME_SHIFT", 8),
                 ("TIME_SIG", (5, 16)), ("TIME_SHIFT", 4), ("TIME_SHIFT", 8), ("TIME_SHIFT", 3))
    # 3/2: a beat is 24 steps; 5/16: a beat is 3 steps, a bar 15
    assert context_features(tokens, TOK)[:, :3].tolist() == [
        [0, 0, 0], [1, 1, 2], [9, 1, 1], [17, 1, 1], [1, 2, 1], [1, 1, 2], [2, 2, 1], [1, 5, 1], [1, 1, 2]]
    tok = Tokenizer(TokenizerConfig(steps_per_quarter=2, max_shift_steps=4, meter=True))  # 3/16: beat = half a step
    tokens = ids(tok, ("TIME_SIG", (3, 16)), ("TIME_SHIFT", 1), ("TIME_SHIFT", 1), ("TIME_SHIFT", 1))
    assert context_features(tokens, tok).tolist() == [[1, 1, 2], [1, 3, 1], [1, 2, 1], [1, 1, 2]]
    np.testing.assert_array_equal(tracked(tok, tokens), context_features(tokens, tok))


def test_unknown_before_a_time_signature_and_key_only_vocabulary():
    tokens = ids(TOK, ("TIME_SHIFT", 5), ("TIME_SIG", (2, 4)), ("TIME_SHIFT", 3), ("BOS", 0), ("TIME_SHIFT", 8),
                 ("KEY", 3), ("TIME_SIG", (2, 4)))
    assert context_features(tokens, TOK).tolist() == [
        [0, 0, 0, 0], [1, 1, 2, 0], [4, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 4], [1, 1, 2, 4]]
    tok = Tokenizer(TokenizerConfig(key="normalize"))
    tokens = np.array([tok.bos_id, tok.token("KEY", 23), tok.token("NOTE_ON", 60), tok.eos_id, tok.bos_id])
    assert context_features(tokens, tok).tolist() == [[0], [24], [24], [24], [0]]
    plain = Tokenizer()
    assert context_features([plain.bos_id, 5], plain).shape == (2, 0)
    assert ContextTracker(plain, 3).update([1, 1, 1]).shape == (3, 0)
    assert context_features([], TOK).shape == (0, 4)


def test_bad_ids_are_usage_errors():
    with pytest.raises(UsageError, match="outside"):
        context_features([0, TOK.vocab_size], TOK)
    with pytest.raises(UsageError, match="integer"):
        context_features(np.array([0.5]), TOK)


@st.composite
def streams(draw, tok=TOK):
    """Token streams biased towards the events that move the context (BOS, TIME_SIG, KEY, STYLE, VOICE, NOTE_ON,
    shifts) of those ``tok`` has."""
    kinds = {"BOS": (tok.bos_id, 1), "EOS": (tok.eos_id, 1), "PAD": (tok.pad_id, 1)}
    for name in ("TIME_SHIFT", "TIME_SIG", "KEY", "NOTE_ON", "NOTE_OFF", "VOICE", "STYLE"):
        if name in tok.ranges:
            kinds[name] = tok.ranges[name]
    names = sorted(kinds)
    weights = {"BOS": 1, "EOS": 1, "PAD": 1, "TIME_SHIFT": 8, "TIME_SIG": 2, "KEY": 1, "NOTE_ON": 3, "NOTE_OFF": 1,
               "VOICE": 3, "STYLE": 1}
    pool = [n for n in names for _ in range(weights[n])]
    events = draw(st.lists(st.tuples(st.sampled_from(pool), st.integers(0, 10**6)), min_size=0, max_size=120))
    return np.array([kinds[n][0] + v % kinds[n][1] for n, v in events], np.int64)


def check_tracker_equals_vectorized(tok, tokens, batch):
    expected = context_features(tokens, tok)
    np.testing.assert_array_equal(tracked(tok, tokens).reshape(expected.shape), expected)
    # B streams side by side: stream b is tokens rolled by b, each tracked independently of the others
    rows = np.stack([np.roll(tokens, b) for b in range(batch)])
    tracker = ContextTracker(tok, batch)
    got = np.stack([tracker.update(rows[:, t]) for t in range(rows.shape[1])], axis=1) if tokens.size else None
    for b in range(batch if tokens.size else 0):
        np.testing.assert_array_equal(got[b], context_features(rows[b], tok))


@settings(max_examples=150, deadline=None)
@given(streams(), st.integers(1, 4))
def test_tracker_equals_vectorized_on_random_streams(tokens, batch):
    check_tracker_equals_vectorized(TOK, tokens, batch)


@settings(max_examples=150, deadline=None)
@given(streams(TOKV), st.integers(1, 4))
def test_tracker_equals_vectorized_with_voices_last_pitch_and_style(tokens, batch):
    check_tracker_equals_vectorized(TOKV, tokens, batch)


def test_last_pitch_names_the_previous_note_of_the_voice_in_force():
    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, voices=2,
                                    last_pitch=True))
    assert context_names(tok.config) == ("last_pitch",) and context_sizes(tok.config) == (129,)
    tokens = ids(tok, ("BOS", 0), ("NOTE_ON", 67), ("VOICE", 1), ("NOTE_ON", 48), ("TIME_SHIFT", 12),
                 ("NOTE_OFF", 48), ("VOICE", 0), ("NOTE_OFF", 67), ("NOTE_ON", 69), ("VOICE", 1), ("NOTE_ON", 50),
                 ("EOS", 0), ("BOS", 0), ("VOICE", 1), ("NOTE_ON", 52), ("VOICE", 0))
    # voice 0 is in force until the first VOICE; a NOTE_OFF changes nothing; BOS forgets every voice's note
    assert context_features(tokens, tok)[:, 0].tolist() == [0, 68, 0, 49, 49, 49, 68, 68, 70, 49, 51, 51, 0, 0, 53, 0]
    np.testing.assert_array_equal(tracked(tok, tokens), context_features(tokens, tok))
    with pytest.raises(Exception, match="last_pitch"):
        TokenizerConfig(voices=2, voice_events="implied", last_pitch=True)
    # without VOICE events every note is voice 0's: the feature is the latest NOTE_ON of the piece
    plain = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, last_pitch=True))
    notes = ids(plain, ("BOS", 0), ("NOTE_ON", 60), ("NOTE_ON", 64), ("TIME_SHIFT", 3), ("NOTE_OFF", 60),
                ("NOTE_ON", 62))
    assert context_features(notes, plain)[:, 0].tolist() == [0, 61, 65, 65, 65, 63]
    np.testing.assert_array_equal(tracked(plain, notes), context_features(notes, plain))
    # a model-input field: the tokens' config (and the JSON of a config without it) stay as they were
    assert tok.config.for_tokens() == tok.config.replace(last_pitch=False)
    assert "last_pitch" not in TokenizerConfig(voices=2).to_dict() and tok.config.to_dict()["last_pitch"] is True


def test_neighbor_pitches_name_the_voices_above_and_below():
    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, voices=3,
                                    neighbor_pitches=True))
    assert context_names(tok.config) == ("above_pitch", "below_pitch") and context_sizes(tok.config) == (129, 129)
    tokens = ids(tok, ("BOS", 0), ("NOTE_ON", 67), ("VOICE", 1), ("NOTE_ON", 60), ("VOICE", 2), ("NOTE_ON", 48),
                 ("TIME_SHIFT", 12), ("VOICE", 1), ("NOTE_OFF", 60), ("NOTE_ON", 62), ("VOICE", 0), ("EOS", 0))
    # (above, below) of the voice in force: voice 0 has nothing above, voice 2 nothing below
    assert context_features(tokens, tok).tolist() == [
        [0, 0], [0, 0], [68, 0], [68, 0], [61, 0], [61, 0], [61, 0], [68, 49], [68, 49], [68, 49], [0, 63], [0, 63]]
    np.testing.assert_array_equal(tracked(tok, tokens), context_features(tokens, tok))
    both = tok.config.replace(last_pitch=True)
    assert both.for_tokens() == TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, voices=3)
    assert "neighbor_pitches" not in both.for_tokens().to_dict()
    with pytest.raises(Exception, match="neighbor_pitches"):
        TokenizerConfig(voices=2, voice_events="implied", neighbor_pitches=True)


def test_held_notes_say_how_long_each_voice_has_sounded_or_rested():
    tok = Tokenizer(TokenizerConfig(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, voices=5,
                                    held_notes=True))
    assert held_edges(tok.config) == (1, 3, 6, 9, 12, 18, 24, 36, 48, 72, 96)  # 12 steps per quarter
    assert context_names(tok.config) == ("held_0", "held_1", "held_2", "held_3") and context_sizes(tok.config) == (
        25,) * 4
    on, off = 1, 13  # value - b for a sounding voice, a resting one (b: the age bucket, 0 = at this step)
    tokens = ids(tok, ("BOS", 0), ("NOTE_ON", 67), ("VOICE", 1), ("NOTE_ON", 60), ("TIME_SHIFT", 12),
                 ("VOICE", 0), ("NOTE_OFF", 67), ("TIME_SHIFT", 2), ("VOICE", 4), ("NOTE_ON", 50),
                 ("TIME_SHIFT", 48), ("TIME_SHIFT", 48), ("VOICE", 1), ("NOTE_OFF", 60), ("NOTE_ON", 62), ("EOS", 0),
                 ("BOS", 0))
    got = context_features(tokens, tok)
    assert got.tolist() == [
        [0, 0, 0, 0], [on, 0, 0, 0], [on, 0, 0, 0], [on, on, 0, 0],
        [on + 5, on + 5, 0, 0],  # 12 steps: the bucket [12, 18)
        [on + 5, on + 5, 0, 0], [off, on + 5, 0, 0],  # voice 0 rests from this step
        [off + 1, on + 5, 0, 0],  # 2 steps later: [1, 3); 14 steps: still [12, 18)
        [off + 1, on + 5, 0, 0], [off + 1, on + 5, 0, 0],  # voice 4 is not read
        [off + 9, on + 9, 0, 0], [off + 11, on + 11, 0, 0],  # 50 and 62 steps: [48, 72); 98 and 110: [96, ...)
        [off + 11, on + 11, 0, 0], [off + 11, off, 0, 0], [off + 11, on, 0, 0], [off + 11, on, 0, 0],
        [0, 0, 0, 0]]  # BOS forgets
    np.testing.assert_array_equal(tracked(tok, tokens), got)
    # in seconds mode a quarter note is taken as 0.5 s
    assert held_edges(TokenizerConfig.seconds()) == (1, 13, 25, 38, 50, 75, 100, 150, 200, 300, 400)
    assert held_edges(TokenizerConfig(steps_per_quarter=2)) == (1, 2, 3, 4, 6, 8, 12, 16)
    assert TokenizerConfig(voices=2, held_notes=True).for_tokens() == TokenizerConfig(voices=2)
    with pytest.raises(Exception, match="held_notes"):
        TokenizerConfig(voices=2, voice_events="implied", held_notes=True)


@pytest.mark.parametrize("name, value", [("D minor", 14), ("d minor", 14), ("D", 2), ("Bb major", 10),
                                         ("F# MINOR", 18), ("  Cb  ", 11), ("e#", 5), ("A minor", 21)])
def test_parse_key(name, value):
    assert parse_key(name) == value


@pytest.mark.parametrize("name", ["H", "D dorian", "Dbb", "", "D  minor extra", "minor", "D-"])
def test_parse_key_is_strict(name):
    with pytest.raises(UsageError, match=r"^--key: expected .*TONIC.*got"):
        parse_key(name)


def test_key_names_round_trip():
    assert key_name(14) == "D minor" and key_name(10) == "Bb major" and key_name(6) == "F# major"
    assert [parse_key(key_name(v)) for v in range(24)] == list(range(24))
    with pytest.raises(UsageError):
        key_name(24)


# ------------------------------------------------------------------------------------------------------ end to end
CACHE_CONFIG = TokenizerConfig(velocity_bins=0, programs=False, max_shift_steps=12, meter=True, key="token")


def write_meter_key_cache(folder, n=8):
    from musicgen.cache import config_hash
    from musicgen.shards import write_store

    """A token cache written by hand: ``conftest.write_scale_corpus``'s climbing major scales from C4 + k, encoded
    without meter and key (their ids are the same in the meter/key vocabulary: TIME_SIG and KEY come last), then
    KEY(k major) and TIME_SIG (4/4 for even k, 3/4 for odd) put right after BOS, as the spec places them."""
    plain = Tokenizer(CACHE_CONFIG.replace(meter=False, key=""))
    tok = Tokenizer(CACHE_CONFIG)
    pieces = []
    for k in range(n):
        length = np.where(np.arange(40) % 8 == k % 8, 1.0, 0.5)
        start = np.concatenate([[0.0], np.cumsum(length)[:-1]])
        pitch = 60 + k + np.array([0, 2, 4, 5, 7, 9, 11, 12])[np.arange(40) % 8]
        body = plain.encode_arrays(pitch, start, start + length, np.full(40, 80), np.zeros(40, int))
        meter = tok.token("TIME_SIG", time_signature_value(4 if k % 2 == 0 else 3, 4))
        pieces.append(np.concatenate([body[:1], [tok.token("KEY", k % 12), meter], body[1:]]).astype(np.int32))
    folder.mkdir(parents=True)
    write_store(folder, [f"{k:064x}" for k in range(n)], [f"scale{k}.mid" for k in range(n)], [0] * n,
                lambda k: (pieces[k], 120.0), tok, config_hash(CACHE_CONFIG))
    CACHE_CONFIG.save(folder / "tokenizer.json")
    return folder, pieces


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from musicgen.cli import main

    tmp = tmp_path_factory.mktemp("context")
    cache, pieces = write_meter_key_cache(tmp / "cache")
    out = tmp / "bundle"
    assert main(["train", str(cache), "--out", str(out), "--cell", "gru", "--preset", "tiny", "--epochs", "2",
                 "--batch-size", "4", "--bptt", "16", "--val-fraction", "0.25", "--test-fraction", "0.25",
                 "--no-tensorboard", "--verbose", "0"]) == 0
    return out, cache, pieces


def test_train_sample_with_key_and_evaluate_end_to_end(trained, tmp_path):
    import json
    import shlex

    from conftest import run_cli_without_tensorflow

    from musicgen import evaluate as ev
    from musicgen.bundle import load_bundle
    from musicgen.generate import generate

    out, cache, pieces = trained
    bundle = load_bundle(out)
    assert bundle.model_config.context == (25, 17, 3, 25) and bundle.start_state is not None
    assert {f"context_{k}" for k in range(4)} <= set(bundle.weights)
    # musicgen sample --key, in a fresh process that must not import TensorFlow
    run = run_cli_without_tensorflow(["sample", "--model", out, "--key", "D minor", "-n", "2", "--length", "60",
                                      "--seed", "3", "-o", tmp_path / "samples"])
    assert run.returncode == 0, run.stderr[-2000:]
    sidecar = json.loads((tmp_path / "samples" / "sample-01.json").read_text())
    assert sidecar["key"] == "D minor" and sidecar["settings"]["key"] == "D minor"
    assert sidecar["meter"] is None or sidecar["meter"].count("/") == 1
    assert "--key 'D minor'" in sidecar["regenerate"]
    # default: each sample's key drawn from the training pieces' keys (recorded by train); the sidecar's --key
    # reproduces the sample it is recorded in
    from musicgen.keys import draw_keys

    counts = bundle.metrics["key_pieces"]
    assert sum(counts.values()) == bundle.metrics["train_pieces"] and set(counts) <= {key_name(k) for k in range(12)}
    free = generate(out, length=60, seed=7, num_samples=3)
    tok = bundle.tokenizer
    assert all(t[1] == tok.token("KEY", parse_key(s["key"])) for t, s in zip(free.tokens, free.sidecars))
    assert [s["key"] for s in free.sidecars] == [key_name(k) for k in draw_keys(counts, 7, 3)]
    again = generate(out, length=60, seed=7, num_samples=3, key=free.sidecars[1]["key"])
    np.testing.assert_array_equal(again.tokens[1], free.tokens[1])
    command = shlex.split(free.sidecars[1]["regenerate"])
    assert command[command.index("--key") + 1] == free.sidecars[1]["key"]
    # evaluate scores with the context (the numpy scores equal Keras' on the same pieces)
    result = ev.evaluate(out, cache, num_samples=2, sample_length=60, max_order=2, copy_n=10, excerpt_length=16)
    assert np.isfinite(result["scores"]["model"]["nll_nats"])
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces

    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=tok)
    numpy_nll = np.concatenate([s.nll for s in score_pieces(step, pieces[:2])])
    model = bundle.keras_model()
    keras_nll = []
    for p in pieces[:2]:
        logits = np.asarray(model((p[None, :-1], context_features(p, tok)[None, :-1])), np.float64)[0]
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        keras_nll.append(logz - logits[np.arange(len(p) - 1), p[1:]])
    np.testing.assert_allclose(numpy_nll, np.concatenate(keras_nll), atol=1e-4)


def test_usage_errors_for_key_options_and_rtrl(trained, tmp_path, capsys):
    from musicgen.cli import main

    out, cache, _ = trained
    for flags, message in [(["--key", "H minor"], "--key: expected"), (["--program", "5"], "--program: the bundle"),
                           (["--key", "D", "--primer", str(tmp_path / "x.mid")], "--key: not with --primer"),
                           (["--key", "D", "--key-strength", "3"], "--key-strength: the bundle")]:
        (tmp_path / "x.mid").write_bytes(b"")
        assert main(["sample", "--model", str(out), *flags, "-o", str(tmp_path / "s.mid")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    from conftest import make_bundle

    plain = make_bundle(tmp_path / "plain", TokenizerConfig(min_pitch=48, max_pitch=72), with_keras=False)
    # a bundle without context: without a key mode --key is a pitch-class bias, which needs --key
    assert main(["sample", "--model", str(plain), "--key-strength", "2", "-o", str(tmp_path / "s.mid")]) == 2
    assert "--key-strength: needs --key" in capsys.readouterr().err
    assert main(["train", str(cache), "--out", str(tmp_path / "r"), "--algorithm", "rtrl", "--epochs", "1"]) == 2
    assert "rtrl does not train context inputs" in capsys.readouterr().err


@settings(max_examples=60, deadline=None)
@given(st.data(), st.sampled_from([TOK, TOKV]), st.integers(0, 120), st.integers(1, 3))
def test_a_tracker_started_from_a_history_tracks_its_tail(data, tok, cut, batch):
    """``start_from`` + ``run``: the tail of a stream tracked after its head equals the whole stream's rows."""
    tokens = data.draw(streams(tok))
    cut = min(cut, tokens.size)
    expected = context_features(tokens, tok)
    head = ContextTracker(tok, 1)
    np.testing.assert_array_equal(head.run(tokens[:cut]), expected[:cut])
    tail = ContextTracker(tok, batch).start_from(head)
    if cut:
        np.testing.assert_array_equal(tail.features(), np.repeat(expected[cut - 1:cut], batch, axis=0))
    rest = ContextTracker(tok, 1).start_from(head).run(tokens[cut:])
    np.testing.assert_array_equal(rest, expected[cut:])


def test_start_from_carries_every_feature():
    tokens = ids(TOKV, ("BOS", 0), ("STYLE", 1), ("KEY", 3), ("TIME_SIG", (3, 4)), ("VOICE", 2), ("NOTE_ON", 50),
                 ("TIME_SHIFT", 5), ("VOICE", 1), ("NOTE_ON", 55), ("VOICE", 2))
    expected = context_features(tokens, TOKV)
    # voice 2 in force: 50, above 55, none below; held: voice 1 sounding from this step, voice 2 for 5 steps
    assert expected[-1].tolist() == [6, 1, 1, 4, 51, 56, 0, 0, 1, 3, 0, 2]
    for cut in range(len(tokens) + 1):
        head = ContextTracker(TOKV, 1)
        head.run(tokens[:cut])
        np.testing.assert_array_equal(ContextTracker(TOKV, 1).start_from(head).run(tokens[cut:]), expected[cut:])


def test_start_from_and_run_refuse_another_vocabulary_or_several_streams():
    other = ContextTracker(Tokenizer(TokenizerConfig(meter=True)), 1)
    with pytest.raises(UsageError, match="^other: expected a ContextTracker of the same tokenizer config"):
        ContextTracker(TOK, 1).start_from(other)
    with pytest.raises(UsageError, match="^run: expected a tracker of one stream, got batch=2"):
        ContextTracker(TOK, 2).run([TOK.bos_id])


def test_record_counts_rewrites_the_keys_and_the_bundle_verifies(trained, tmp_path, capsys):
    import importlib.util
    import shutil
    from pathlib import Path

    from musicgen.bundle import load_bundle

    out, cache, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    script = Path(__file__).resolve().parents[1] / "scripts" / "record_counts.py"
    spec = importlib.util.spec_from_file_location("record_counts", script)
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    assert record.main([str(copy), str(cache)]) == 0  # already recorded by train: left alone
    assert "already records key_pieces" in capsys.readouterr().out
    assert record.main([str(copy), str(cache), "--force"]) == 0
    assert load_bundle(copy).metrics["key_pieces"] == load_bundle(out).metrics["key_pieces"]  # and it verifies
