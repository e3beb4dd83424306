"""Op table entries: dezero.functions.noise."""

OPS: list = []
