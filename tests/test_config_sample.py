"""``musicgen.config_sample.SampleConfig``: JSON round trips, one-line refusals naming the field, sidecar dicts."""

import pytest

from musicgen.config_sample import SampleConfig
from musicgen.errors import ConfigError, UsageError


@pytest.mark.parametrize("cfg", [
    SampleConfig(top_k=5, top_p=0.9),
    SampleConfig(pitch_range=(40, 80), instruments=(0, 40), density=(1.5, 3.0), key="Bb major", drums=False),
])
def test_json_round_trip(cfg, tmp_path):
    assert SampleConfig.from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert SampleConfig.load(tmp_path / "c.json") == cfg


@pytest.mark.parametrize("make, message", [
    (lambda: SampleConfig(temperature=0), "temperature: expected a number > 0, got 0"),
    (lambda: SampleConfig(top_p=1.5), "top_p: expected a number in (0, 1], got 1.5"),
    (lambda: SampleConfig(seconds=0), "seconds: expected a positive number up to 86400, got 0"),
    (lambda: SampleConfig(pitch_range=(70, 60)), "pitch_range: expected (LO, HI) with 0 <= LO <= HI <= 127"),
    (lambda: SampleConfig(instruments=(128,)), "instruments: expected General MIDI programs in [0, 127]"),
    (lambda: SampleConfig(density=(3.0, 2.0)), "density: expected (LOW, HIGH) notes per second with 0 < LOW <= HIGH"),
    (lambda: SampleConfig(key="H minor"), "--key: expected"),
])
def test_invalid_values_name_the_field_and_value(make, message):
    with pytest.raises(ConfigError) as exc:
        make()
    assert message in str(exc.value)
    assert isinstance(exc.value, UsageError)


def test_config_still_exports_it():
    from musicgen import config

    assert config.SampleConfig is SampleConfig and config.MAX_LENGTH == 1_000_000


def test_sample_config_dict_is_the_sidecar_settings_with_lists():
    data = SampleConfig(pitch_range=(40, 80), instruments=(0, 40), density=(1.5, 3.0)).to_dict()
    assert (data["pitch_range"], data["instruments"], data["density"]) == ([40, 80], [0, 40], [1.5, 3.0])
    assert SampleConfig.from_dict(data).pitch_range == (40, 80)
