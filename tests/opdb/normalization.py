"""Op table entries: dezero.functions.normalization."""

OPS: list = []
