"""dezero.metrics: labels and scores are checked in one place for every metric."""

import numpy as np

from dezero import metrics as M
from tests.errdb.base import rows

Y = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
T = np.array([0, 1, 2, 3, 1, 2], dtype=np.int32)


def _metrics(ctx):
    ctx.acc, ctx.top2, ctx.cm = M.Accuracy(), M.TopKAccuracy(2), M.ConfusionMatrix(4)
    ctx.f1, ctx.precision, ctx.recall = M.F1(), M.Precision(), M.Recall()
    ctx.mean, ctx.loss = M.Mean(lambda y, t: np.mean(y), name="mean_y"), M.MeanLoss()
    for m in (ctx.acc, ctx.top2, ctx.cm, ctx.f1, ctx.precision, ctx.recall):
        m.update(Y, T)  # running sums that a refused batch must leave alone
    ctx.mean.update(Y, T)
    ctx.loss.update(np.float32(1.5), T)


ENTRIES = [
    *rows("metrics.TopKAccuracy.update", _metrics,
          fewer_labels=(lambda c: c.acc.update(Y, T[:5]), ValueError, "5 labels", "(6, 4)"),
          more_labels=(lambda c: c.top2.update(Y, np.tile(T, 2)), ValueError, "12 labels"),
          label_too_high=(lambda c: c.acc.update(Y, np.where(T == 3, 4, T)), ValueError,
                          "label 4 is out of range for 4 classes"),
          negative_label=(lambda c: c.top2.update(Y, -T), ValueError, "label -3 is out of range"),
          one_hot=(lambda c: c.acc.update(Y, np.eye(4, dtype=np.int64)[T]), ValueError,
                   "look one-hot", "t.argmax(axis=-1)"),
          float_labels=(lambda c: c.acc.update(Y, T.astype(np.float64)), TypeError,
                        "integer labels are required", "float64"),
          bool_labels=(lambda c: c.top2.update(Y, T > 1), TypeError, "integer labels"),
          no_labels=(lambda c: c.acc.update(Y, None), ValueError, "no labels"),
          vector_scores=(lambda c: c.acc.update(Y[:, 0], T), ValueError,
                         "scores must have shape (N, C)"),
          complex_scores=(lambda c: c.acc.update(Y.astype(np.complex64), T), TypeError,
                          "scores must be real numbers"),
          k_beyond_classes=(lambda c: M.TopKAccuracy(5).update(Y, T), ValueError,
                            "k=5 but the output has only 4 classes")),
    *rows("metrics.TopKAccuracy",
          zero=(lambda c: M.TopKAccuracy(0), ValueError, "k must be a positive int"),
          float_k=(lambda c: M.TopKAccuracy(2.5), ValueError, "k must be a positive int, got 2.5"),
          bool_k=(lambda c: M.TopKAccuracy(True), ValueError, "k must be a positive int")),
    *rows("metrics.Accuracy",
          name=(lambda c: M.Accuracy(name=3), TypeError, "name must be a non-empty str")),
    *rows("metrics.ConfusionMatrix.update", _metrics,
          more_columns=(lambda c: c.cm.update(np.zeros((2, 5)), np.array([0, 1])), ValueError,
                        "5 columns but the metric counts 4 classes"),
          label_beyond=(lambda c: c.cm.update(Y, np.full(6, 4)), ValueError,
                        "label 4 is out of range for 4 classes"),
          float_labels=(lambda c: c.cm.update(Y, T.astype(np.float32)), TypeError,
                        "integer labels are required")),
    *rows("metrics.ConfusionMatrix",
          zero=(lambda c: M.ConfusionMatrix(0), ValueError, "n_classes must be a positive int"),
          float_n=(lambda c: M.ConfusionMatrix(2.5), ValueError, "n_classes must be a positive"),
          set_by_first_batch=(lambda c: _grow(M.ConfusionMatrix()), ValueError,
                              "5 columns but the metric counts 4")),
    *rows("metrics.ConfusionMatrix.load_state_dict", _metrics,
          other_classes=(lambda c: c.cm.load_state_dict({"matrix": np.zeros((3, 3), int)}),
                         ValueError, "a matrix of 3 classes for a metric of n_classes=4"),
          not_square=(lambda c: c.cm.load_state_dict({"matrix": np.zeros((4, 3), int)}),
                      ValueError, "must be square")),
    *rows("metrics.F1", _metrics,
          more_columns=(lambda c: M.F1(3).update(Y, T % 3), ValueError,
                        "4 columns but the metric counts 3 classes"),
          grows=(lambda c: c.f1.update(np.zeros((2, 5)), np.array([0, 1])), ValueError,
                 "5 columns but the metric counts 4")),
    *rows("metrics.Precision", _metrics,
          labels=(lambda c: c.precision.update(Y, T[:, None].repeat(4, 1)), ValueError,
                  "look one-hot")),
    *rows("metrics.Recall", _metrics,
          labels=(lambda c: c.recall.update(Y, np.full(6, 7)), ValueError,
                  "label 7 is out of range")),
    *rows("metrics.Mean.update", _metrics,
          per_sample=(lambda c: M.Mean(lambda y, t: y[:, 0]).update(Y, T), ValueError,
                      "fn(y, t) must be one number per batch", "(6,)"),
          scalar_labels=(lambda c: c.mean.update(Y, np.int64(3)), ValueError,
                         "one entry per sample")),
    *rows("metrics.Mean",
          not_callable=(lambda c: M.Mean(3), TypeError, "fn must be a function")),
    *rows("metrics.MeanLoss.update", _metrics,
          per_sample=(lambda c: c.loss.update(np.ones(6, np.float32), T), ValueError,
                      "the loss must be one number per batch", "(6,)"),
          no_labels=(lambda c: c.loss.update(np.float32(1), None), ValueError,
                     "one entry per sample")),
    *rows("metrics.Metric.load_state_dict", _metrics,
          not_a_dict=(lambda c: c.acc.load_state_dict([1, 2]), TypeError, "expected a dict"),
          strings=(lambda c: c.acc.load_state_dict({"count": np.array("x")}), TypeError,
                   "'count' must hold numbers"),
          key=(lambda c: c.acc.load_state_dict({3: np.array(1)}), TypeError,
               "keys must be str")),
    *rows("metrics.Metric.check_scores_and_labels", _metrics,
          wrong_n_classes=(lambda c: c.acc.check_scores_and_labels(Y, T, n_classes=3),
                           ValueError, "4 columns but the metric counts 3 classes")),
    *rows("metrics.Metric.update",
          abstract=(lambda c: M.Metric().update(Y, T), NotImplementedError,
                    "must implement update(y, t)")),
    *rows("metrics.Metric.compute",
          abstract=(lambda c: M.Metric().compute(), NotImplementedError,
                    "must implement compute()")),
    *rows("metrics.Metric.allreduce", _metrics,
          no_comm=(lambda c: c.acc.allreduce(None), TypeError,
                   "comm must be a communicator with allreduce")),
]


def _grow(cm):
    cm.update(Y, T)
    cm.update(np.zeros((2, 5)), np.array([0, 1]))


EXEMPT = {
    "metrics.Metric": "takes only a name (checked: see metrics.Accuracy)",
    "metrics.Metric.reset": "takes no argument and cannot fail",
    "metrics.Metric.state_dict": "takes no argument and cannot fail",
    "metrics.Mean.compute": "takes no argument; an empty metric is NaN (documented)",
    "metrics.MeanLoss": "takes only a name (checked: see metrics.Accuracy)",
    "metrics.MeanLoss.compute": "takes no argument; an empty metric is NaN (documented)",
    "metrics.TopKAccuracy.compute": "takes no argument; GPU label errors surface here "
                                    "(tests/test_metrics.py, gpu marker)",
    "metrics.ConfusionMatrix.matrix": "takes no argument; GPU label errors surface here",
    "metrics.ConfusionMatrix.compute": "the matrix (see ConfusionMatrix.matrix)",
}
