"""Op table entries: dezero.functions.conv."""

OPS: list = []
