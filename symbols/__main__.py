"""Print a network's size: ``python -m symbols --num-layers 110 [--image-shape 3,32,32]``.

Shows the parameter count, multiply-adds per image and output shape; ``--graph FILE``
also saves the graph drawn by ``mx.viz`` (PDF/PNG/SVG with Graphviz's ``dot``
installed, else its DOT source).
"""
import argparse
import os

from common.cli import UsageError, parse_image_shape, parse_yes_no, run_main


def parse_args(argv=None):
    from symbols import PROJECTIONS, SHORTCUTS, UNITS
    p = argparse.ArgumentParser(prog="python -m symbols", description=__doc__.splitlines()[0])
    p.add_argument("--num-layers", type=int, required=True)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--image-shape", default="3,32,32")
    p.add_argument("--unit", default="full_preact", choices=list(UNITS))
    p.add_argument("--shortcut", default="identity", choices=list(SHORTCUTS))
    p.add_argument("--projection", default="B", choices=list(PROJECTIONS))
    p.add_argument("--bottleneck", choices=["yes", "no"], help="default: by depth")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--graph", metavar="FILE", help="save the network graph here")
    return p.parse_args(argv)


def save_graph(symbol, image_shape, path):
    """Draw ``symbol`` for inputs of ``image_shape`` (channels, height, width) with mx.viz
    into ``path``; returns the file written."""
    from common.mx import mx
    stem, ext = os.path.splitext(path)
    fmt = ext.lstrip(".") or "pdf"
    dot = mx.viz.plot_network(symbol, shape={"data": (1,) + image_shape},
                              save_format=fmt, hide_weights=True)
    try:
        return dot.render(stem, cleanup=True)
    except Exception as err:  # graphviz's ExecutableNotFound when 'dot' is not installed
        if type(err).__name__ != "ExecutableNotFound":
            raise
        dot.save(stem + ".gv")
        return stem + ".gv (Graphviz 'dot' not installed: DOT source only)"


def main(argv=None):
    args = parse_args(argv)
    import symbols
    try:
        shape = parse_image_shape(args.image_shape)
        net = symbols.get_symbol(args.num_classes, args.num_layers, shape, unit=args.unit,
                                 shortcut=args.shortcut, projection=args.projection,
                                 bottleneck=parse_yes_no(args.bottleneck, "--bottleneck"),
                                 dtype=args.dtype)
    except ValueError as err:
        raise UsageError(err) from None
    params = symbols.num_params(net, shape)
    macs = symbols.count_macs(net, shape)
    print(f"ResNet-{args.num_layers} {args.unit} {args.shortcut} "
          f"(projection {args.projection}), input {','.join(map(str, shape))}")
    print(f"parameters:     {params:,} ({params / 1e6:.2f}M)")
    print(f"multiply-adds:  {macs:,} per image ({macs / 1e9:.3f} G)")
    print(f"output shape:   {symbols.output_shape(net, shape)}")
    if args.graph:
        print(f"graph:          {save_graph(net, shape, args.graph)}")


if __name__ == "__main__":
    run_main(main, prog="python -m symbols")
