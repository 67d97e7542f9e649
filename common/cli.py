"""Command-line plumbing shared by every entry point: one-line errors, non-zero exits,
the switch that shows their tracebacks instead, the parser of the flags, and the parsers of
an image shape, a list of integers, GPU ids, a yes/no flag, NAME=VALUE items and the
shortcut settings made of them."""
import argparse
import os
import sys

TRACEBACK = "RESNET_TRACEBACK"  # set to 1: a failure ends with its traceback, not one line


class UsageError(ValueError):
    """Bad input from the user: reported in one line, never as a traceback."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: ``prog: error: message``, exit 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parse_image_shape(image_shape):
    """(channels, height, width) from a string such as "3,32,32", or from a tuple."""
    try:
        return check_image_shape(image_shape.split(",") if isinstance(image_shape, str)
                                 else image_shape)
    except ValueError:
        raise ValueError(f"image_shape must be channels,height,width, got {image_shape!r}") \
            from None


def check_image_shape(shape):
    """``shape`` as a tuple (channels, height, width) of positive ints; a ValueError for
    anything else, a string included (``parse_image_shape`` reads "3,32,32")."""
    try:
        if isinstance(shape, str):
            raise TypeError(shape)
        values = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ValueError(f"image_shape must be channels,height,width, got {shape!r}")
    return values


def parse_ints(text, what, minimum=None):
    """``"32000,48000"`` -> [32000, 48000]; '' or None -> []; a one-line UsageError naming
    ``what`` (a flag) for anything else, or for a value below ``minimum``."""
    if text is None or str(text).strip() == "":
        return []
    try:
        values = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}") from None
    if minimum is not None and min(values) < minimum:
        raise UsageError(f"{what} must be integers >= {minimum}, got {text!r}")
    return values


def int_list(what, minimum=None):
    """An argparse ``type`` of comma-separated integers (``parse_ints``) for flag ``what``."""
    def parse(text):
        try:
            return parse_ints(text, what, minimum)
        except UsageError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def parse_gpus(text):
    """--gpus "0,1" (or [0, 1]) -> (0, 1); None or "" -> () (the CPU)."""
    if isinstance(text, (list, tuple)):
        return tuple(int(i) for i in text)
    try:
        return tuple(parse_ints(text, "--gpus"))
    except UsageError:
        raise UsageError(f"--gpus expects comma-separated GPU ids, got {text!r}") from None


def parse_shortcut_params(items, flag="--shortcut-param"):
    """["scale=0.5", "scale_residual=false"] -> {"scale": 0.5, "scale_residual": False}: true
    and false in any case, numbers as floats; a one-line UsageError naming ``flag``."""
    params = {}
    for name, value in name_values(items, flag):
        low = value.strip().lower()
        if low in ("true", "false"):
            params[name] = low == "true"
        else:
            try:
                params[name] = float(value)
            except ValueError:
                raise UsageError(f"{flag} {name}: {value!r} is not a number") from None
    return params


def parse_yes_no(value, flag):
    """A yes/no flag (``--bottleneck``) as True or False; None (not given) stays None, and
    so does a value that already is True or False."""
    if value is None or isinstance(value, bool):
        return value
    if value not in ("yes", "no"):
        raise UsageError(f"{flag} must be yes or no, got {value!r}")
    return value == "yes"


def name_values(items, flag):
    """[(name, value), ...] of ``flag``'s NAME=VALUE items; a one-line UsageError for an
    item without a name or an '='."""
    pairs = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"{flag} expects NAME=VALUE, got {item!r}")
        pairs.append((name, value))
    return pairs


def show_traceback():
    """Whether ``RESNET_TRACEBACK`` asks for whole tracebacks (any value but "" and "0")."""
    return os.environ.get(TRACEBACK, "") not in ("", "0")


def error_line(prog, err, message=None):
    """The one line that reports ``err``; all but bad input (``UsageError``) name the
    switch that shows the traceback, in case the error is a bug rather than bad input."""
    line = f"{prog}: error: {message or err}"
    if not isinstance(err, UsageError):
        line += f" ({TRACEBACK}=1 shows the traceback)"
    return line


def run_main(main, argv=None, prog=None):
    """Call ``main(argv)`` and turn expected failures into one line on stderr and exit 2,
    or, with ``RESNET_TRACEBACK=1`` in the environment, let them end in their traceback.

    Expected failures are bad input (``ValueError``, including ``UsageError``), missing or
    unreadable files (``OSError``), a missing MXNet build (``ImportError``) and errors
    raised inside MXNet (``MXNetError``, reduced to its first meaningful line).
    """
    prog = prog or sys.argv[0].rsplit("/", 1)[-1]
    try:
        return main(argv)
    except KeyboardInterrupt:
        if show_traceback():
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    except (ValueError, OSError, ImportError) as err:
        if show_traceback():
            raise
        print(error_line(prog, err), file=sys.stderr)
        sys.exit(2)
    except Exception as err:  # MXNetError carries a C++ stack trace: keep one line
        if type(err).__name__ != "MXNetError" or show_traceback():
            raise
        print(error_line(prog, err, f"MXNet: {mxnet_message(err)}"), file=sys.stderr)
        sys.exit(2)


def mxnet_message(err):
    """The first line of an MXNetError that says what went wrong, without C++ frames."""
    for line in str(err).splitlines():
        line = line.strip()
        if line and not line.startswith(("Stack trace", "[bt]", "File ", "Traceback (")):
            return line.removeprefix("MXNetError: ").split("Check failed: ")[-1]
    return type(err).__name__
