"""Styles: the STYLE event, the style context feature, ``--styles`` ingest/train and ``--style`` sampling.

Hand-made tokens with hand-written answers; a two-folder corpus copied from tests/data; a tiny train + sample end to
end with numpy == Keras on the style feature.
"""

import json
import os
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli_without_tensorflow

from musicgen import styles as st
from musicgen.cache import config_hash
from musicgen.corpus_cli import find_styles
from musicgen.config import ConfigError, ModelConfig, SampleConfig, TokenizerConfig
from musicgen.context import ContextTracker, context_features, context_names, context_sizes
from musicgen.errors import UsageError
from musicgen.piece import Note, Piece
from musicgen.rules import NEG_INF, EventRules
from musicgen.tokenizer import Tokenizer

DATA = Path(__file__).parent / "data"
SMALL = dict(min_pitch=48, max_pitch=72, velocity_bins=0, programs=False, max_shift_steps=12)
TOK = Tokenizer(TokenizerConfig(**SMALL, styles=("bach", "folk")))  # 3 + 25 + 25 + 12 = 65 ids, STYLE 65..66


# ------------------------------------------------------------------------------------------------- config, ids
def test_styles_come_last_and_leave_every_other_id_alone():
    plain = Tokenizer(TokenizerConfig(**SMALL))
    assert plain.vocab_size == 65 and TOK.vocab_size == 67
    assert TOK.ranges["STYLE"] == (65, 2) and list(TOK.ranges)[-1] == "STYLE"
    assert all(TOK.ranges[name] == plain.ranges[name] for name in plain.ranges)
    assert TOK.token("STYLE", 1) == 66 and TOK.describe(65) == ("STYLE", 0)
    keyed = Tokenizer(TokenizerConfig(**SMALL, meter=True, key="token", styles=("a",)))
    assert list(keyed.ranges)[-3:] == ["TIME_SIG", "KEY", "STYLE"]


def test_config_without_styles_keeps_its_json_and_hash():
    plain = TokenizerConfig()
    assert "styles" not in plain.to_dict() and plain.styles == ()
    assert set(plain.to_dict()) == {"time_mode", "steps_per_quarter", "max_shift_steps", "step_seconds",
                                    "velocity_bins", "programs", "min_pitch", "max_pitch", "default_velocity"}
    assert config_hash(TokenizerConfig(styles=())) == config_hash(plain)
    styled = TokenizerConfig(styles=("bach", "folk"))
    assert styled.to_dict()["styles"] == ["bach", "folk"] and config_hash(styled) != config_hash(plain)
    assert TokenizerConfig.from_json(styled.to_json()) == styled  # a list in JSON comes back as a tuple


@pytest.mark.parametrize("styles", [("folk", "bach"), ("a", "a"), ("",), ("a/b",), (" a",), ("a", 3), "ab"])
def test_bad_style_names_are_config_errors(styles):
    with pytest.raises(ConfigError, match=r"^styles: expected sorted unique"):
        TokenizerConfig(styles=styles)


def test_sample_config_style_field():
    assert SampleConfig(style="folk").to_dict()["style"] == "folk" and SampleConfig().style is None
    with pytest.raises(ConfigError, match="^style: "):
        SampleConfig(style="")


# ------------------------------------------------------------------------------------------------ tokens
NOTES = [Note(60, 0.0, 1.0, 80, 0, False), Note(64, 1.0, 1.5, 80, 0, False)]


def test_encode_puts_style_right_after_bos_and_decoding_ignores_it():
    tok = TOK
    piece = Piece(NOTES, 120.0, "beat")
    styled, unstyled = tok.encode_pieces([piece, piece], [1, -1])
    on, off, shift = (lambda p: tok.token("NOTE_ON", p)), (lambda p: tok.token("NOTE_OFF", p)), \
        (lambda s: tok.token("TIME_SHIFT", s))
    body = [on(60), shift(12), off(60), on(64), shift(6), off(64), tok.eos_id]
    assert styled.tolist() == [tok.bos_id, 66] + body
    assert unstyled.tolist() == [tok.bos_id] + body
    assert tok.encode(piece, style=0).tolist() == [tok.bos_id, 65] + body
    assert tok.decode_notes(styled) == tok.decode_notes(unstyled) == tok.decode_notes(tok.encode(piece))
    assert [(n.pitch, n.start, n.end) for n in tok.decode_notes(styled)] == [(60, 0.0, 1.0), (64, 1.0, 1.5)]
    # re-encoding the decoded notes in its style gives the same tokens back
    assert tok.encode(Piece(tok.decode_notes(styled), 120.0, "beat"), style=1).tolist() == styled.tolist()
    assert st.piece_style(styled, tok) == 1 and st.piece_style(unstyled, tok) is None


def test_style_goes_before_key_and_time_signature():
    tok = Tokenizer(TokenizerConfig(**SMALL, meter=True, key="token", styles=("a", "b", "c")))
    tokens = tok.encode_pieces([Piece(NOTES, 120.0, "beat", key=7)], [2])[0]
    assert [tok.describe(int(t))[0] for t in tokens[:4]] == ["BOS", "STYLE", "KEY", "TIME_SIG"]
    assert tok.describe(int(tokens[1])) == ("STYLE", 2) and tok.describe(int(tokens[2])) == ("KEY", 7)


@pytest.mark.parametrize("styles", [[2], [0, 1], [-2]])
def test_bad_style_indices_are_usage_errors(styles):
    with pytest.raises(UsageError, match=r"^styles: expected one style index"):
        TOK.encode_pieces([Piece(NOTES, 120.0, "beat")], styles)


def test_with_style_inserts_once_and_refuses_another():
    t = np.array([TOK.bos_id, TOK.token("NOTE_ON", 60)])
    assert st.with_style(t, TOK, 1).tolist() == [TOK.bos_id, 66, TOK.token("NOTE_ON", 60)]
    assert st.with_style(st.with_style(t, TOK, 1), TOK, 1).tolist() == [TOK.bos_id, 66, TOK.token("NOTE_ON", 60)]
    with pytest.raises(UsageError, match=r"^--style: the primer is in style 'folk', not 'bach'"):
        st.with_style(st.with_style(t, TOK, 1), TOK, 0)


# ----------------------------------------------------------------------------------------------- context, rules
def test_style_feature_hand_written():
    assert context_names(TOK.config) == ("style",) and context_sizes(TOK.config) == (3,)
    keyed = TokenizerConfig(**SMALL, meter=True, key="token", styles=("a", "b"))
    assert context_names(keyed)[-2:] == ("key", "style") and context_sizes(keyed)[-2:] == (25, 3)
    on, shift = TOK.token("NOTE_ON", 60), TOK.token("TIME_SHIFT", 3)
    tokens = [on, TOK.bos_id, 66, on, shift, TOK.eos_id, TOK.bos_id, 65, on, TOK.bos_id, on]
    expected = [0, 0, 2, 2, 2, 2, 0, 1, 1, 0, 0]  # 0 before a style and after each BOS; EOS changes nothing
    assert context_features(tokens, TOK)[:, 0].tolist() == expected
    tracker = ContextTracker(TOK, 2)
    rows = np.stack([tracker.update([t, t]) for t in tokens])
    assert rows[:, 0, 0].tolist() == rows[:, 1, 0].tolist() == expected


def allowed(rules, vocab):
    logits = np.zeros((rules.batch, vocab), np.float32)
    return [set(np.flatnonzero(row > NEG_INF).tolist()) for row in rules.apply(logits)]


def test_rules_put_a_style_then_a_key_after_bos_and_nowhere_else():
    tok = Tokenizer(TokenizerConfig(**SMALL, key="token", styles=("a", "b", "c")))
    style0, key0 = tok.ranges["STYLE"][0], tok.ranges["KEY"][0]
    rules = EventRules(tok, 2, style=[2, 0])
    rules.observe(np.full(2, tok.bos_id))
    assert allowed(rules, tok.vocab_size) == [{style0 + 2}, {style0}]
    free = EventRules(tok, 1)
    free.observe(np.full(1, tok.bos_id))
    assert allowed(free, tok.vocab_size) == [{style0, style0 + 1, style0 + 2}]
    rules.observe(np.array([style0 + 2, style0]))
    assert all(a == set(range(key0, key0 + 24)) for a in allowed(rules, tok.vocab_size))
    rules.observe(np.full(2, key0 + 3))
    after = allowed(rules, tok.vocab_size)
    assert all(not (a & set(range(key0, key0 + 24 + 3))) and tok.token("NOTE_ON", 60) in a for a in after)
    with pytest.raises(ValueError, match="^style: "):
        EventRules(tok, 1, style=3)
    with pytest.raises(ValueError, match="^style: "):
        EventRules(Tokenizer(TokenizerConfig(**SMALL)), 1, style=0)


def test_draws_follow_the_shares_and_the_seed():
    shares = st.style_shares({"a": 0, "b": 30, "c": 10}, ("a", "b", "c"))
    assert shares.tolist() == [0.0, 0.75, 0.25]
    draws = st.draw_styles(shares, seed=4, count=2000)
    assert 0 not in draws and abs((draws == 1).mean() - 0.75) < 0.04
    assert st.draw_styles(shares, 4, 5).tolist() == draws[:5].tolist()  # draw i depends on the seed and i alone
    assert st.style_shares(None, ("a", "b")).tolist() == [0.5, 0.5]


def test_parse_style_lists_the_known_names():
    assert st.parse_style("folk", ("bach", "folk")) == 1
    with pytest.raises(UsageError, match=r"^--style: unknown style 'jazz'; the bundle knows bach, folk$"):
        st.parse_style("jazz", ("bach", "folk"))
    with pytest.raises(UsageError, match=r"^--style: the bundle has no styles"):
        st.parse_style("folk", ())


# ------------------------------------------------------------------------------------------------------ ingest
def two_style_corpus(root: Path) -> Path:
    """corpus/bach: two tests/data MIDI files; corpus/folk: one, plus a subfolder and a README (ignored)."""
    broken = DATA / "broken"
    (root / "bach").mkdir(parents=True)
    (root / "folk" / "deeper").mkdir(parents=True)
    shutil.copy(broken / "type2.mid", root / "bach" / "type2.mid")
    shutil.copy(broken / "tempo_1200bpm.mid", root / "bach" / "fast.mid")
    shutil.copy(broken / "upper" / "UPPER_CASE.MID", root / "folk" / "deeper" / "upper.mid")
    (root / "folk" / "README.txt").write_text("not music")
    return root


def test_find_styles_and_loose_files(tmp_path):
    corpus = two_style_corpus(tmp_path / "corpus")
    (corpus / "empty").mkdir()
    assert find_styles(corpus) == ("bach", "folk")
    shutil.copy(DATA / "broken" / "type2.mid", corpus / "loose.mid")
    with pytest.raises(UsageError, match=r"^--styles: music files directly in .* no style folder: 'loose.mid'; move"):
        find_styles(corpus)
    (tmp_path / "bare" / "empty").mkdir(parents=True)
    with pytest.raises(UsageError, match="^--styles: no subfolder of .* holds music files"):
        find_styles(tmp_path / "bare")


def test_ingest_gives_each_piece_its_folder_style(tmp_path, capsys):
    from musicgen.cli import main
    from musicgen.corpus import load_tokens

    corpus = two_style_corpus(tmp_path / "corpus")
    shutil.copy(corpus / "bach" / "type2.mid", corpus / "folk" / "type2.mid")  # one file, two styles: two pieces
    out = tmp_path / "cache"
    assert main(["ingest", str(corpus), "--styles", "--out", str(out), "--workers", "1"]) == 0
    assert "4 kept" in capsys.readouterr().out
    tokens = load_tokens(out)
    tok = Tokenizer(tokens.tokenizer_config)
    assert tokens.tokenizer_config.styles == ("bach", "folk")
    got = {path: tok.describe(int(p[1])) for path, p in zip(tokens.paths, tokens.pieces)}
    assert got == {"bach/fast.mid": ("STYLE", 0), "bach/type2.mid": ("STYLE", 0),
                   "folk/deeper/upper.mid": ("STYLE", 1), "folk/type2.mid": ("STYLE", 1)}
    a, b = (list(tokens.paths).index(p) for p in ("bach/type2.mid", "folk/type2.mid"))
    np.testing.assert_array_equal(np.delete(tokens.pieces[a], 1), np.delete(tokens.pieces[b], 1))
    assert st.style_counts(tokens.pieces, tok) == {"bach": 2, "folk": 2}
    # a file moved to the other style is tokenized again with its new style
    os.replace(corpus / "bach" / "fast.mid", corpus / "folk" / "fast.mid")
    assert main(["ingest", str(corpus), "--styles", "--out", str(out), "--workers", "1"]) == 0
    tokens = load_tokens(out)
    moved = list(tokens.paths).index("folk/fast.mid")
    assert tok.describe(int(tokens.pieces[moved][1])) == ("STYLE", 1)
    # a loose music file is a one-line error naming it (exit 2)
    shutil.copy(DATA / "broken" / "type2.mid", corpus / "loose.mid")
    capsys.readouterr()
    assert main(["ingest", str(corpus), "--styles", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "'loose.mid'" in err and len(err.splitlines()) == 1


def test_styles_flag_on_a_cache_without_styles_is_an_error(tmp_path, capsys):
    from musicgen.cli import main

    corpus = two_style_corpus(tmp_path / "corpus")
    assert main(["ingest", str(corpus), "--out", str(tmp_path / "plain"), "--workers", "1"]) == 0
    capsys.readouterr()
    assert main(["train", str(tmp_path / "plain"), "--styles", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--styles: token cache" in err and "styles=()" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_ingest_with_a_styles_config_refuses_a_folder_it_does_not_know(tmp_path):
    from musicgen.corpus import ingest

    corpus = two_style_corpus(tmp_path / "corpus")
    with pytest.raises(UsageError, match=r"^--styles: folder 'folk' .* is not one of the tokenizer's styles"):
        ingest(corpus, tmp_path / "cache", TokenizerConfig(styles=("bach", "jazz")), progress=False)


# ------------------------------------------------------------------------------------------------- sample CLI
def numpy_styles_bundle(path: Path, metrics=None, tokenizer=TOK) -> Path:
    """A bundle with random numpy weights (no Keras) for a styles tokenizer (``TOK``), its context inputs included."""
    from conftest import rehash

    from musicgen.bundle import FORMAT_VERSION
    from musicgen.config import TrainConfig
    from musicgen.models import expected_weight_shapes

    tc = tokenizer.config
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, embedding_dim=4, units=8, layers=1, dropout=0.0,
                      context=context_sizes(tc))
    rng = np.random.default_rng(0)
    path.mkdir(parents=True)
    weights = {k: rng.normal(0, 0.5, s).astype(np.float32) for k, s in expected_weight_shapes(cfg).items()}
    np.savez(path / "weights.npz", **weights)
    (path / "model.keras").write_bytes(b"placeholder")
    tc.save(path / "tokenizer.json")
    cfg.save(path / "model_config.json")
    TrainConfig().save(path / "train_config.json")
    (path / "metrics.json").write_text(json.dumps(metrics or {st.METRIC: {"bach": 3, "folk": 1}}))
    rehash(path, {"format_version": FORMAT_VERSION, "cell": "gru", "vocab_size": cfg.vocab_size})
    return path


def test_sample_style_errors_are_one_line_exit_2(tmp_path, capsys):
    from conftest import make_bundle

    from musicgen.cli import main

    styled = numpy_styles_bundle(tmp_path / "styled")
    assert main(["sample", "--model", str(styled), "--style", "jazz", "-o", str(tmp_path / "s.mid")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--style: unknown style 'jazz'; the bundle " + repr(str(styled)) + " knows bach, folk")
    assert len(err.splitlines()) == 1
    plain = make_bundle(tmp_path / "plain", TokenizerConfig(**SMALL), with_keras=False)
    assert main(["sample", "--model", str(plain), "--style", "folk", "-o", str(tmp_path / "s.mid")]) == 2
    assert "--style: the bundle " + repr(str(plain)) + " has no styles" in capsys.readouterr().err
    assert not (tmp_path / "s.mid").exists()


def test_default_styles_are_drawn_per_sample_and_regenerate(tmp_path):
    from musicgen.generate import generate

    bundle = numpy_styles_bundle(tmp_path / "b")
    free = generate(bundle, length=20, seed=1, num_samples=8)
    names = [s["style"] for s in free.sidecars]
    assert set(names) == {"bach", "folk"} and free.settings["style"] is None
    expected = np.array(("bach", "folk"))[st.draw_styles(np.array([0.75, 0.25]), 1, 8)].tolist()
    assert names == expected
    for tokens, name in zip(free.tokens, names):
        assert TOK.describe(int(tokens[1])) == ("STYLE", ("bach", "folk").index(name))
    i = names.index("folk")
    command = shlex.split(free.sidecars[i]["regenerate"])
    assert command[command.index("--style") + 1] == "folk"
    again = generate(bundle, length=20, seed=1, num_samples=8, style="folk")
    np.testing.assert_array_equal(again.tokens[i], free.tokens[i])
    assert all(s["style"] == "folk" for s in again.sidecars) and again.settings["style"] == "folk"
    # with a primer every sample shares one style, inserted after the primer's BOS
    primed = generate(bundle, length=10, seed=1, num_samples=2, style="bach",
                      primer=np.array([TOK.bos_id, TOK.token("NOTE_ON", 60)]))
    assert all(t[:3].tolist() == [TOK.bos_id, 65, TOK.token("NOTE_ON", 60)] for t in primed.tokens)


def test_a_recorded_default_style_is_what_sampling_and_live_take(tmp_path, capsys):
    import importlib.util

    from musicgen.bundle import load_bundle
    from musicgen.generate import generate
    from musicgen.live import live_style

    assert st.recorded_default({st.DEFAULT: "folk"}, ("bach", "folk")) == 1
    assert st.recorded_default({st.DEFAULT: "jazz"}, ("bach", "folk")) is None  # not one of its styles: no default
    assert st.recorded_default(None, ("bach", "folk")) is None
    path = numpy_styles_bundle(tmp_path / "b")
    assert live_style(load_bundle(path), None) == 0  # no default: the style with the most training pieces
    script = Path(__file__).resolve().parents[1] / "scripts" / "record_counts.py"
    spec = importlib.util.spec_from_file_location("record_counts_styles", script)
    record = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(record)
    assert record.main([str(path), str(tmp_path / "unused"), "--default-style", "jazz"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"--default-style: unknown style 'jazz'; the bundle {str(path)!r} knows bach, folk"
    assert st.DEFAULT not in load_bundle(path).metrics
    assert record.main([str(path), str(tmp_path / "unused"), "--default-style", "folk"]) == 0
    bundle = load_bundle(path)  # the checksums still verify
    assert bundle.metrics[st.DEFAULT] == "folk" and live_style(bundle, None) == 1 and live_style(bundle, "bach") == 0
    free = generate(path, length=20, seed=1, num_samples=8)  # the draw alone would give bach to most of them
    assert [s["style"] for s in free.sidecars] == ["folk"] * 8 and free.settings["style"] is None
    assert all(TOK.describe(int(t[1])) == ("STYLE", 1) for t in free.tokens)
    asked = generate(path, length=20, seed=1, num_samples=4, style="bach")
    assert [s["style"] for s in asked.sidecars] == ["bach"] * 4


TOKVK = Tokenizer(TokenizerConfig(**SMALL, styles=("bach", "folk"), voices=4, key="normalize"))  # VOICE, KEY, STYLE


def test_counts_by_style_and_what_training_records():
    from musicgen.train_result import sampling_counts

    def piece(style, key, voices):
        return np.array([TOKVK.bos_id, TOKVK.token("STYLE", style), TOKVK.token("KEY", key)]
                        + [TOKVK.token("VOICE", v) for v in range(voices)] + [TOKVK.token("NOTE_ON", 60)])

    pieces = [piece(0, 9 + 12, 4), piece(0, 9 + 12, 4), piece(0, 7, 3), piece(1, 7, 1)]  # A minor, G major
    counts = sampling_counts(pieces, TOKVK)
    assert counts == {"style_pieces": {"bach": 3, "folk": 1},
                      "voice_pieces": {"1": 1, "3": 1, "4": 2},
                      "voice_pieces_by_style": {"bach": {"3": 1, "4": 2}, "folk": {"1": 1}},
                      "key_pieces": {"G major": 2, "A minor": 2},
                      "key_pieces_by_style": {"bach": {"G major": 1, "A minor": 2}, "folk": {"G major": 1}}}
    assert st.counts_by_style(pieces[:3], TOKVK, lambda ps, tok: {"n": len(ps)}) == {"bach": {"n": 3}}  # no folk
    assert st.counts_by_style(pieces, Tokenizer(TokenizerConfig(**SMALL)), len) == {}  # no styles
    assert sampling_counts(pieces, None) == {}
    plain = sampling_counts([p[p < 93] for p in pieces], Tokenizer(TokenizerConfig(**SMALL, voices=4, key="normalize")))
    assert set(plain) == {"voice_pieces", "key_pieces"}  # without styles: the pooled counts only


def test_draw_for_styles_takes_each_samples_style_counts():
    from musicgen.voices import draw_voice_caps

    metrics = {"voice_pieces": {"4": 9, "1": 1}, "voice_pieces_by_style": {"bach": {"4": 1}, "folk": {"1": 1}}}
    styles = np.array([0, 1, 1, 0, 1])
    drawn = st.draw_for_styles(metrics, "voice_pieces", draw_voice_caps, 3, 5, styles, ("bach", "folk"))
    assert drawn.tolist() == [4, 1, 1, 4, 1]
    pooled = draw_voice_caps(metrics["voice_pieces"], 3, 5)
    assert st.draw_for_styles(metrics, "voice_pieces", draw_voice_caps, 3, 5, None, ("bach", "folk")).tolist() == \
        pooled.tolist()  # no styles: the pooled counts
    only_bach = {**metrics, "voice_pieces_by_style": {"bach": {"1": 1}}}  # folk not recorded: folk draws pooled
    mixed = st.draw_for_styles(only_bach, "voice_pieces", draw_voice_caps, 3, 5, styles, ("bach", "folk"))
    assert mixed[styles == 0].tolist() == [1, 1] and mixed[styles == 1].tolist() == pooled[styles == 1].tolist()
    assert st.draw_for_styles({"voice_pieces": {"4": 1}}, "voice_pieces", draw_voice_caps, 3, 2, 1,
                              ("bach", "folk")).tolist() == [4, 4]  # an older bundle: pooled, one style broadcast
    assert st.draw_for_styles({}, "voice_pieces", draw_voice_caps, 3, 2, styles[:2], ("bach", "folk")) is None


def test_each_sample_draws_its_voices_and_key_from_its_own_style(tmp_path):
    from musicgen.generate import generate

    metrics = {st.METRIC: {"bach": 1, "folk": 1},
               "voice_pieces": {"4": 1, "1": 1}, "voice_pieces_by_style": {"bach": {"4": 1}, "folk": {"1": 1}},
               "key_pieces": {"A minor": 1, "G major": 1},
               "key_pieces_by_style": {"bach": {"A minor": 1}, "folk": {"G major": 1}}}
    bundle = numpy_styles_bundle(tmp_path / "b", metrics, TOKVK)
    free = generate(bundle, length=24, seed=2, num_samples=8)
    found = [(s["style"], s["voices"], s["key"]) for s in free.sidecars]
    assert {f[0] for f in found} == {"bach", "folk"}
    assert all(f[1:] == ((4, "A minor") if f[0] == "bach" else (1, "G major")) for f in found)
    for tokens, (style, voices, _) in zip(free.tokens, found):
        assert TOKVK.values_of(tokens, "VOICE").max(initial=0) < voices
    i = [f[0] for f in found].index("folk")
    again = generate(bundle, length=24, seed=2, num_samples=8, style="folk")  # forcing the style draws the same
    np.testing.assert_array_equal(again.tokens[i], free.tokens[i])


def write_random_styles(root: Path, n: int = 6, seed: int = 0) -> Path:
    """corpus/bach and corpus/folk: ``n`` random 24-note melodies each (distinct pieces, so the split spreads them)."""
    import pretty_midi

    rng = np.random.default_rng(seed)
    for style, low in (("bach", 55), ("folk", 62)):
        (root / style).mkdir(parents=True)
        for k in range(n):
            pm = pretty_midi.PrettyMIDI(initial_tempo=120)
            inst = pretty_midi.Instrument(0)
            inst.notes += [pretty_midi.Note(80, int(rng.integers(low, low + 10)), i / 4, i / 4 + 0.2) for i in range(24)]
            pm.instruments.append(inst)
            pm.write(str(root / style / f"{style}{k}.mid"))
    return root


def test_evaluate_and_quality_report_score_one_style(tmp_path, capsys):
    import importlib.util

    from conftest import rehash

    from musicgen.bundle import FORMAT_VERSION, load_bundle
    from musicgen.cli import main
    from musicgen.config import TrainConfig
    from musicgen.corpus import ingest
    from musicgen.evaluate import evaluate
    from musicgen.split import bundle_split

    corpus = write_random_styles(tmp_path / "corpus")
    tok = Tokenizer(TokenizerConfig(**SMALL, styles=find_styles(corpus)))
    cache = ingest(corpus, tmp_path / "cache", tok.config, progress=False).out_dir
    path = numpy_styles_bundle(tmp_path / "b", {st.METRIC: {"bach": 6, "folk": 6}}, tok)
    TrainConfig(val_fraction=0.3, test_fraction=0.3).save(path / "train_config.json")
    rehash(path, {"format_version": FORMAT_VERSION, "cell": "gru", "vocab_size": tok.vocab_size})
    bundle = load_bundle(path)
    data, parts = bundle_split(bundle, cache)
    valid = {name: [str(data.paths[i]) for i in parts.valid if str(data.paths[i]).startswith(name)]
             for name in ("bach", "folk")}
    assert valid["bach"] and valid["folk"]  # this corpus's split has both styles in valid (and in test)
    for name in ("bach", "folk"):
        result = evaluate(bundle, cache, split="valid", num_samples=3, sample_length=30, excerpt_length=8,
                          baselines=False, sets=("rules",), style=name)
        assert result["split"]["style"] == name and result["split"]["evaluated"] == len(valid[name])
        assert result["samples"]["sets"]["rules"]["settings"]["style"] == name
    whole = evaluate(bundle, cache, split="valid", num_samples=0, baselines=False)
    assert whole["split"]["evaluated"] == len(valid["bach"]) + len(valid["folk"])
    assert main(["evaluate", str(path), str(cache), "--style", "jazz", "--num-samples", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--style: unknown style 'jazz'" in err
    # quality_report --style: the style's pieces, keys without the "@style" of a styled cache
    script = Path(__file__).resolve().parents[1] / "scripts" / "quality_report.py"
    spec = importlib.util.spec_from_file_location("quality_report_styles", script)
    quality = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(quality)
    keys, paths, pieces = quality.split_keys_and_paths(bundle, cache, "valid", "folk")
    assert paths == valid["folk"] and len(pieces) == len(paths) and not any("@" in k for k in keys)
    plain = quality.split_keys_and_paths(bundle, cache, "valid")
    assert all("@" in k for k in plain[0]) and len(plain[0]) == len(valid["bach"]) + len(valid["folk"])
    with pytest.raises(UsageError, match="^--style: no bundle was trained with --styles"):
        quality.run([("a", str(numpy_styles_bundle(tmp_path / "plain", {}, Tokenizer(TokenizerConfig(**SMALL)))))],
                    str(cache), style="folk")


# --------------------------------------------------------------------------------------- train + sample, end to end
def write_two_scale_styles(root: Path) -> Path:
    """corpus/up: 4 climbing C-major scales (quarter notes), corpus/down: 4 falling ones (eighth notes)."""
    import pretty_midi

    for style, sign, step in (("up", 1, 0.5), ("down", -1, 0.25)):
        (root / style).mkdir(parents=True)
        for k in range(4):
            pm = pretty_midi.PrettyMIDI(initial_tempo=120)
            inst = pretty_midi.Instrument(0)
            degrees = [0, 2, 4, 5, 7, 9, 11, 12]
            for i in range(24):
                pitch = 60 + k + sign * degrees[i % 8] + (12 if sign < 0 else 0)
                length = 2 * step if i % 8 == k else step
                t = i * step
                inst.notes.append(pretty_midi.Note(80, pitch, t, t + length * 0.9))
            pm.instruments.append(inst)
            pm.write(str(root / style / f"{style}{k}.mid"))
    return root


def test_train_and_sample_a_style_end_to_end_with_numpy_equal_to_keras(tmp_path):
    from musicgen.bundle import load_bundle
    from musicgen.corpus import load_tokens
    from musicgen.sampler import StepModel
    from musicgen.scoring import score_pieces
    from musicgen.train_api import train

    from musicgen.corpus import ingest

    corpus = write_two_scale_styles(tmp_path / "corpus")
    cache = ingest(corpus, tmp_path / "cache", TokenizerConfig(styles=find_styles(corpus)), progress=False).out_dir
    with pytest.raises(UsageError, match="^--default-style: unknown style 'jazz'; the corpus"):
        train(cache, out=tmp_path / "bad", styles=True, default_style="jazz", epochs=1, tensorboard=False)
    assert not (tmp_path / "bad").exists()  # refused before any training: nothing written
    bundle = train(cache, out=tmp_path / "bundle", styles=True, cell="gru", preset="tiny", epochs=1, batch_size=2,
                   bptt=16, val_fraction=0.25, test_fraction=0.0, tensorboard=False, default_style="up")
    assert bundle.metrics[st.DEFAULT] == "up"
    tok = bundle.tokenizer
    assert bundle.tokenizer_config.styles == ("down", "up") and bundle.model_config.context == (3,)
    assert sum(bundle.metrics[st.METRIC].values()) == bundle.metrics["train_pieces"]
    # musicgen sample --style, in a fresh process that must not import TensorFlow
    out = tmp_path / "samples"
    run = run_cli_without_tensorflow(["sample", "--model", bundle.path, "--style", "down", "-n", "2", "--length", "30",
                                      "--seed", "3", "-o", out])
    assert run.returncode == 0, run.stderr[-2000:]
    sidecar = json.loads((out / "sample-02.json").read_text())
    assert sidecar["style"] == "down" and sidecar["settings"]["style"] == "down"
    assert "--style down" in sidecar["regenerate"]
    # numpy scores equal Keras logits on real pieces, the style feature included (and the feature matters)
    tokens = load_tokens(cache)
    pieces = [np.asarray(tokens.pieces[i], np.int64) for i in (0, len(tokens) - 1)]  # one down, one up
    step = StepModel(bundle.weights, bundle.model_config, dtype=np.float64, tokenizer=tok)
    numpy_nll = np.concatenate([s.nll for s in score_pieces(step, pieces)])
    model = load_bundle(bundle.path).keras_model()
    keras_nll = []
    for p in pieces:
        ctx = context_features(p, tok)
        assert set(ctx[1:, 0].tolist()) == {1 + st.piece_style(p, tok)}
        logits = np.asarray(model((p[None, :-1], ctx[None, :-1])), np.float64)[0]
        logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
        keras_nll.append(logz - logits[np.arange(len(p) - 1), p[1:]])
        other = ctx.copy()
        other[1:, 0] = 3 - ctx[1:, 0]  # the other style's feature changes the logits
        moved = np.asarray(model((p[None, :-1], other[None, :-1])), np.float64)[0]
        assert np.abs(moved - logits).max() > 1e-4
    np.testing.assert_allclose(numpy_nll, np.concatenate(keras_nll), atol=1e-4)

