"""Op table entries: dezero.functions.embedding."""

OPS: list = []
