"""MXNet Symbol builders for the ResNets of He et al. 2015 and 2016.

``get_symbol(num_classes, num_layers, image_shape, unit=..., shortcut=..., **kwargs)`` is
the entry point; ``UNITS`` (Fig. 4 of the 2016 paper) and ``SHORTCUTS`` (its Fig. 2) are
the registries of variants.
"""
from symbols.resnet import IMAGENET_SPEC, PROJECTIONS, get_symbol, parse_image_shape
from symbols.shortcuts import SHORTCUTS, shortcut_params
from symbols.stats import count_macs, num_params, output_shape, param_shapes
from symbols.units import UNITS

__all__ = ["get_symbol", "parse_image_shape", "UNITS", "SHORTCUTS", "PROJECTIONS",
           "IMAGENET_SPEC", "shortcut_params", "num_params", "count_macs", "output_shape",
           "param_shapes"]
