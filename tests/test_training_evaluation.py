"""training/evaluation.py: a fresh inference Module, and the mean loss and accuracy of a
data set with its padding left out."""
import math

import numpy as np

from common.mx import mx
from training.evaluation import eval_module, evaluate


def constant_net():
    """Probabilities (0.9, 0.1) for every image, whatever it is."""
    data = mx.sym.Variable("data")
    logits = mx.sym.FullyConnected(mx.sym.flatten(data), num_hidden=2, name="fc")
    return mx.sym.SoftmaxOutput(logits, name="softmax")


def test_loss_and_accuracy_over_the_images_padding_left_out():
    labels = np.array([0, 0, 1, 0, 1], dtype=np.float32)  # 5 images, batches of 2
    it = mx.io.NDArrayIter(np.ones((5, 1, 2, 2), np.float32), labels, batch_size=2,
                           label_name="softmax_label", last_batch_handle="pad")
    mod = eval_module(constant_net(), it, [mx.cpu()])
    assert not mod.for_training
    bias = np.log([0.9, 0.1]).astype(np.float32)
    mod.set_params({"fc_weight": mx.nd.zeros((2, 4)), "fc_bias": mx.nd.array(bias)}, {})
    result = evaluate(mod, it)
    assert result["val_acc"] == 0.6  # the three images of class 0, not the padding
    loss = -(3 * math.log(0.9) + 2 * math.log(0.1)) / 5
    assert math.isclose(result["val_loss"], loss, rel_tol=1e-5)
