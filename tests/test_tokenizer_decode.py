"""tokenizer_decode: tokens → notes, by hand (orphan NOTE_OFFs, retriggers, the last step, drums), the id kinds,
and the key and meters of a token list."""

import pytest

from musicgen.config import TokenizerConfig
from musicgen.errors import UsageError
from musicgen.tokenizer import Tokenizer
from musicgen.tokenizer_decode import KINDS, TokenDecoder

BEAT = Tokenizer()


def tuples(notes):
    return sorted((n.pitch, n.start, n.end, n.velocity, n.program, n.is_drum) for n in notes)


def test_decoding_rules_by_hand():
    t = BEAT
    tokens = [t.bos_id, t.token("NOTE_OFF", 60), t.token("NOTE_ON", 60), t.token("NOTE_ON", 60), t.pad_id,
              t.token("TIME_SHIFT", 3), t.token("NOTE_ON", 60), t.token("TIME_SHIFT", 2), t.token("NOTE_OFF", 60),
              t.token("NOTE_OFF", 60), t.token("NOTE_ON", 62), t.token("NOTE_OFF", 62), t.token("NOTE_ON", 64),
              t.token("TIME_SHIFT", 5), t.token("PROGRAM", 128), t.token("VELOCITY", 32), t.token("NOTE_ON", 36),
              t.eos_id, t.token("NOTE_ON", 70)]
    # orphan OFFs ignored; same-step duplicate and ON+OFF at one step dropped; retrigger ends the earlier note;
    # default velocity 80 → centre 78; 64 closed at the end (step 10); drum hit at the last step gets one step
    assert tuples(t.decode_notes(tokens)) == [(36, 10 / 12, 11 / 12, 126, 0, True), (60, 0.0, 3 / 12, 78, 0, False),
                                              (60, 3 / 12, 5 / 12, 78, 0, False), (64, 5 / 12, 10 / 12, 78, 0, False)]
    assert t.decode_notes([]) == [] and t.decode_notes([t.bos_id, t.eos_id]) == []
    for bad in ([468], [-1], [1, 2, 1000]):
        with pytest.raises(UsageError, match="outside"):
            t.decode(bad)


def test_tokenizer_decodes_through_token_decoder_and_kinds_name_the_ids():
    assert isinstance(BEAT, TokenDecoder)
    assert [KINDS[k] for k in BEAT._kind[[0, 1, 2, 3, 3 + 128, 3 + 256]]] == ["PAD", "BOS", "EOS", "NOTE_ON",
                                                                               "NOTE_OFF", "TIME_SHIFT"]


def test_decode_meta_by_hand():
    t = Tokenizer(TokenizerConfig(meter=True, key="token"))
    tokens = [t.bos_id, t.token("KEY", 14), t.token("TIME_SIG", 13), t.token("TIME_SHIFT", 36),
              t.token("TIME_SIG", 9), t.token("KEY", 3), t.eos_id, t.token("TIME_SIG", 13)]
    # value 13 = (4 - 1) * 4 + 1 → 4/4; 9 = (3 - 1) * 4 + 1 → 3/4; the second KEY and anything after EOS are ignored
    assert t.decode_meta(tokens) == (14, [(0, 4, 4), (36, 3, 4)])
