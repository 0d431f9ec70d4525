"""musicgen.live_ports: timestamped inputs, scripted ports, one-line errors for every missing piece, the CLI verb."""

import subprocess
import sys
import types
from pathlib import Path

import mido
import pytest

from musicgen.cli import main
from musicgen.errors import UsageError
from musicgen.live_ports import (RecordingOutput, ScriptedInput, TimedInput, TurnTakingInput, open_ports,
                                 port_names)
from musicgen.live_session import FastClock

ROOT = Path(__file__).resolve().parents[1]


class StepClock:
    def __init__(self):
        self.t = 0.0

    def now(self):
        return self.t


def test_scripted_input_hands_out_due_messages_in_order_and_recording_output_stamps():
    clock = StepClock()
    a, b, c = (mido.Message("note_on", note=n) for n in (60, 62, 64))
    inp, out = ScriptedInput([(0.2, b), (0.1, a), (0.5, c)], clock), RecordingOutput(clock)
    assert inp.pending() == []
    clock.t = 0.3
    assert inp.pending() == [(0.1, a), (0.2, b)] and inp.pending() == []
    out.send(c)
    assert out.sent == [(0.3, c)]


def test_turn_taking_input_starts_each_phrase_after_its_answer():
    clock, answered = StepClock(), [0]
    first, second = mido.Message("note_on", note=60), mido.Message("note_on", note=70)
    inp = TurnTakingInput([[(0.0, first)], [(0.0, second)]], clock, lambda: answered[0], gap=0.5)
    assert inp.pending() == []  # phrase 0 armed for 0.5
    clock.t = 1.0
    assert inp.pending() == [(0.5, first)]
    clock.t = 5.0
    assert inp.pending() == []  # phrase 1 waits for the first answer
    answered[0] = 1
    assert inp.pending() == []
    clock.t = 5.5
    assert inp.pending() == [(5.5, second)]


def test_timed_input_stamps_messages_on_arrival():
    clock, made = StepClock(), {}

    class Port:
        name = "fake"

        def __init__(self, callback):
            made["callback"], self.closed = callback, False

        def close(self):
            self.closed = True

    inp = TimedInput(lambda callback: Port(callback), clock)
    a, b = mido.Message("note_on", note=60), mido.Message("note_off", note=60)
    clock.t = 1.25
    made["callback"](a)
    clock.t = 1.5
    made["callback"](b)
    assert inp.name == "fake" and inp.pending() == [(1.25, a), (1.5, b)] and inp.pending() == []
    inp.close()
    assert inp.port.closed


def test_without_python_rtmidi_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtmidi", None)  # import rtmidi raises ImportError
    with pytest.raises(UsageError, match=r"python-rtmidi is not installed \(pip install 'musicgen\[live\]'\)"):
        port_names()
    with pytest.raises(UsageError, match="musicgen\\[live\\]"):
        open_ports(None, None, FastClock())


@pytest.fixture
def fake_rtmidi(monkeypatch):
    monkeypatch.setitem(sys.modules, "rtmidi", types.ModuleType("rtmidi"))


def raiser(exc):
    def f(*args, **kwargs):
        raise exc
    return f


def test_no_midi_system_is_one_line_naming_the_fix(fake_rtmidi, monkeypatch):
    alsa = OSError("MidiInAlsa::initialize: error creating ALSA sequencer client object.")
    monkeypatch.setattr(mido, "get_input_names", raiser(alsa))
    with pytest.raises(UsageError, match=r"^--list-ports: no MIDI system: .*modprobe snd-seq"):
        port_names()
    monkeypatch.setattr(mido, "open_input", raiser(alsa))
    with pytest.raises(UsageError, match=r"^--in: no MIDI system"):
        open_ports(None, None, FastClock())


def test_unknown_port_lists_the_available_ones_and_virtual_ports_need_an_os_that_has_them(fake_rtmidi,
                                                                                            monkeypatch):
    monkeypatch.setattr(mido, "open_input", raiser(OSError("unknown port 'Nope'")))
    monkeypatch.setattr(mido, "get_input_names", lambda: ["Piano:0", "Through:0"])
    with pytest.raises(UsageError, match=r"^--in: no input port 'Nope'; available: 'Piano:0', 'Through:0' "):
        open_ports("Nope", None, FastClock())
    monkeypatch.setattr(mido, "open_input", raiser(NotImplementedError()))
    with pytest.raises(UsageError, match=r"^--in: this OS has no virtual MIDI ports"):
        open_ports(None, None, FastClock())


def test_the_output_failing_closes_the_input(fake_rtmidi, monkeypatch):
    closed = []

    class Port:
        name = "in"

        def __init__(self, *args, **kwargs):
            pass

        def close(self):
            closed.append(True)

    monkeypatch.setattr(mido, "open_input", Port)
    monkeypatch.setattr(mido, "open_output", raiser(OSError("unknown port 'Synth'")))
    monkeypatch.setattr(mido, "get_output_names", lambda: [])
    with pytest.raises(UsageError, match=r"^--out: no output port 'Synth'; available: none"):
        open_ports("in", "Synth", FastClock())
    assert closed == [True]


def test_cli_list_ports_prints_both_lists(fake_rtmidi, monkeypatch, capsys):
    monkeypatch.setattr(mido, "get_input_names", lambda: ["Piano:0"])
    monkeypatch.setattr(mido, "get_output_names", lambda: [])
    assert main(["live", "--list-ports"]) == 0
    assert capsys.readouterr().out == "inputs:\n  Piano:0\noutputs: none\n"


@pytest.mark.parametrize("argv, flag", [(["--wait", "0"], "--wait"), (["--channel", "0"], "--channel"),
                                        (["--bpm", "-5"], "--bpm"), (["--model", "no/such"], "--model"),
                                        (["--meter", "5/3"], "--meter"), (["--key", "H"], "--key"),
                                        (["--voice-channels", "0,2"], "--voice-channels")])
def test_cli_bad_values_exit_2_with_one_line(argv, flag, capsys):
    assert main(["live"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"musicgen live: error: {flag}") and err.count("\n") == 1


def test_live_loads_the_model_and_builds_the_responder_without_tensorflow():
    code = ("import sys\n"
            "import musicgen.live_ports as lp\n"
            "from musicgen.errors import UsageError\n"
            "def stop(*args):\n"
            "    raise UsageError('--in: stopped by the test once the model is loaded')\n"
            "lp.open_ports = stop\n"
            "from musicgen.cli import main\n"
            f"rc = main(['live', '--model', {str(ROOT / 'trained' / 'default')!r}, '--seed', '1'])\n"
            "heavy = {'tensorflow', 'keras', 'music21', 'matplotlib', 'symusic'} & set(sys.modules)\n"
            "assert not heavy, heavy\n"
            "assert {'musicgen.live', 'musicgen.sampler', 'musicgen.live_session'} <= set(sys.modules)\n"
            "sys.exit(rc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr == ("musicgen live: error: --in: stopped by the test once the model "
                                                  "is loaded\n"), run.stderr


def test_list_ports_on_this_machine_lists_or_says_what_is_missing_in_one_line():
    run = subprocess.run([sys.executable, "-m", "musicgen", "live", "--list-ports"], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    if run.returncode == 0:  # a machine with python-rtmidi and a MIDI system
        assert run.stdout.startswith("inputs:") and "outputs:" in run.stdout
    else:
        assert run.returncode == 2 and run.stderr.count("\n") == 1, run.stderr
        assert "pip install 'musicgen[live]'" in run.stderr or "no MIDI system" in run.stderr
