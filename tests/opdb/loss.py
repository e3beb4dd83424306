"""Op table entries: dezero.functions.loss."""

OPS: list = []
