"""musicgen.meter: table meters, bar lists, key numbers and names, the normalize shift — by hand."""

import numpy as np
import pretty_midi
import pytest

from musicgen.meter import (grid_changes, key_name, key_number, length_meter, meter_changes, meter_events,
                            normalize_shift, normalized_bounds, parse_key, short_bar_meter, table_meter,
                            time_signature_of, time_signature_value, with_meter_events)


def test_time_signature_values_are_a_table_of_64():
    values = [time_signature_value(n, d) for n in range(1, 17) for d in (2, 4, 8, 16)]
    assert sorted(values) == list(range(64))
    assert all(time_signature_value(*time_signature_of(v)) == v for v in range(64))
    assert time_signature_value(4, 4) == 13 and time_signature_value(1, 4) == 1 and time_signature_value(3, 4) == 9
    assert time_signature_value(17, 4) is None and time_signature_value(3, 1) is None


@pytest.mark.parametrize("meter, want", [((4, 4), (4, 4)), ((6, 8), (6, 8)), ((18, 8), (9, 4)), ((3, 1), (6, 2)),
                                         ((12, 32), (6, 16)), ((17, 4), (16, 4)), ((5, 32), (3, 16)),
                                         ((0, 4), (4, 4))])
def test_table_meter(meter, want):
    assert table_meter(*meter) == want


@pytest.mark.parametrize("quarters, meter, want", [(1, (4, 4), (1, 4)), (4, (4, 4), (4, 4)), (3, (4, 4), (3, 4)),
                                                   (1.5, (6, 8), (3, 8)), (0.5, (4, 4), (1, 8)),
                                                   (0.75, (3, 4), (3, 16)), (2, (2, 2), (1, 2))])
def test_short_bar_meter(quarters, meter, want):
    assert short_bar_meter(quarters, *meter) == want


def test_length_meter_prefers_the_closest_denominator():
    assert length_meter(3, 4) == (3, 4) and length_meter(3, 8) == (6, 8) and length_meter(3, 2) == (3, 4)


def test_meter_changes_keeps_what_says_something():
    # pickup, 4/4 bars on the grid (dropped), a 4/4 bar off the grid (kept), a change to 3/4, two entries at one time
    bars = [(0, 1, 4), (1, 4, 4), (5, 4, 4), (9, 4, 4), (12, 4, 4), (13, 3, 4), (16, 3, 4), (19, 2, 4), (19, 3, 4)]
    assert meter_changes(bars) == [(0, 1, 4), (1, 4, 4), (12, 4, 4), (13, 3, 4)]
    steps = [(t * 12, n, d) for t, n, d in bars]
    assert grid_changes(*zip(*steps), steps_per_quarter=12) == [(0, 1, 4), (12, 4, 4), (144, 4, 4), (156, 3, 4)]
    # 6/8 bars are 3 quarters: 36 steps at 12 per quarter; 7/16 bars are 21 steps
    assert grid_changes([0, 36, 72, 90], [6, 6, 6, 6], [8, 8, 8, 8], 12) == [(0, 6, 8), (90, 6, 8)]
    assert grid_changes([0, 21, 42], [7, 7, 7], [16, 16, 16], 12) == [(0, 7, 16)]


def test_meter_events_default_and_off_grid_start():
    to_steps = lambda t: np.floor(np.asarray(t, np.float64) * 12 + 0.5).astype(np.int64)  # noqa: E731
    seg, step, value = meter_events([(), ((2.0, 4, 4),), ((0.0, 18, 8), (4.5, 4, 4))], to_steps, 12)
    four = time_signature_value(4, 4)
    assert seg.tolist() == [0, 1, 1, 2, 2] and step.tolist() == [0, 0, 24, 0, 54]
    assert value.tolist() == [four, four, four, time_signature_value(9, 4), four]


def test_with_meter_events_drops_those_at_the_end():
    events = (np.array([0, 0]), np.array([0, 24]), np.array([True, False]), np.array([0, 0]), np.array([60, 60]),
              np.array([5, 5]), np.array([0, 0]), np.array([True, True]))
    got = with_meter_events(events, (np.array([0, 0, 0]), np.array([0, 12, 24]), np.array([1, 13, 9])),
                            np.array([0]), np.array([24]), 1)
    assert got[1].tolist() == [0, 24, 0, 12] and got[4].tolist() == [60, 60, 1, 13]
    assert got[7].tolist() == [True, True, False, False] and got[2].tolist() == [True, False, False, False]


def test_key_numbers_match_pretty_midi():
    for k in range(24):
        mode, accidentals = pretty_midi.key_number_to_mode_accidentals(k)
        assert key_number(accidentals, mode == 1) == k
    assert key_number(-1, False) == 5 and key_number(-2, True) == 19 and key_number(0, True) == 21


def test_key_names_round_trip():
    assert [parse_key(key_name(k)) for k in range(24)] == list(range(24))
    assert key_name(14) == "D minor" and key_name(10) == "Bb major"


def test_normalize_shift():
    assert [normalize_shift(t) for t in range(12)] == [0, -1, -2, -3, -4, -5, 6, 5, 4, 3, 2, 1]
    assert normalize_shift(np.array([7, 19 % 12])).tolist() == [5, 5]


def test_normalized_bounds():
    # stored on C between 60 and 72, key D major (decoded 2 higher); range 55..76
    # shift x: key tonic 2 + x, decoded = stored - normalize_shift(2 + x); safe while 60 + back >= 55, 72 + back <= 76
    back = [-normalize_shift((2 + x) % 12) for x in range(12)]  # 2, 3, 4, 5, -6, -5, ..., 1
    assert back[:5] == [2, 3, 4, 5, -6]
    assert normalized_bounds(60, 72, 2, 55, 76) == (-7, 2)  # x=3: +5 (77 > 76); x=-7: -5 (55 ok); x=-8: +6 (78)
    assert normalized_bounds(60, 62, 2, 0, 127) == (-127, 127)
    assert normalized_bounds(60, 72, None, 55, 76) == (-21, 21)
