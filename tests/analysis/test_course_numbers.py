"""The numbers the course (/work/shared/course-lecture.txt) and torchvision publish, reproduced."""
import pytest
import torch

import convzoo
from convzoo.analysis import summary
from convzoo.layers.inception import Inception


def test_alexnet_output_volumes_are_the_course_table():
    # The lecture's table, [55x55x96] CONV1 ... [1000] FC8, written H x W x C as the lecture does.
    course = ["55x55x96", "27x27x96", "27x27x96", "27x27x256", "13x13x256", "13x13x256", "13x13x384",
              "13x13x384", "13x13x256", "6x6x256", "4096", "4096", "1000"]
    report = summary("alexnet", input_size=(3, 227, 227))
    layers = [r for r in report.rows if r.type in ("Conv2d", "MaxPool2d", "LocalResponseNorm", "Linear")]
    volumes = ["x".join(map(str, (*r.output_shape[1:], r.output_shape[0]))) for r in layers]
    assert volumes == course


def test_naive_inception_module_costs_854m_operations():
    module = Inception.naive(256, 128, 192, 96)
    report = summary(module, (256, 28, 28), convention="conv_linear")
    # The lecture's terms: 28x28x128x1x1x256 + 28x28x192x3x3x256 + 28x28x96x5x5x256
    assert report.total_macs == 28 * 28 * 256 * (128 + 192 * 9 + 96 * 25) == 854_196_224
    assert report.rows[0].output_shape == (128 + 192 + 96 + 256, 28, 28) == (672, 28, 28)


def test_inception_module_with_dimension_reduction():
    # 1x1 128; 1x1 64 then 3x3 192; 1x1 64 then 5x5 96; pool then 1x1 64 (the lecture's widths)
    module = Inception(256, 128, 64, 192, 64, 96, 64)
    report = summary(module, (256, 28, 28), convention="conv_linear")
    lecture_terms = [28 * 28 * 64 * 1 * 1 * 256, 28 * 28 * 64 * 1 * 1 * 256, 28 * 28 * 128 * 1 * 1 * 256,
                     28 * 28 * 192 * 3 * 3 * 64, 28 * 28 * 96 * 5 * 5 * 64, 28 * 28 * 64 * 1 * 1 * 256]
    assert report.total_macs == sum(lecture_terms) == 271_351_808
    assert report.rows[0].output_shape == (480, 28, 28)
    # The lecture's total, "358M ops", is its own six terms plus the 3x3 term a second time:
    assert round((sum(lecture_terms) + 28 * 28 * 192 * 3 * 3 * 64) / 1e6) == 358


# torchvision's published figures ("GFLOPS" in its model tables are multiply-accumulates of convolutions
# and linear layers at 224x224): exact for resnet50, to the digits published for the others.
PUBLISHED = {
    "resnet50": (4_089_184_256, None),
    "resnet18": (1.814e9, 3),
    "vgg16": (15.47e9, 2),
    "alexnet_owt": (0.714e9, 3),
    "googlenet_bn": (1.498e9, 3),
    "mobilenet_v2": (0.301e9, 3),
    "densenet121": (2.834e9, 3),
}


@pytest.mark.parametrize("name", PUBLISHED)
def test_conv_linear_macs_match_torchvision(name):
    figure, digits = PUBLISHED[name]
    macs = summary(name, input_size=(3, 224, 224), convention="conv_linear").total_macs
    if digits is None:
        assert macs == figure
    else:
        assert round(macs / 1e9, digits) == round(figure / 1e9, digits)


def test_all_is_conv_linear_plus_every_other_operation_of_resnet50_exactly():
    """"all" = the conv/linear MACs + 1 per batch-norm and ReLU output element + the residual adds + 8
    comparisons per max-pool output + 1 per element averaged, each counted here from module hooks on a meta
    ResNet-50 rather than from the tracer's rules."""
    from torch import nn

    with torch.device("meta"):
        model = convzoo.create_model("resnet50").eval()
    counted = {"conv_linear": 0, "other": 0}

    def count(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            counted["conv_linear"] += output.numel() * module.in_channels // module.groups * kh * kw
        elif isinstance(module, nn.Linear):
            counted["conv_linear"] += output.numel() * module.in_features
        elif isinstance(module, (nn.BatchNorm2d, nn.ReLU)):
            counted["other"] += output.numel()
        elif isinstance(module, nn.MaxPool2d):
            counted["other"] += output.numel() * (3 * 3 - 1)
        elif isinstance(module, nn.AdaptiveAvgPool2d):
            counted["other"] += inputs[0].numel()

    for module in model.modules():
        if not list(module.children()):
            module.register_forward_hook(count)
    model(torch.empty(1, 3, 224, 224, device="meta"))
    adds = 56 * 56 * 256 * 3 + 28 * 28 * 512 * 4 + 14 * 14 * 1024 * 6 + 7 * 7 * 2048 * 3
    report = summary("resnet50", convention="all")
    assert summary("resnet50", convention="conv_linear").total_macs == counted["conv_linear"]
    assert sum(r.macs for r in report.rows if r.type == "Bottleneck") == adds  # in the blocks' own rows
    assert report.total_macs == counted["conv_linear"] + counted["other"] + adds
    assert report.uncounted == {}


def test_a_network_built_on_meta_costs_nothing_to_summarise():
    with torch.device("meta"):
        model = convzoo.create_model("vgg19")
    report = summary(model)
    assert report.total_params == 143_667_240 and report.param_bytes == 4 * 143_667_240
