"""Text of the experiments' markdown tables: numbers and cells."""


def format_number(value, digits=2, signed=False):
    """``value`` with ``digits`` decimals (a sign with ``signed``), or ``digits``
    significant digits where it is very large or small; a string as it is; '-' for None."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    sign = "+" if signed else ""
    if value and not 1e-2 <= abs(value) < 1e4:
        return f"{value:{sign}.{digits}g}"
    return f"{value:{sign}.{digits}f}"


def cell(text):
    """``text`` safe inside a markdown table cell."""
    return str(text).replace("|", "\\|")
