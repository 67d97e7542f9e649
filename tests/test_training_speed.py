"""training/speed.py (--benchmark): the synthetic batches, the Module it trains and
the figures it reports."""
import numpy as np

from common.mx import mx
from training.args import parse_cifar_args
from training.speed import SyntheticIter, benchmark, synthetic_module
from training.module import build_symbol

TINY = ["--benchmark", "--num-layers", "8", "--batch-size", "4", "--benchmark-batches", "2"]


def test_synthetic_batches_are_one_fixed_batch_a_given_number_of_times():
    it = SyntheticIter(10, (4, 3, 8, 8), 3, seed=1)
    batches = list(it)
    assert len(batches) == 3 == len(it) and all(b is batches[0] for b in batches)
    labels = batches[0].label[0].asnumpy()
    assert labels.min() >= 0 and labels.max() < 10
    assert list(it) == []  # spent until reset
    it.reset()
    assert len(list(it)) == 3
    again = SyntheticIter(10, (4, 3, 8, 8), 1, seed=1).batch.data[0].asnumpy()
    assert np.array_equal(again, batches[0].data[0].asnumpy())


def test_the_module_trains_at_the_configured_rate_and_the_benchmark_reports_it(capsys):
    config = parse_cifar_args(TINY + ["--lr", "0.05"])
    symbol = build_symbol(config)
    data = SyntheticIter(10, (4, 3, 32, 32), 1)
    mod = synthetic_module(config, symbol, data, [mx.cpu()])
    assert mod._optimizer.lr_scheduler(1000) == 0.05  # no steps, no warm-up
    result = benchmark(config, symbol, [mx.cpu()], warmup_batches=1)
    assert result["images_per_sec"] > 0 and result["batches"] == 2 and result["batch_size"] == 4
    assert result["peak_rss_mib"] > 0 and result["contexts"] == ["cpu(0)"]
    assert "ResNet-8 full_preact, batch 4, float32 on cpu(0)" in capsys.readouterr().out
