"""Receptive fields against a gradient probe: the input pixels with a non-zero gradient for one output
unit are exactly the pixels that unit sees. The probe networks have positive weights, positive inputs
and no max pooling, so no path is cut by a dead ReLU or a lost max; the unit probed is the centre one
and the inputs are large enough that its field does not reach the border (except where said)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import convzoo
from convzoo.analysis import summary


def positive_weights(model: nn.Module) -> nn.Module:
    """Every weight 1/fan_in and every bias 0: all paths carry gradient and activations stay O(1)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                module.weight.fill_(1.0 / module.weight[0].numel())
                if module.bias is not None:
                    module.bias.zero_()
    return model.eval()


def probe(model: nn.Module, input_size):
    """(first row, last row), (first column, last column) of input pixels that move the centre output unit,
    and that unit's index."""
    x = torch.ones(1, *input_size, requires_grad=True)
    out = model(x)
    i, j = (out.shape[-2] - 1) // 2, (out.shape[-1] - 1) // 2
    out[0, 0, i, j].backward()
    seen = x.grad[0].abs().sum(0) > 0
    rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
    return (rows.min().item(), rows.max().item()), (cols.min().item(), cols.max().item()), (i, j)


def predicted(model: nn.Module, input_size, index):
    """The same interval from the report: unit i of an axis is centred on start + i*jump and sees rf pixels."""
    row = summary(model, input_size).rows[0]  # the model's own row: its output
    spans = []
    for rf, jump, start, i in zip(row.receptive_field, row.jump, row.start, index):
        centre = start + i * jump
        spans.append((centre - (rf - 1) / 2, centre + (rf - 1) / 2))
    return spans


def assert_probe_matches(model, input_size):
    model = positive_weights(model)
    rows, cols, index = probe(model, input_size)
    expected = predicted(model, input_size, index)
    assert [rows, cols] == expected
    for lo, hi in expected:  # the test is only meaningful if the field stays inside the image
        assert lo >= 0 and hi <= input_size[-1] - 1


class Residual(nn.Module):
    """A strided residual block: 3x3/2 then 3x3 on one path, a 1x1/2 projection on the other."""

    def __init__(self, chans):
        super().__init__()
        self.conv1 = nn.Conv2d(chans, chans, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(chans, chans, 3, padding=1)
        self.project = nn.Conv2d(chans, chans, 1, stride=2)

    def forward(self, x):
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.project(x))


class Branches(nn.Module):
    """Inception-like: 1x1, 3x3, 5x5 and a 3x3 average pool side by side, concatenated, then a 3x3."""

    def __init__(self, chans):
        super().__init__()
        self.b1 = nn.Conv2d(chans, 2, 1)
        self.b3 = nn.Conv2d(chans, 2, 3, padding=1)
        self.b5 = nn.Conv2d(chans, 2, 5, padding=2)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.mix = nn.Conv2d(6 + chans, 1, 3)

    def forward(self, x):
        return self.mix(torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1))


class MisalignedPaths(nn.Module):
    """Two stride-2 paths whose units are centred differently: a 2x2 average pool (centred between
    pixels) and a padded 5x5 conv. The sum sees the union of both, which is wider than either."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(2)
        self.conv = nn.Conv2d(1, 1, 5, stride=2, padding=2)
        self.head = nn.Conv2d(1, 1, 3)

    def forward(self, x):
        return self.head(self.pool(x) + self.conv(x))


def test_dilated_and_strided_stack():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, dilation=2), nn.ReLU(), nn.Conv2d(2, 2, 3, stride=2), nn.ReLU(),
                          nn.Conv2d(2, 1, 3, dilation=3))
    assert summary(model, (1, 41, 41)).rows[0].receptive_field == (1 + 2 * 2 + 2 + 2 * 3 * 2,) * 2
    assert_probe_matches(model, (1, 41, 41))


def test_residual_blocks():
    assert_probe_matches(nn.Sequential(nn.Conv2d(1, 3, 7, stride=2, padding=3), Residual(3), Residual(3)),
                         (1, 97, 97))


def test_branches_and_concatenation():
    assert_probe_matches(nn.Sequential(Branches(1), nn.Conv2d(1, 2, 3, stride=2), Branches(2)), (1, 41, 41))


def test_paths_centred_differently_take_the_union():
    model = MisalignedPaths()
    row = summary(model, (1, 40, 40)).rows[1]  # the pool: a 2x2 window is centred between two pixels
    assert row.name == "pool" and row.start == (0.5, 0.5)
    assert_probe_matches(model, (1, 40, 40))


def test_rectangular_kernels_padding_and_average_pooling():
    model = nn.Sequential(nn.Conv2d(1, 2, (3, 5), padding=(0, 2)), nn.AvgPool2d(3, stride=2, padding=1),
                          nn.ZeroPad2d((1, 0, 2, 0)), nn.Conv2d(2, 1, (5, 3), stride=(1, 2)))
    report = summary(model, (1, 45, 45))
    assert report.rows[0].receptive_field == (3 + 2 + 4 * 2, 5 + 2 + 2 * 2)
    assert_probe_matches(model, (1, 45, 45))


def test_a_global_gate_lets_every_unit_see_the_whole_image():
    class Gated(nn.Module):  # squeeze-and-excitation: a gate from the mean of the map scales every position
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3, padding=1)
            self.fc = nn.Conv2d(2, 2, 1)
            self.head = nn.Conv2d(2, 1, 3)

        def forward(self, x):
            y = self.conv(x)
            return self.head(y * torch.sigmoid(self.fc(y.mean((2, 3), keepdim=True))))

    model = positive_weights(Gated())
    rows, cols, _ = probe(model, (1, 21, 21))
    assert rows == cols == (0, 20)
    report = summary(model, (1, 21, 21))
    # the gate saw the whole 21-pixel map of units that see 3 pixels each, padding included: 23
    assert report.rows[0].receptive_field == (23, 23)
    assert report.rows[0].start == (1, 1) and report.rows[0].jump == (1, 1)


def test_three_stacked_3x3_see_as_far_as_one_7x7_with_fewer_weights():
    chans = 64
    stacked = nn.Sequential(*[nn.Conv2d(chans, chans, 3, padding=1, bias=False) for _ in range(3)])
    single = nn.Conv2d(chans, chans, 7, padding=3, bias=False)
    stacked_report, single_report = summary(stacked, (chans, 32, 32)), summary(single, (chans, 32, 32))
    assert stacked_report.rows[0].receptive_field == single_report.rows[0].receptive_field == (7, 7)
    assert stacked_report.total_params == 27 * chans**2
    assert single_report.total_params == 49 * chans**2


def test_alexnet_receptive_fields_are_the_published_ones():
    # Conv1 11, pool1 19, conv2 51, pool2 67, conv3 99, conv4 131, conv5 163, pool5 195 (as tabulated by
    # Araujo et al., "Computing Receptive Fields of Convolutional Neural Networks", Distill 2019).
    with torch.device("meta"):
        model = convzoo.create_model("alexnet")
    rows = [r for r in summary(model, (3, 227, 227)).rows if r.type in ("Conv2d", "MaxPool2d")]
    assert [r.receptive_field[0] for r in rows] == [11, 19, 51, 67, 99, 131, 163, 195]
    assert [r.jump[0] for r in rows] == [4, 8, 8, 16, 16, 16, 16, 32]


@pytest.mark.parametrize("name", ["resnet18", "vgg11"])
def test_real_networks_against_the_probe(name):
    """Feature maps of two zoo networks: resnet18 up to layer3 (strided blocks with projections), all of
    vgg11's features. Max pooling is swapped for average pooling of the same geometry, so every pixel of
    a window gets gradient; ReLUs cannot die with positive weights."""
    with torch.device("meta"):  # built without initialising; positive_weights() sets every weight
        model = convzoo.create_model(name)
    features = nn.Sequential(*list(model.children())[:-3]) if name == "resnet18" else model.features
    features.to_empty(device="cpu")
    for parent in list(features.modules()):
        for child_name, child in list(parent.named_children()):
            if isinstance(child, nn.MaxPool2d):
                setattr(parent, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding))
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, child_name, nn.Identity())
    size = (3, 225, 225) if name == "resnet18" else (3, 161, 161)  # just larger than the fields (211, 150)
    assert_probe_matches(features, size)


def centroid_probe(model: nn.Module, input_size, index):
    """The gradient-weighted centre (row, column) of the input pixels that move output unit `index`. With
    uniform positive weights, a transposed convolution's unit is centred on the mean of the input units that
    feed it, and a linear or cubic interpolation's on the coordinate it reads (its weights reproduce a linear
    function), so the centre is exact where the interval of pixels seen is not."""
    x = torch.ones(1, *input_size, requires_grad=True)
    model(x)[0, 0, index[0], index[1]].backward()
    grad = x.grad[0].sum(0)
    rows, cols = torch.arange(grad.shape[0], dtype=grad.dtype), torch.arange(grad.shape[1], dtype=grad.dtype)
    total = grad.sum()
    return ((grad.sum(1) * rows).sum() / total).item(), ((grad.sum(0) * cols).sum() / total).item()


def assert_centres_match(model, input_size, units, period=1):
    """The report's centre (start + i*jump) of each unit against the probe's, both averaged over the `period`
    x `period` units from it: a transposed conv of stride s, or a resampling by f, has units whose centres
    alternate around the rule's by a fraction of an input unit, and the rule gives their mean (as its rf gives
    their maximum). The report rounds start and jump to 2 decimals: the geometries are chosen to be exact."""
    model = positive_weights(model)
    row = summary(model, input_size).rows[0]
    for index in units:
        block = [(index[0] + a, index[1] + b) for a in range(period) for b in range(period)]
        probed = torch.tensor([centroid_probe(model, input_size, unit) for unit in block]).mean(0).tolist()
        expected = [sum(start + unit[axis] * jump for unit in block) / len(block)
                    for axis, (start, jump) in enumerate(zip(row.start, row.jump))]
        assert probed == pytest.approx(expected, abs=1e-4), index


@pytest.mark.parametrize("kernel, padding, dilation", [(3, 1, 1), (4, 1, 1), (2, 0, 1), (4, 0, 1), (5, 2, 1),
                                                                  (3, 0, 3)])
def test_transposed_convolution_units_are_centred_where_the_probe_says(kernel, padding, dilation):
    """A strided conv, then the stride-2 transposed conv under test: its offset (p - (k-1)d/2)/s against the
    gradient's centre, over several pairs of output units."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2),
                          nn.ConvTranspose2d(2, 1, kernel, stride=2, padding=padding, dilation=dilation))
    middle = model(torch.zeros(1, 1, 41, 41)).shape[-1] // 2
    assert_centres_match(model, (1, 41, 41), [(middle, middle), (middle + 1, middle - 3), (middle - 4, middle + 2)],
                         period=2)


@pytest.mark.parametrize("upsample, period", [(nn.Upsample(scale_factor=2, mode="bilinear"), 1),
                                              (nn.Upsample(size=41, mode="bilinear", align_corners=True), 1),
                                              (nn.Upsample(scale_factor=4, mode="bilinear"), 1),
                                              (nn.Upsample(scale_factor=2, mode="bicubic"), 2),
                                              (nn.Upsample(scale_factor=2, mode="nearest"), 1)])
def test_resampled_units_are_centred_on_the_coordinate_they_read(upsample, period):
    """Upsampling between two convolutions: output o reads input coordinate (o + 0.5)/f - 0.5 (o(L-1)/(O-1)
    with align_corners), which is the gradient's centre (bicubic's weights centre it only on average over a
    pair of units); nearest copies floor(o/f), so only units o that f divides are centred on it (probed
    without the last convolution)."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), upsample, nn.Conv2d(2, 1, 3))
    if upsample.mode == "nearest":  # a 3x3 after it would centre every unit on an odd one
        model = model[:2]
    out = model(torch.zeros(1, 1, 43, 43)).shape[-1]
    middle = out // 2 // 4 * 4
    units = [(middle, middle), (middle + 4, middle - 4)]
    if upsample.mode != "nearest":
        units += [(middle + 1, middle - 1), (middle - 1, middle + 2)]
    assert_centres_match(model, (1, 43, 43), units, period)


def test_a_strided_slice_shortcut_keeps_the_field_local():
    """The CIFAR ResNets' option-A shortcut takes x[:, :, ::2, ::2]: every other unit, not a flattening, so
    layer2 and layer3 of resnet20 see 37 and 81 pixels, not the whole image."""
    from convzoo.layers.residual import ZeroPadShortcut

    rows = {r.name: r for r in summary("resnet20", (3, 128, 128)).rows}
    assert rows["layer2"].receptive_field == (37, 37) and rows["layer3"].receptive_field == (81, 81)
    assert rows["layer2.0.downsample"].jump == (2, 2) and rows["layer2.0.downsample"].start == (0, 0)
    assert_probe_matches(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Shortcut(ZeroPadShortcut(2, 4, stride=2))),
                         (1, 33, 33))


class Shortcut(nn.Module):
    """A 3x3 stride-2 conv beside a zero-padding shortcut, added: the sum sees the union."""

    def __init__(self, shortcut):
        super().__init__()
        self.shortcut = shortcut
        self.conv = nn.Conv2d(2, 4, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x) + self.shortcut(x)
