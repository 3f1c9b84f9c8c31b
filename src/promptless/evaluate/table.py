"""``Evaluate(display_table=...)``: the per-example inputs, outputs and scores as a table.

The rows are plain dicts (a pandas DataFrame when pandas is installed); shown, they are a
rich table on the terminal, as the progress bar is: asked for, never by default.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger("promptless.evaluate")

CELL_WIDTH = 60


def metric_name(metric: Any) -> str:
    name = getattr(metric, "__name__", None) or type(metric).__name__
    return "metric" if name == "<lambda>" else name


def result_rows(results: Sequence[tuple[Any, Any, float]], metric: str) -> list[dict[str, Any]]:
    """One row per example: its fields, the prediction's (``pred_<name>`` when the example has one), the score."""
    rows = []
    for example, prediction, score in results:
        row = dict(example.items())
        if prediction is not None and hasattr(prediction, "items"):
            for key, value in prediction.items():
                row[f"pred_{key}" if key in row else key] = value
        row[metric] = score
        rows.append(row)
    return rows


def as_table(rows: list[dict[str, Any]]) -> Any:
    """A pandas DataFrame of the rows when pandas is installed, else the rows themselves."""
    try:
        import pandas as pd  # lazy: optional, and heavy
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def show(rows: list[dict[str, Any]], limit: bool | int) -> None:
    """Print up to ``limit`` rows (all for ``True``) as a table, cells cut to ``CELL_WIDTH`` characters."""
    from rich.console import Console  # lazy: rich is imported only when a table is shown
    from rich.table import Table

    shown = rows if limit is True else rows[: int(limit)]
    columns: list[str] = []
    for row in shown:
        columns.extend(key for key in row if key not in columns)
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in shown:
        table.add_row(*(_cell(row.get(column, "")) for column in columns))
    console = Console()
    console.print(table)
    if len(rows) > len(shown):
        console.print(f"... {len(rows) - len(shown)} more rows not displayed ...")


def _cell(value: Any) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"
