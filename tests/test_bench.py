"""The bench helpers: fair timing order, and the yardstick of `bench ffc` computing what the
course's Fourier unit computes."""

import copy

import torch

from course_lib.bench import paired_medians
from course_lib.bench_suites import _LaMaLayoutFourierUnit
from course_lib.ffc import FourierUnit


def test_paired_medians_time_each_function_once_per_round_and_rotate_who_goes_first():
    calls: list[str] = []
    functions = [lambda name=name: calls.append(name) for name in "abc"]
    medians = paired_medians(*functions, repeats=3)
    assert len(medians) == 3 and all(seconds >= 0 for seconds in medians)
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_the_lama_layout_unit_is_the_fourier_unit_up_to_the_order_of_its_channels():
    torch.manual_seed(0)
    channels, out_channels = 6, 4
    unit = FourierUnit(channels, out_channels).eval()
    with torch.no_grad():  # batch-norm statistics that are not the identity
        unit.norm.running_mean.normal_()
        unit.norm.running_var.uniform_(0.5, 2.0)
        unit.norm.weight.uniform_(0.5, 1.5)
    # LaMa's layout puts the real and imaginary parts of channel c at 2c and 2c + 1; the
    # course's at c and C + c. The same weights, reordered, must give the same output.
    to_course_in = torch.tensor([r * channels + c for c in range(channels) for r in range(2)])
    to_course_out = torch.tensor(
        [r * out_channels + c for c in range(out_channels) for r in range(2)]
    )
    reordered = copy.deepcopy(unit)
    with torch.no_grad():
        reordered.conv.weight.copy_(unit.conv.weight[to_course_out][:, to_course_in])
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(reordered.norm, name).copy_(getattr(unit.norm, name)[to_course_out])
    x = torch.randn(2, channels, 9, 11)  # odd sizes: the inverse FFT needs s=(H, W)
    with torch.no_grad():
        expected = unit(x)
        assert torch.allclose(_LaMaLayoutFourierUnit(reordered)(x), expected, atol=1e-5)
        # and with the weights not reordered it is a different layer
        assert not torch.allclose(_LaMaLayoutFourierUnit(unit)(x), expected, atol=1e-3)
