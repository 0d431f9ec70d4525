from pathlib import Path

import pytest

from musicgen.config import MODEL_PRESETS, ModelConfig, TokenizerConfig, TrainConfig
from musicgen.config_sample import SampleConfig
from musicgen.errors import ConfigError, UsageError


@pytest.mark.parametrize("cfg", [
    TokenizerConfig(), TokenizerConfig.seconds(), TokenizerConfig(velocity_bins=0, programs=False),
    ModelConfig(vocab_size=300, cell="gru"), TrainConfig(clipnorm=None, transpose=3),
])
def test_json_round_trip(cfg, tmp_path):
    assert type(cfg).from_json(cfg.to_json()) == cfg
    cfg.save(tmp_path / "c.json")
    assert type(cfg).load(tmp_path / "c.json") == cfg


def test_seconds_preset_is_performance_rnn():
    cfg = TokenizerConfig.seconds()
    assert (cfg.time_mode, cfg.step_seconds, cfg.max_shift_steps, cfg.velocity_bins) == ("seconds", 0.01, 100, 32)


@pytest.mark.parametrize("make, message", [
    (lambda: ModelConfig(vocab_size=0), "vocab_size: expected a positive integer, got 0"),
    (lambda: ModelConfig(vocab_size=10, cell="transformer"), "cell: expected one of"),
    (lambda: ModelConfig(vocab_size=10, dropout=1.0), "dropout: expected a number in [0, 1), got 1.0"),
    (lambda: TrainConfig(bptt=1), "bptt: expected an integer >= 2, got 1"),
    (lambda: TrainConfig(clipnorm=-1.0), "clipnorm"),
    (lambda: TokenizerConfig(time_mode="bars"), "time_mode"),
    (lambda: TokenizerConfig(min_pitch=60, max_pitch=59), "max_pitch"),
])
def test_invalid_values_name_the_field_and_value(make, message):
    with pytest.raises(ConfigError) as exc:
        make()
    assert message in str(exc.value)
    assert isinstance(exc.value, UsageError)


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="unknown field"):
        TrainConfig.from_dict({"epochs": 2, "epochz": 3})


def test_presets_build_valid_configs():
    for name, preset in MODEL_PRESETS.items():
        assert ModelConfig(vocab_size=100, **preset).units > 0, name


def _disk_fills_halfway(monkeypatch):
    """Every ``Path.write_text`` / ``write_bytes`` writes half its data, then fails as a full disk would."""
    import errno

    real = Path.write_bytes

    def write_bytes(self, data):
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **k: write_bytes(self, text.encode()))


@pytest.mark.parametrize("cfg", [TokenizerConfig(), ModelConfig(vocab_size=10), TrainConfig(), SampleConfig()])
def test_a_save_failing_halfway_keeps_the_old_file_whole(cfg, tmp_path, monkeypatch):
    path = tmp_path / "c.json"
    cfg.save(path)
    before = path.read_text()
    _disk_fills_halfway(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        cfg.save(path)
    monkeypatch.undo()
    assert path.read_text() == before and type(cfg).load(path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]
