"""dezero.metrics against hand computations, over batches of uneven sizes, on each device."""
# ruff: noqa: NPY002  (dezero draws from the global RNG, as the book does; seeding it is the point)

import numpy as np
import pytest

import dezero.functions as F
from dezero import DataLoader, optimizers
from dezero.metrics import (
    F1,
    Accuracy,
    ConfusionMatrix,
    Mean,
    MeanLoss,
    Precision,
    Recall,
    TopKAccuracy,
)
from dezero.models import MLP
from dezero.training import Trainer

N, C = 103, 4  # batches of 10: the last holds 3


def scores_and_labels(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(N, C)).astype(np.float32)
    t = rng.integers(0, C, N).astype(np.int32)
    t[:5] = 3  # class 3 is frequent; class 2 is never predicted below
    y[:, 2] -= 10
    return y, t


def hand_metrics(y, t):
    """Every metric from its definition, one sample at a time, in Python."""
    pred = [int(np.argmax(row)) for row in y]
    n = len(t)
    out = {"acc": sum(p == int(label) for p, label in zip(pred, t)) / n}
    order = [sorted(range(C), key=lambda c, row=row: -row[c]) for row in y]
    out["top2_acc"] = sum(int(label) in o[:2] for o, label in zip(order, t)) / n
    cm = [[0] * C for _ in range(C)]
    for p, label in zip(pred, t):
        cm[int(label)][p] += 1
    out["confusion"] = cm
    precision, recall, f1 = [], [], []
    for c in range(C):
        tp = cm[c][c]
        predicted = sum(cm[r][c] for r in range(C))
        actual = sum(cm[c])
        if predicted == 0 and actual == 0:
            continue
        p = tp / predicted if predicted else 0.0
        r = tp / actual if actual else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    out["precision"] = sum(precision) / len(precision)
    out["recall"] = sum(recall) / len(recall)
    out["f1"] = sum(f1) / len(f1)
    return out


def all_metrics():
    return [Accuracy(), TopKAccuracy(2), ConfusionMatrix(), Precision(), Recall(), F1()]


def test_metrics_match_a_hand_computation_over_uneven_batches(xp):
    y, t = scores_and_labels()
    expected = hand_metrics(y, t)
    metrics = all_metrics()
    sizes = []
    for i in range(0, N, 10):
        yb, tb = xp.asarray(y[i : i + 10]), xp.asarray(t[i : i + 10])
        sizes.append(len(tb))
        for m in metrics:
            m.update(yb, tb)
    assert sizes[-1] == 3
    sums = [v for m in metrics for v in m.state.values() if not isinstance(v, int)]
    if xp is not np:  # the running sums stay on the device until compute()
        assert sums and all(isinstance(v, xp.ndarray) for v in sums)
    got = {m.name: m.compute() for m in metrics}
    assert got["acc"] == expected["acc"]
    assert got["top2_acc"] == expected["top2_acc"]
    assert got["confusion"].tolist() == expected["confusion"]
    assert got["confusion"].dtype == np.int64
    for key in ("precision", "recall", "f1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    # the mean of the batch accuracies would weigh the last 3 samples like 10
    batch_means = [np.mean(np.argmax(y[i:i + 10], 1) == t[i:i + 10]) for i in range(0, N, 10)]
    assert abs(np.mean(batch_means) - expected["acc"]) > 1e-3


def test_mean_loss_and_mean_are_weighted_by_batch_size(xp):
    rng = np.random.default_rng(1)
    y = rng.normal(size=(N, C))
    t = rng.integers(0, C, N).astype(np.int32)
    per_sample = [float(F.softmax_cross_entropy(y[i:i + 1], t[i:i + 1]).data) for i in range(N)]
    loss_metric = MeanLoss()
    acc_mean = Mean(F.accuracy, name="acc")
    for i in range(0, N, 10):
        yb, tb = xp.asarray(y[i:i + 10]), xp.asarray(t[i:i + 10])
        loss_metric.update(F.softmax_cross_entropy(yb, tb), tb)
        acc_mean.update(yb, tb)
    assert loss_metric.compute() == pytest.approx(sum(per_sample) / N, rel=1e-12)
    assert acc_mean.compute() == pytest.approx(hand_metrics(y, t)["acc"], rel=1e-12)
    assert acc_mean.name == "acc" and Mean(F.accuracy).name == "accuracy"


def test_trainer_evaluate_matches_the_hand_computation():
    np.random.seed(0)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    t = rng.integers(0, C, N).astype(np.int32)
    model = MLP((8, C))
    trainer = Trainer(model, optimizers.SGD().setup(model), F.softmax_cross_entropy,
                      DataLoader(list(zip(x, t)), 10), metrics=all_metrics(), verbose=False)
    result = trainer.evaluate(DataLoader(list(zip(x, t)), 10, shuffle=False))
    y = model(x).data
    expected = hand_metrics(y, t)
    assert result["acc"] == expected["acc"] and result["top2_acc"] == expected["top2_acc"]
    assert result["confusion"].tolist() == expected["confusion"]
    assert result["f1"] == pytest.approx(expected["f1"], abs=1e-12)
    per_sample = [float(F.softmax_cross_entropy(y[i:i + 1], t[i:i + 1]).data) for i in range(N)]
    assert result["loss"] == pytest.approx(np.mean(per_sample), rel=1e-6)  # float32 losses


def test_reset_state_dict_and_allreduce():
    y, t = scores_and_labels()
    m = ConfusionMatrix()
    m.update(y[:50], t[:50])
    state = m.state_dict()
    twin = ConfusionMatrix()
    twin.load_state_dict(state)
    m.update(y[50:], t[50:])
    twin.update(y[50:], t[50:])
    assert m.compute().tolist() == twin.compute().tolist() == hand_metrics(y, t)["confusion"]
    m.reset()
    assert m.compute().sum() == 0 and np.isnan(Accuracy().compute())

    class Twice:
        size = 2

        def allreduce(self, array, op="sum"):
            return array * 2

    acc = Accuracy()
    acc.update(y, t)
    before = acc.compute()
    acc.allreduce(Twice())
    assert acc.compute() == before and int(acc.state["count"]) == 2 * N


def test_metric_errors_name_the_problem():
    y, t = scores_and_labels()
    with pytest.raises(ValueError, match="k must be a positive int"):
        TopKAccuracy(0)
    with pytest.raises(ValueError, match="k=5 but the output has only 4 classes"):
        TopKAccuracy(5).update(y, t)
    with pytest.raises(ValueError, match="the scores have 4 columns but the metric counts 3"):
        ConfusionMatrix(3).update(y, t)
    with pytest.raises(ValueError, match="n_classes must be a positive int"):
        ConfusionMatrix(0)


LABELLED = [Accuracy, lambda: TopKAccuracy(2), ConfusionMatrix, Precision, Recall, F1]
LABELLED_IDS = ["Accuracy", "TopKAccuracy", "ConfusionMatrix", "Precision", "Recall", "F1"]


@pytest.mark.parametrize("make", LABELLED, ids=LABELLED_IDS)
@pytest.mark.parametrize(
    ("labels", "error", "words"),
    [
        (lambda t: t[:-1], ValueError, r"9 labels of shape \(9,\) for scores of shape \(10, 4\)"),
        (lambda t: np.concatenate([t, t]), ValueError, "20 labels"),
        (lambda t: np.where(np.arange(10) == 3, 4, t), ValueError,
         r"label 4 is out of range for 4 classes"),
        (lambda t: np.where(np.arange(10) == 3, -1, t), ValueError, "label -1 is out of range"),
        (lambda t: np.eye(4, dtype=np.int32)[t], ValueError, "look one-hot"),
        (lambda t: t.astype(np.float32), TypeError, "integer labels are required"),
        (lambda t: t > 1, TypeError, "integer labels are required"),
        (lambda t: None, ValueError, "no labels"),
    ],
    ids=["fewer", "more", "too-high", "negative", "one-hot", "float", "bool", "none"],
)
def test_every_metric_refuses_bad_labels_and_keeps_its_sums(make, labels, error, words):
    y, t = scores_and_labels()
    m = make()
    m.update(y[10:20], t[10:20])
    before = {k: np.array(v) for k, v in m.state.items()}
    with pytest.raises(error, match=words):
        m.update(y[:10], labels(t[:10]))
    assert m.state.keys() == before.keys()
    assert all(np.array_equal(m.state[k], v) for k, v in before.items())


@pytest.mark.parametrize("make", LABELLED, ids=LABELLED_IDS)
def test_every_metric_accepts_column_labels_and_sequences(make):
    y, t = scores_and_labels()
    a, b, c = make(), make(), make()
    a.update(y[:12], t[:12])
    b.update(y[:12], t[:12, None])  # (N, 1) labels
    c.update(y[:12].reshape(3, 4, C), t[:12].reshape(3, 4))  # (N, T, C) scores: class axis last
    assert np.array_equal(a.compute(), b.compute()) and np.array_equal(a.compute(), c.compute())
    with pytest.raises(ValueError, match=r"scores must have shape \(N, C\)"):
        make().update(y[:, 0], t)


def test_confusion_matrix_refuses_more_columns_than_classes():
    y, t = scores_and_labels()
    for m in (ConfusionMatrix(3), F1(3), Precision(3), Recall(3)):
        with pytest.raises(ValueError, match="4 columns but the metric counts 3 classes"):
            m.update(y, t % 3)
    m = ConfusionMatrix()
    m.update(y, t)
    with pytest.raises(ValueError, match="5 columns but the metric counts 4"):
        m.update(np.zeros((2, 5)), np.array([0, 1]))


def test_mean_and_mean_loss_need_one_number_per_batch():
    y, t = scores_and_labels()
    per_sample = F.softmax_cross_entropy(y[:4], t[:4]).data * np.ones(4)
    with pytest.raises(ValueError, match=r"the loss must be one number per batch.*\(4,\)"):
        MeanLoss().update(per_sample, t[:4])
    with pytest.raises(ValueError, match=r"fn\(y, t\) must be one number per batch"):
        Mean(lambda y, t: y[:, 0]).update(y[:4], t[:4])
    with pytest.raises(TypeError, match="fn must be a function"):
        Mean(3)


def test_load_state_dict_is_checked_before_anything_changes():
    y, t = scores_and_labels()
    m = ConfusionMatrix(4)
    m.update(y, t)
    before = m.compute().copy()
    with pytest.raises(ValueError, match="a matrix of 3 classes for a metric of n_classes=4"):
        m.load_state_dict({"matrix": np.zeros((3, 3), np.int64)})
    with pytest.raises(ValueError, match="square"):
        m.load_state_dict({"matrix": np.zeros((4, 3), np.int64)})
    with pytest.raises(TypeError, match="expected a dict"):
        Accuracy().load_state_dict([1, 2])
    assert np.array_equal(m.compute(), before)
