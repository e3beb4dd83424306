"""Op table entries: dezero.functions.evaluation."""

OPS: list = []
