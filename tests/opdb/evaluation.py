"""Op table entries: dezero.functions.evaluation."""

OPS: list = []

EXEMPT = {
    "accuracy": "a metric on argmax (piecewise constant): it has no gradient and returns a "
                "Variable outside any graph; tested in tests/test_functions_evaluation.py",
}
