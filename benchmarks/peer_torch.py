"""The PyTorch peer of ``symbols.get_symbol(10, depth, (3, 32, 32))``'s default network.

Full pre-activation units (Identity Mappings, Fig. 4e), identity shortcuts, a 1x1
projection where dimensions change (option B) that reads the pre-activated input, the
first unit's BN-ReLU right after conv0 and one more before global pooling (Sec. 4.1):
layer for layer what ``symbols`` builds, so the parameter counts are equal and the
benchmark compares the two frameworks, not two networks.
"""
import contextlib

import torch
from torch import nn

BN_MOMENTUM = 0.1  # Torch's convention; MXNet's momentum 0.9 is the same average
BN_EPS = 1e-5
BASIC_WIDTHS = (16, 32, 64)
BOTTLENECK_WIDTHS = (64, 128, 256)
AUTOCAST = {"float32": None, "float16": torch.float16, "bfloat16": torch.bfloat16}


def conv(cin, cout, kernel, stride=1):
    return nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False)


def bn_relu(channels):
    return nn.Sequential(nn.BatchNorm2d(channels, BN_EPS, BN_MOMENTUM), nn.ReLU(inplace=True))


class PreActUnit(nn.Module):
    """x + F(BN-ReLU(x)); a projection of BN-ReLU(x) where the shape changes.

    ``preactivated``: the input went through BN-ReLU already (first unit of the net).
    """

    def __init__(self, cin, cout, stride, bottleneck, preactivated):
        super().__init__()
        self.pre = nn.Identity() if preactivated else bn_relu(cin)
        # registered before the branch: parameters() then lists them in MXNet's order
        self.projection = conv(cin, cout, 1, stride) if stride != 1 or cin != cout else None
        if bottleneck:
            inner = cout // 4
            self.branch = nn.Sequential(conv(cin, inner, 1), bn_relu(inner),
                                        conv(inner, inner, 3, stride), bn_relu(inner),
                                        conv(inner, cout, 1))
        else:
            self.branch = nn.Sequential(conv(cin, cout, 3, stride), bn_relu(cout),
                                        conv(cout, cout, 3))

    def forward(self, x):
        pre = self.pre(x)
        shortcut = x if self.projection is None else self.projection(pre)
        return shortcut + self.branch(pre)


class PreActResNet(nn.Module):
    """CIFAR pre-activation ResNet: depth 6n+2 (basic) or 9n+2 (bottleneck, from 164)."""

    def __init__(self, depth, num_classes=10, bottleneck=None):
        super().__init__()
        if bottleneck is None:
            bottleneck = depth >= 164 and (depth - 2) % 9 == 0
        n, rest = divmod(depth - 2, 9 if bottleneck else 6)
        if n < 1 or rest:
            raise ValueError(f"depth {depth} is not {'9n+2' if bottleneck else '6n+2'}")
        widths = BOTTLENECK_WIDTHS if bottleneck else BASIC_WIDTHS
        cin = widths[0] // 4 if bottleneck else widths[0]
        layers = [conv(3, cin, 3), bn_relu(cin)]
        for s, cout in enumerate(widths):
            for u in range(n):
                stride = 2 if s > 0 and u == 0 else 1
                layers.append(PreActUnit(cin, cout, stride, bottleneck, s == 0 and u == 0))
                cin = cout
        layers += [bn_relu(cin), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # He et al. 2015 ("MSRA"), as the project
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x):
        return self.fc(self.features(x))


def num_params(model):
    """Learnable parameters (BatchNorm's running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters())


def param_shapes(model):
    """Sorted shapes of the learnable parameters, comparable with MXNet's."""
    return sorted(tuple(p.shape) for p in model.parameters())


def make_trainer(model, lr=0.1, momentum=0.9, wd=1e-4, precision="float32", fused=False,
                 nesterov=True):
    """A training step of ``model``: SGD with Nesterov momentum (plain momentum without
    ``nesterov``) and weight decay, as the project's default ``nag`` optimizer. ``precision``: "float16" trains under float16
    autocast with loss scaling (GPU), "bfloat16" under bfloat16 autocast (float32
    weights, no loss scaling: bfloat16 has float32's range); the loss is computed in
    float32 either way. ``fused``: PyTorch's one-kernel SGD, the same update in fewer
    operator calls. ``step(data, label)`` returns the batch's sums of loss and of correct
    predictions as tensors, without waiting for their values."""
    if precision not in AUTOCAST:
        raise ValueError(f"precision must be one of {', '.join(AUTOCAST)}, got {precision!r}")
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                          weight_decay=wd, fused=fused)
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    device = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device, enabled=precision == "float16")
    model.train()

    def autocast():
        if AUTOCAST[precision] is None:
            return contextlib.nullcontext()
        return torch.autocast(device, AUTOCAST[precision])

    def step(data, label):
        opt.zero_grad(set_to_none=True)
        with autocast():
            out = model(data)
        loss = loss_fn(out.float(), label)
        scaler.scale(loss / data.shape[0]).backward()
        scaler.step(opt)
        scaler.update()
        return loss.detach(), (out.detach().argmax(1) == label).sum()
    return step
