"""PSPNet beyond the generic segmentation zoo test: the count from the paper's layers, the pyramid pooling
module on a dilated ResNet at output stride 8, and the auxiliary loss on layer3 weighted 0.4."""
import pytest
import torch
from torch import nn

import convzoo
from convzoo.layers.context import PyramidPooling

RESNET50_TRUNK = 25_557_032 - (2048 * 1000 + 1000)
RESNET101_TRUNK = 44_549_160 - (2048 * 1000 + 1000)


def conv_params(cin, cout, k, bias=True):
    return cin * cout * k * k + (cout if bias else 0)


def head_params(classes=21):
    pyramid = 4 * (conv_params(2048, 512, 1, False) + 2 * 512)  # four bins, 1x1 conv to 2048/4, BN
    return pyramid + conv_params(4096, 512, 3, False) + 2 * 512 + conv_params(512, classes, 1)


def aux_params(classes=21):
    return conv_params(1024, 256, 3, False) + 2 * 256 + conv_params(256, classes, 1)


@pytest.mark.parametrize("name, trunk", [("pspnet_resnet50", RESNET50_TRUNK), ("pspnet_resnet101", RESNET101_TRUNK)])
def test_count_from_the_papers_layers(name, trunk):
    assert trunk + head_params() + aux_params() == convzoo.model_card(name).params  # with the aux head (default)
    with torch.device("meta"):
        model = convzoo.create_model(name, aux_loss=False)
    assert sum(p.numel() for p in model.parameters()) == trunk + head_params()


def test_pyramid_on_a_dilated_resnet_at_stride_8():
    with torch.device("meta"):
        model = convzoo.create_model("pspnet_resnet50").eval()
        layer3, layer4 = model.backbone(torch.empty(1, 3, 473, 473))
    assert layer3.shape[1:] == (1024, 60, 60) and layer4.shape[1:] == (2048, 60, 60)  # the paper's 60x60 map
    assert model.backbone.layer3[1].conv2.dilation == (2, 2) and model.backbone.layer4[1].conv2.dilation == (4, 4)
    pyramid = model.classifier[0]
    assert isinstance(pyramid, PyramidPooling) and pyramid.bins == (1, 2, 3, 6) and pyramid.out_chans == 4096
    assert [branch[1][0].out_channels for branch in pyramid.branches] == [512] * 4
    assert model.classifier[1][0].kernel_size == (3, 3) and model.classifier[2].p == 0.1


@pytest.mark.slow
def test_auxiliary_loss_on_layer3_weighted_0_4():
    torch.manual_seed(0)
    model = convzoo.create_model("pspnet_resnet50", num_classes=3).train()
    assert model.aux_weight == 0.4
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # so the training-mode outputs are deterministic
    x = torch.randn(2, 3, 9, 11)
    with torch.no_grad():
        out = model(x)
        layer3, _ = model.backbone(x)
        expected_aux = nn.functional.interpolate(model.aux_classifier(layer3), size=(9, 11), mode="bilinear",
                                                 align_corners=False)
        assert set(model.eval()(x)) == {"out", "aux"}  # torchvision's dict in every mode
    assert set(out) == {"out", "aux"} and out["out"].shape == (2, 3, 9, 11)
    torch.testing.assert_close(out["aux"], expected_aux)


def test_bare_pspnet_is_the_papers_resnet101_and_takes_resnet50():
    with torch.device("meta"):
        default = convzoo.create_model("pspnet")
        small = convzoo.create_model("pspnet", backbone="resnet50", aux_loss=False)
    assert sum(p.numel() for p in default.parameters()) == convzoo.model_card("pspnet_resnet101").params
    assert default.aux_weight == 0.4
    with torch.device("meta"):
        reference = convzoo.create_model("pspnet_resnet50", aux_loss=False)
    assert small.state_dict().keys() == reference.state_dict().keys()
    assert sum(p.numel() for p in small.parameters()) == sum(p.numel() for p in reference.parameters())
    with pytest.raises(ValueError, match="not 'vgg16'"):
        convzoo.create_model("pspnet", backbone="vgg16")
