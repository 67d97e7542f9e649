"""Running loss and accuracy kept on the device, and the per-epoch progress display.

``RunningStats.update`` only queues a few small NDArray operations, so the training loop
never waits for the device; ``flush`` (every few batches) brings the sums to Python.
"""
import logging
import math
import sys
import time

import numpy as np

from common.mx import mx

EPS = 1e-12  # as MXNet's CrossEntropy metric: -log(p + eps)


class RunningStats:
    """Sums of cross-entropy loss, correct top-1 (and top-k) predictions over samples."""

    def __init__(self, top_k=0):
        self.top_k = top_k
        self.reset()

    def reset(self):
        self.samples, self.loss, self.correct, self.correct_k = 0, 0.0, 0.0, 0.0
        self._pending = None

    def update(self, label, prob, num=None):
        """Add a batch of softmax outputs ``prob`` (N, classes) and labels (N,); only the
        first ``num`` rows count (the rest is padding)."""
        if num is not None and num < prob.shape[0]:
            prob, label = prob[:num], label[:num]
        label = label.as_in_context(prob.context).astype("float32")
        prob = prob.astype("float32", copy=False)
        loss = -mx.nd.log(mx.nd.pick(prob, label, axis=1) + EPS).sum()
        correct = (mx.nd.argmax(prob, axis=1) == label).sum()
        parts = [loss, correct]
        if self.top_k > 1:
            top = mx.nd.topk(prob, axis=1, k=self.top_k, ret_typ="indices")
            parts.append(mx.nd.broadcast_equal(top, label.reshape((-1, 1))).sum())
        sums = mx.nd.concat(*parts, dim=0)
        self._pending = sums if self._pending is None else self._pending + sums
        self.samples += prob.shape[0]

    def flush(self):
        """Wait for the queued sums and add them to the Python totals."""
        if self._pending is not None:
            sums = self._pending.asnumpy().astype(float)
            self._pending = None
            self.loss += sums[0]
            self.correct += sums[1]
            if self.top_k > 1:
                self.correct_k += sums[2]
        return self

    def totals(self):
        """[samples, loss sum, correct, correct top-k] (to add up across workers)."""
        self.flush()
        return np.array([self.samples, self.loss, self.correct, self.correct_k])

    def set_totals(self, totals):
        self.flush()
        self.samples = int(round(totals[0]))
        self.loss, self.correct, self.correct_k = (float(v) for v in totals[1:])

    def result(self, prefix=""):
        """{prefix+'loss', prefix+'acc'[, prefix+'top{k}_acc']} of the samples so far."""
        self.flush()
        n = max(self.samples, 1)
        out = {f"{prefix}loss": self.loss / n, f"{prefix}acc": self.correct / n}
        if self.top_k > 1:
            out[f"{prefix}top{self.top_k}_acc"] = self.correct_k / n
        return out

    def finite(self):
        return math.isfinite(self.flush().loss)


class Progress:
    """A tqdm bar per epoch on a terminal, else a log line every ``every`` batches."""

    def __init__(self, epoch, total, every=20, interactive=None, name=""):
        self.epoch, self.total, self.every, self.name = epoch, total, every, name
        self.start = time.time()
        if interactive is None:
            interactive = sys.stderr.isatty()
        self.bar = None
        if interactive:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=f"{name}epoch {epoch}", unit="batch",
                            leave=False, dynamic_ncols=True)

    def step(self, batch_index, stats):
        """Called after batch ``batch_index`` (0-based); shows ``stats`` when due."""
        if self.bar is not None:
            self.bar.update(1)
        if (batch_index + 1) % self.every:
            return
        speed = stats.samples / max(time.time() - self.start, 1e-9)
        shown = stats.result()
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{shown['loss']:.3f}", acc=f"{shown['acc']:.3f}",
                                 img_s=f"{speed:.0f}")
        else:
            logging.info("%sepoch %d batch %d/%s: loss %.4f acc %.4f, %.1f images/s",
                         self.name, self.epoch, batch_index + 1, self.total or "?",
                         shown["loss"], shown["acc"], speed)

    def close(self):
        if self.bar is not None:
            self.bar.close()
