"""Op table entries: dezero.functions.activation."""

OPS: list = []
