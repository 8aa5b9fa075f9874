"""Deeper (or wider) twins: networks built by the same builder as a smaller one from the same blocks, only more
of them (or more channels). Their graphs hold the same kinds of operations, so a check of what an exporter or
the batch-norm folding does with each kind of operation is made on the smaller one; the sweeps over every
network leave the twins out, and test_every_twin_is_made_of_its_representatives_blocks (tests/test_deploy.py)
checks on the meta device that each twin still is one. This is where the suite's slowest minutes were: the
1000-layer ResNets and the 130M-parameter VGGs repeated what their small twins already showed."""

DEEPER_TWINS = {
    "resnet1202": "resnet20", "preact_resnet1001": "preact_resnet164",
    "resnet101": "resnet50", "resnet152": "resnet50", "preact_resnet101": "preact_resnet50",
    "preact_resnet152": "preact_resnet50", "se_resnet101": "se_resnet50", "se_resnet152": "se_resnet50",
    "se_resnext101_32x4d": "se_resnext50_32x4d", "resnext101_32x8d": "resnext50_32x4d",
    "resnext101_64x4d": "resnext50_32x4d", "resnext29_16x64d": "resnext29_8x64d", "wide_resnet101_2": "wide_resnet50_2",
    "vgg13": "vgg11", "vgg16": "vgg11", "vgg19": "vgg11",
    "vgg13_bn": "vgg11_bn", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn",
    "densenet161": "densenet121", "densenet169": "densenet121", "densenet201": "densenet121",
    "densenet_bc190_k40": "densenet_bc100_k12", "densenet_bc250_k24": "densenet_bc100_k12",
    "deeplabv3_resnet101": "deeplabv3_resnet50", "pspnet_resnet101": "pspnet_resnet50",
    "fcn_resnet101": "fcn_resnet50", "zfnet_wide": "zfnet",
}
