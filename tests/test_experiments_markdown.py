"""experiments/markdown.py: the numbers and cells of the experiments' markdown tables."""
import pytest

from experiments.markdown import cell, format_number


@pytest.mark.parametrize("value, kwargs, text", [
    (None, {}, "-"), ("fails too", {}, "fails too"), (6.613, {}, "6.61"),
    (-0.5, {"signed": True}, "-0.50"), (0.004, {"digits": 3}, "0.004"),
    (1.5e6, {"digits": 3}, "1.5e+06"), (0.0, {}, "0.00")])
def test_numbers(value, kwargs, text):
    assert format_number(value, **kwargs) == text


def test_a_cell_keeps_its_pipes_inside():
    assert cell("a | b") == "a \\| b" and cell(3) == "3"
