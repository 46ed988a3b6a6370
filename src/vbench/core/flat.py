"""Nested configs as one level of dotted keys: what trackers take as hyperparameters and what
report.html compares between runs."""


def flatten(tree, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}; lists stay whole, as their text."""
    if not isinstance(tree, dict):
        return {prefix: tree if isinstance(tree, (int, float, str, bool)) or tree is None
                else str(tree)}
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out
