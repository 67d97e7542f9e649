"""Per-channel normalisation of images, (pixels - mean) / std, written once for training,
the probes, export and classification. It imports no MXNet, so that classifying with
onnxruntime alone can use it."""
import numpy as np


def normalize(images, mean, std, channel_axis=1, out=None):
    """``(images - mean) / std`` per channel, as float32.

    images: an array of any shape whose axis ``channel_axis`` holds the channels, e.g.
    (N, C, H, W) with 1 (the default) or (H, W, C) with -1; mean, std: one value a
    channel, in the units of ``images`` (pixel units 0..255 for the datasets' images).
    Computed as ``images * (1 / std) + (-mean / std)``, a multiply and an add in float32
    (equal to the quotient within float32 rounding), into ``out`` where it is given (a
    float32 array of the images' shape). Returns the float32 array.
    """
    images = np.asarray(images)
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    if not -images.ndim <= channel_axis < images.ndim:
        raise ValueError(f"images of shape {images.shape} have no axis {channel_axis}")
    channels = images.shape[channel_axis]
    if not mean.shape == std.shape == (channels,):
        raise ValueError(f"mean and std need one value for each of the {channels} channels "
                         f"(axis {channel_axis} of images of shape {images.shape}), got "
                         f"{mean.tolist()} and {std.tolist()}")
    shape = [1] * images.ndim
    shape[channel_axis] = channels
    out = np.multiply(images, (1 / std).reshape(shape), out=out, dtype=np.float32)
    out += (-mean / std).reshape(shape)
    return out
