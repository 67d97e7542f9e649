"""common/cli.py: one-line errors and exits, the switch that shows their tracebacks, the
flags' parsers of an image shape, a list of integers, a yes/no and NAME=VALUE items, and
MXNet's messages cut to the line that says what failed."""
import os
import subprocess
import sys

import pytest

from common.cli import (TRACEBACK, Parser, UsageError, check_image_shape, int_list,
                        mxnet_message, name_values, parse_image_shape, parse_ints,
                        parse_yes_no, run_main)
from train_support import ROOT

HINT = f" ({TRACEBACK}=1 shows the traceback)"


def test_a_parser_error_is_one_line_and_exit_2(capsys):
    parser = Parser(prog="tool")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--n", "x"])
    assert done.value.code == 2
    assert capsys.readouterr().err == "tool: error: argument --n: invalid int value: 'x'\n"


@pytest.mark.parametrize("text, shape", [
    ("3,32,32", (3, 32, 32)), (" 3, 224,224", (3, 224, 224)), ((1, 8, 8), (1, 8, 8)),
    ([3, "32", 32], (3, 32, 32))])
def test_image_shapes(text, shape):
    assert parse_image_shape(text) == shape


@pytest.mark.parametrize("bad", ["3,32", "3,0,32", "a,b,c", "", None, (3, 32)])
def test_bad_image_shapes_say_what_is_expected(bad):
    with pytest.raises(ValueError, match="image_shape must be channels,height,width, got"):
        parse_image_shape(bad)


def test_check_image_shape_takes_no_text():
    assert check_image_shape([3, 32, 32]) == (3, 32, 32)
    with pytest.raises(ValueError, match="got '3,32,32'"):
        check_image_shape("3,32,32")


def test_yes_no_and_name_values():
    assert [parse_yes_no(v, "--b") for v in ("yes", "no", None, True)] == [True, False, None,
                                                                          True]
    with pytest.raises(UsageError, match="--b must be yes or no, got 'y'"):
        parse_yes_no("y", "--b")
    assert name_values(["scale=0.5", "tag=a=b", "empty="], "--p") == [
        ("scale", "0.5"), ("tag", "a=b"), ("empty", "")]
    for bad in ("scale", "=0.5"):
        with pytest.raises(UsageError, match=f"--p expects NAME=VALUE, got '{bad}'"):
            name_values([bad], "--p")


class MXNetError(Exception):
    """Named as MXNet's own error class is: run_main recognises it by its name."""


TRACE = ("Traceback (most recent call last):\n  File \"x.py\", line 1\n"
         "MXNetError: Check failed: shape[1] == 3: expected 3 channels\n"
         "Stack trace:\n  [bt] (0) libmxnet.so")


def test_mxnet_message_keeps_the_line_that_says_what_failed():
    assert mxnet_message(MXNetError(TRACE)) == "shape[1] == 3: expected 3 channels"
    assert mxnet_message(MXNetError("Stack trace:\n  [bt] (0)")) == "MXNetError"


@pytest.mark.parametrize("error, code, line", [
    (UsageError("--lr must be > 0"), 2, "tool: error: --lr must be > 0"),
    (FileNotFoundError("cifar: no such folder"), 2, "tool: error: cifar: no such folder" + HINT),
    (ImportError("MXNet is not installed"), 2, "tool: error: MXNet is not installed" + HINT),
    (MXNetError(TRACE), 2, "tool: error: MXNet: shape[1] == 3: expected 3 channels" + HINT),
    (KeyboardInterrupt(), 130, "tool: interrupted")])
def test_run_main_ends_expected_failures_in_one_line(error, code, line, capsys):
    def main(argv):
        raise error
    with pytest.raises(SystemExit) as done:
        run_main(main, [], prog="tool")
    assert done.value.code == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_run_main_lets_a_bug_through():
    def main(argv):
        raise KeyError("a bug")
    with pytest.raises(KeyError):
        run_main(main, [], prog="tool")
    assert run_main(lambda argv: argv, ["x"], prog="tool") == ["x"]


@pytest.mark.parametrize("value, shown", [("1", True), ("yes", True), ("0", False),
                                          ("", False)])
def test_the_switch_lets_an_expected_failure_end_in_its_traceback(value, shown, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv(TRACEBACK, value)

    def main(argv):
        raise ValueError("looks like bad input")
    with pytest.raises(ValueError if shown else SystemExit):
        run_main(main, [], prog="tool")
    assert capsys.readouterr().err == ("" if shown else
                                       "tool: error: looks like bad input" + HINT + "\n")


def failing_command(switch):
    """A real command that fails on a missing folder, with or without the switch."""
    env = {k: v for k, v in os.environ.items() if k != TRACEBACK}
    env.update({TRACEBACK: "1"} if switch else {})
    return subprocess.run([sys.executable, "-m", "experiments", "status", "no/such/folder"],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def test_a_failing_command_names_the_switch_and_the_switch_shows_the_traceback():
    quiet = failing_command(False)
    assert quiet.returncode == 2
    assert quiet.stderr.splitlines() == [
        "python -m experiments: error: no folder no/such/folder" + HINT]
    loud = failing_command(True)
    assert loud.returncode == 1
    assert loud.stderr.startswith("Traceback (most recent call last):")
    assert 'experiments/status.py", line' in loud.stderr  # the frame that raised it
    assert loud.stderr.splitlines()[-1] == "FileNotFoundError: no folder no/such/folder"


def test_integer_lists():
    assert parse_ints("30,60", "x") == [30, 60]
    assert parse_ints("", "x") == [] == parse_ints(None, "x")
    with pytest.raises(UsageError, match="--lr-step-epochs must be comma-separated integers"):
        parse_ints("3,x", "--lr-step-epochs")
    with pytest.raises(UsageError, match=r"--depths must be integers >= 1, got '20,0'"):
        parse_ints("20,0", "--depths", minimum=1)
    parser = Parser(prog="tool")
    parser.add_argument("--depths", type=int_list("--depths", minimum=1))
    assert parser.parse_args(["--depths", "20,56"]).depths == [20, 56]
