"""plots.confusion: the confusion matrix and per-class accuracy of classify's predictions."""
import json
import os

import numpy as np
import pytest

from common.cli import run_main
from plots.confusion import confusion_matrix, main, per_class_table, read_predictions

NAMES = ["tench", "springer", "cassette"]
LABELS = np.array([0, 0, 0, 1, 1, 2, 2, 2])
TOP5 = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 0, 2], [0, 2, 1], [2, 0, 1],
                 [1, 2, 0], [1, 0, 2]])  # 3 classes: the "top 5" holds all three


def test_the_matrix_counts_true_against_predicted():
    matrix = confusion_matrix(LABELS, TOP5[:, 0], 3)
    np.testing.assert_array_equal(matrix, [[2, 1, 0], [1, 1, 0], [0, 2, 1]])
    assert matrix.sum() == len(LABELS)


def test_the_table_gives_each_class_its_accuracy_and_its_confusion():
    top2 = TOP5[:, :2]
    lines = per_class_table(LABELS, top2, NAMES).splitlines()
    assert lines[2] == "| tench | 3 | 66.7 | 100.0 | springer (1) |"
    assert lines[3] == "| springer | 2 | 50.0 | 50.0 | tench (1) |"
    assert lines[4] == "| cassette | 3 | 33.3 | 66.7 | springer (2) |"
    assert lines[5] == "| all | 8 | 50.00 | 75.00 | |"


def test_the_command_writes_the_figure_and_the_table(tmp_path, capsys):
    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"classes": ["n1", "n2", "n3"], "names": NAMES,
                                "crops": "10-crop", "labels": LABELS.tolist(),
                                "top5": TOP5.tolist()}))
    assert main([str(path), "--out", str(tmp_path / "cm"), "--table",
                 str(tmp_path / "cm.md")]) == 0
    for ext in ("png", "pdf"):
        assert os.path.getsize(tmp_path / f"cm.{ext}") > 1000
    assert (tmp_path / "cm.md").read_text().splitlines()[-1] == "| all | 8 | 50.00 | 100.00 | |"
    assert "| tench | 3 | 66.7 |" in capsys.readouterr().out
    labels, top5, names, crops = read_predictions(str(path))
    assert names == NAMES and crops == "10-crop" and top5.shape == (8, 3)


def test_a_file_that_is_no_predictions_is_one_line(tmp_path, capsys):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"labels": [0, 1], "top5": [[0]]}))
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [str(path), "--out", str(tmp_path / "cm")], prog="python3 -m plots.confusion")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "x.json" in err
