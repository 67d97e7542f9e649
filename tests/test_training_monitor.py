"""Running loss/accuracy on the device and the progress display."""
import logging

import numpy as np
import pytest

from common.mx import mx
from training.monitor import Progress, RunningStats


def probs_and_labels():
    prob = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6]],
                    np.float32)
    label = np.array([0, 1, 1, 2], np.float32)
    return prob, label


def test_loss_accuracy_and_top_k_match_their_definitions():
    prob, label = probs_and_labels()
    stats = RunningStats(top_k=2)
    stats.update(mx.nd.array(label[:2]), mx.nd.array(prob[:2]))
    stats.update(mx.nd.array(label[2:]), mx.nd.array(prob[2:]))
    result = stats.result("val_")
    picked = prob[np.arange(4), label.astype(int)]
    assert result["val_loss"] == pytest.approx(-np.log(picked).mean(), rel=1e-6)
    assert result["val_acc"] == pytest.approx(2 / 4)  # rows 0 and 3
    assert result["val_top2_acc"] == pytest.approx(4 / 4)
    assert stats.samples == 4 and stats.finite()


def test_padding_rows_are_left_out():
    prob, label = probs_and_labels()
    stats = RunningStats()
    stats.update(mx.nd.array(label), mx.nd.array(prob), num=1)
    assert stats.samples == 1 and stats.result()["acc"] == 1.0
    assert stats.result()["loss"] == pytest.approx(-np.log(0.7), rel=1e-6)


def test_nan_is_noticed_and_totals_round_trip():
    prob, label = probs_and_labels()
    prob[1, 1] = np.nan
    stats = RunningStats()
    stats.update(mx.nd.array(label), mx.nd.array(prob))
    assert not stats.finite()
    other = RunningStats()
    other.set_totals([4, 2.0, 3, 0])
    assert other.result() == {"loss": 0.5, "acc": 0.75}
    np.testing.assert_array_equal(other.totals(), [4, 2.0, 3, 0])


def test_progress_logs_every_n_batches_without_a_terminal(caplog):
    prob, label = probs_and_labels()
    stats = RunningStats()
    progress = Progress(3, 4, every=2, interactive=False)
    with caplog.at_level(logging.INFO):
        for i in range(4):
            stats.update(mx.nd.array(label), mx.nd.array(prob))
            progress.step(i, stats)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and lines[0].startswith("epoch 3 batch 2/4: loss ")
    assert "acc 0.5000" in lines[1] and "images/s" in lines[1]


def test_progress_bar_on_a_terminal(capsys):
    prob, label = probs_and_labels()
    stats = RunningStats()
    stats.update(mx.nd.array(label), mx.nd.array(prob))
    progress = Progress(1, 2, every=1, interactive=True)
    progress.step(0, stats)
    progress.close()
    err = capsys.readouterr().err
    assert "epoch 1" in err and "img_s" in err
