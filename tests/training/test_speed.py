"""The engine's choice of memory layout and precision: measured on real training steps, kept only when it is
clearly faster, recorded, and kept on resume. Timing-sensitive cases use a network whose step time depends on
the layout and autocast by construction (it sleeps), so the measurement has one right answer."""
from __future__ import annotations

import json
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from convzoo.training import make_config, train
from convzoo.training.checkpoint import RunFolder
from convzoo.training.speed import MARGIN, cache_path, choose_speed_options


class VirtualClock:
    """Seconds that pass only when a test network says so: the measurement's answer is then exact."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def __deepcopy__(self, memo):  # the measured copy of a network keeps ticking this clock
        return self


class SlowUnless(nn.Module):
    """A small classifier whose step takes `base_ms`, plus `nchw_ms` in NCHW (not channels_last) and `bf16_ms`
    under bf16 autocast, on a virtual clock."""

    def __init__(self, clock: VirtualClock, base_ms: float, nchw_ms: float, bf16_ms: float):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)
        self.clock, self.base_ms, self.nchw_ms, self.bf16_ms = clock, base_ms, nchw_ms, bf16_ms

    def forward(self, x):
        delay = self.base_ms + (0.0 if x.is_contiguous(memory_format=torch.channels_last) else self.nchw_ms)
        delay += self.bf16_ms if torch.is_autocast_enabled("cpu") else 0.0
        self.clock.now += delay / 1000
        return self.fc(self.conv(x).float().mean(dim=(2, 3)))


def _batch():
    # 2 channels: with 1, an NCHW tensor is channels_last contiguous too
    return torch.randn(8, 2, 6, 6).contiguous(), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def _choose(base_ms, nchw_ms, bf16_ms, **settings):
    clock = VirtualClock()
    images, targets = _batch()
    return choose_speed_options(SlowUnless(clock, base_ms, nchw_ms, bf16_ms), nn.functional.cross_entropy, images,
                                targets, clock=clock, **settings)


def test_the_clearly_fastest_combination_is_chosen():
    choice = _choose(base_ms=10, nchw_ms=40, bf16_ms=40, channels_last=None, amp=None)
    assert (choice.channels_last, choice.amp, choice.how) == (True, False, "measured")
    assert choice.step_ms == {"nchw fp32": 50, "nchw bf16": 90, "channels_last fp32": 10, "channels_last bf16": 50}
    bf16 = _choose(base_ms=100, nchw_ms=0, bf16_ms=-20, channels_last=None, amp=None)
    assert (bf16.channels_last, bf16.amp) == (False, True)


@pytest.mark.parametrize("saving_ms, chosen", [(9, False), (11, True)])
def test_float32_nchw_stays_unless_another_is_faster_by_the_margin(saving_ms, chosen):
    # a 100 ms step against (100 - saving) in channels_last: 9% faster is under the margin, 11% is over it
    choice = _choose(base_ms=100 - saving_ms, nchw_ms=saving_ms, bf16_ms=50, channels_last=None, amp=None)
    assert MARGIN == pytest.approx(1.10)
    assert (choice.channels_last, choice.amp) == (chosen, False)
    # the real clock works too, on a real network
    images, targets = _batch()
    real = choose_speed_options(nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(64, 3)),
                                nn.functional.cross_entropy, images, targets, channels_last=None, amp=None)
    assert real.how == "measured" and all(ms > 0 for ms in real.step_ms.values())


def test_a_setting_the_user_gave_is_kept_and_only_the_other_measured():
    choice = _choose(base_ms=10, nchw_ms=50, bf16_ms=40, channels_last=False, amp=None)
    assert (choice.channels_last, choice.amp) == (False, False)
    assert choice.step_ms == {"nchw fp32": 60, "nchw bf16": 100}
    given = _choose(base_ms=10, nchw_ms=50, bf16_ms=40, channels_last=False, amp=True)
    assert (given.channels_last, given.amp, given.how, given.step_ms) == (False, True, "set", {})


def test_the_measurement_leaves_the_network_and_the_random_state_untouched():
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.Linear(64, 3))
    before = {k: v.clone() for k, v in network.state_dict().items()}
    images, targets = _batch()
    rng = torch.get_rng_state()
    choose_speed_options(network, nn.functional.cross_entropy, images, targets, channels_last=None, amp=None)
    assert all(torch.equal(before[k], v) for k, v in network.state_dict().items())  # BN statistics too
    assert torch.equal(rng, torch.get_rng_state())
    assert next(network.parameters()).is_contiguous()


def test_the_engine_records_its_choice_and_keeps_it_on_resume(shapes, tmp_path, quiet):
    out = tmp_path / "run"
    config = make_config("lenet5", data=str(shapes), out=str(out), epochs=1, batch_size=16, threads=1, explain=False)
    train(config, console=quiet)
    speed = json.loads((out / "config.json").read_text())["resolved"]["speed"]
    assert speed["how"] == "measured" and len(speed["step_ms"]) == 4
    assert all(ms > 0 for ms in speed["step_ms"].values())
    state = RunFolder(out).load_resume_state()
    assert state["speed"] == {"channels_last": speed["channels_last"], "amp": speed["amp"]}

    longer = make_config("lenet5", data=str(shapes), out=str(out), epochs=2, batch_size=16, threads=1, explain=False)
    train(longer, resume=True, console=quiet)
    resumed = json.loads((out / "config.json").read_text())["resolved"]["speed"]
    assert resumed == {"channels_last": speed["channels_last"], "amp": speed["amp"], "how": "resumed", "step_ms": {}}


def test_the_same_configuration_reuses_the_machines_choice_and_trains_to_the_same_weights(shapes, tmp_path, quiet):
    runs = [tmp_path / "first", tmp_path / "second"]
    for out in runs:
        train(make_config("lenet5", data=str(shapes), out=str(out), epochs=1, batch_size=16, threads=1, explain=False),
              console=quiet)
    first, second = (json.loads((out / "config.json").read_text())["resolved"]["speed"] for out in runs)
    assert (first["how"], second["how"]) == ("measured", "cached")
    assert second == {**first, "how": "cached"}
    cached = json.loads(cache_path().read_text())
    assert [{k: v for k, v in entry.items() if k != "step_ms"} for entry in cached.values()] == \
        [{"channels_last": first["channels_last"], "amp": first["amp"]}]
    weights = [load_file(str(out / "last.safetensors")) for out in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # another batch size is another configuration: measured anew
    other = tmp_path / "other"
    train(make_config("lenet5", data=str(shapes), out=str(other), epochs=1, batch_size=8, threads=1, explain=False), console=quiet)
    assert json.loads((other / "config.json").read_text())["resolved"]["speed"]["how"] == "measured"


def test_a_deterministic_run_does_not_measure(shapes, tmp_path, quiet):
    out = tmp_path / "run"
    train(make_config("lenet5", data=str(shapes), out=str(out), epochs=1, batch_size=16, threads=1,
                      deterministic=True, explain=False), console=quiet)
    speed = json.loads((out / "config.json").read_text())["resolved"]["speed"]
    assert speed == {"channels_last": False, "amp": False, "how": "set", "step_ms": {}}
