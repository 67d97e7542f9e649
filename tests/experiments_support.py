"""What the experiments' tests check of a row: the training command it runs builds the
network the row names, with the parameters the papers count."""
import symbols
import train_cifar
from training.module import build_symbol

# Parameters of the CIFAR nets in the papers (2015 Table 6, 2016 Table 3): original
# units with option A shortcuts, and bottleneck nets.
PAPER_PARAMS = {20: 0.27e6, 56: 0.85e6, 110: 1.7e6, 164: 1.7e6, 1001: 10.2e6}
CIFAR_WIDTHS = (16, 32, 64)


def basic_units(depth):
    """[(input width, output width)] of every unit of a basic CIFAR net (6n+2 layers)."""
    n = (depth - 2) // 6
    return [(CIFAR_WIDTHS[max(s - 1, 0)] if u == 0 else w, w)
            for s, w in enumerate(CIFAR_WIDTHS) for u in range(n)]


def shortcut_params(shortcut, depth):
    """The parameters a shortcut of the 2016 paper's Fig. 2 adds to a basic net of
    original units with projection B, counted by hand: a gate is a 1x1 convolution with
    bias from the unit's input to its output width; a 1x1 conv shortcut (no bias, no
    BatchNorm) is on every unit and takes the place of the projection where the width
    changes, whose BatchNorm (a scale and a shift a channel) goes; the others add none."""
    units = basic_units(depth)
    if shortcut in ("exclusive_gating", "shortcut_only_gating"):
        return sum(cin * cout + cout for cin, cout in units)
    if shortcut == "conv1x1":
        return sum(cin * cout if cin == cout else -2 * cout for cin, cout in units)
    return 0


def row_network(cmd, row, depth, classes=10):
    """The network ``cmd`` (a ``train_cifar`` command) trains, checked to be ``row``'s at
    ``depth`` layers: the flags it parses to, and a graph equal to the one ``symbols``
    builds from the row's fields. Returns (network, its parameter count)."""
    args = train_cifar.parse_args(cmd[3:])
    assert (args.num_layers, args.unit, args.shortcut, args.projection, args.dataset) == \
        (depth, row.unit, row.shortcut, row.projection, row.dataset)
    assert args.shortcut_param == row.params
    net = build_symbol(args)
    reference = symbols.get_symbol(classes, depth, (3, 32, 32), unit=row.unit,
                                   shortcut=row.shortcut, projection=row.projection,
                                   bottleneck=row.bottleneck, **row.params)
    assert net.tojson() == reference.tojson()
    return net, symbols.num_params(net, (3, 32, 32))


def identity_params(row, depth, classes=10):
    """Parameters of ``row``'s net with identity shortcuts (its units, its projection)."""
    net = symbols.get_symbol(classes, depth, (3, 32, 32), unit=row.unit,
                             projection=row.projection, bottleneck=row.bottleneck)
    return symbols.num_params(net, (3, 32, 32))
