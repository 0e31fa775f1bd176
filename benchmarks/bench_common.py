"""What the benchmark scripts share: a markdown table of their results."""


def table(header, rows) -> str:
    """A markdown table: ``header`` (column names) and ``rows`` (sequences of cells, printed with str)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
