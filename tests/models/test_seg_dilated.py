"""Dilation8 (Yu & Koltun) beyond the generic segmentation zoo test: the count of the authors' released VOC
model (fyu/dilation, models/dilation8_pascal_voc_deploy.prototxt), the unpadded dilated front end at output
stride 8 whose receptive field is the 186-pixel margin, and torchvision vgg16's keys for its trunk."""
import torch
from torch import nn

import convzoo
from convzoo.layers.context import ContextModule
from convzoo.models.segmentation.dilated import MARGIN, Dilation8

VGG16_CONVS = 14_714_688


def conv_params(cin, cout, k):
    return cin * cout * k * k + cout


def test_count_of_the_released_model():
    front_end = VGG16_CONVS + conv_params(512, 4096, 7) + conv_params(4096, 4096, 1) + conv_params(4096, 21, 1)
    widths = [21, 42, 42, 84, 168, 336, 672, 672]  # ct_conv1_1 .. ct_fc1 of the prototxt, then ct_final to 21
    context = sum(conv_params(a, b, 3) for a, b in zip(widths, widths[1:])) + conv_params(672, 21, 1)
    assert front_end + context == 141_149_720 == convzoo.model_card("dilated8").params


def _front_end(model, x):
    x = model.features(x)
    return model.final(model.fc7(model.fc6(x)))


def test_front_end_is_unpadded_at_stride_8():
    with torch.device("meta"):
        model = Dilation8()
        for k in (1, 24, 66):
            size = 8 * k + 2 * MARGIN
            assert _front_end(model, torch.empty(1, 3, size, size)).shape[-2:] == (k, k)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert all(c.padding == (0, 0) for c in convs)
    assert [c.dilation[0] for c in convs] == [1] * 10 + [2] * 3
    assert model.fc6.dilation == (4, 4) and model.fc6.kernel_size == (7, 7)
    assert not any(isinstance(m, nn.MaxPool2d) for m in list(model.features)[17:])  # pool4, pool5 removed


def test_margin_is_the_receptive_field():
    """Each front-end output pixel sees 2 * 186 + 8 input pixels: the reflected margin gives every pixel of
    the image its full context."""
    with torch.device("meta"):
        model = Dilation8()
    field, step = 1, 1
    for m in [*model.features, model.fc6]:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s = (v if isinstance(v, int) else v[0] for v in (m.kernel_size, m.stride))
            d = m.dilation if isinstance(m.dilation, int) else m.dilation[0]
            field += (d * (k - 1)) * step
            step *= s
    assert step == 8 and field == 2 * MARGIN + 8


def test_trunk_keys_are_torchvision_vgg16s():
    with torch.device("meta"):
        model = Dilation8()
        vgg = convzoo.create_model("vgg16")
    ours = {k: v.shape for k, v in model.state_dict().items() if k.startswith("features.")}
    assert ours == {k: v.shape for k, v in vgg.state_dict().items() if k.startswith("features.")}
    assert model.fc6.weight.numel() == vgg.classifier[0].weight.numel()


def test_large_context_module_starts_as_identity():
    """The front end's He initialisation leaves the context module's identity initialisation alone."""
    model = Dilation8(num_classes=3, in_chans=1)
    assert isinstance(model.context, ContextModule) and model.context.kind == "large"
    scores = torch.rand(1, 3, 12, 12)
    with torch.no_grad():
        torch.testing.assert_close(model.context(scores), scores, atol=0.05, rtol=0)
