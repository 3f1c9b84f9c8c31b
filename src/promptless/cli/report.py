"""``promptless eval --report FILE``: the evaluation as a Markdown (``.md``) or self-contained HTML (``.html``) page.

The page holds the score with its 95 % CI, the failures, per-label scores and the confusion
matrix when the answer is a label (a ``Literal``/``bool`` output, or ``--per-label``), and
the compile's before/after scores on its validation set when the artifact records them
(``cli.compile.before`` / ``.after``, written by ``promptless compile``). The HTML page has
no script and loads nothing: its styles are inline and its chart is an inline SVG.

Every text from a file or a model (labels, names, failure messages) is escaped for the page
(``html.escape``; ``|`` in Markdown tables) after ``safe_text`` has shown control characters.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptless.cli.errors import CLIError
from promptless.redact import safe_text

if TYPE_CHECKING:
    from promptless.evaluate.evaluate import EvaluationResult

FORMATS = (".md", ".html")
MAX_MATRIX = 12  # as on the terminal: more distinct labels than this get per-label scores only
MAX_FAILURES = 10


@dataclass
class LabelRow:
    label: str
    n: int
    score: float
    ci: tuple[float, float]


@dataclass
class Report:
    """What the page shows, gathered once; ``markdown()`` and ``html()`` only lay it out."""

    title: str
    metric: str
    score: float
    ci: tuple[float, float]
    n: int
    errors: int
    field: str
    labels: list[LabelRow] = field(default_factory=list)
    matrix: tuple[list[str], list[str], dict[tuple[str, str], int]] | None = None
    matrix_left_out: int = 0  # distinct labels, when too many for a matrix
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    compile_note: str = ""
    failures: list[str] = field(default_factory=list)

    # -- Markdown -------------------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {_md(self.title)}", ""]
        out += [
            f"**Score ({_md(self.metric)}): {_pct(self.score, self.ci)}** on {self.n} examples, {self.errors} error(s)",
            "",
        ]
        if self.before is not None:
            out += ["## Before / after compiling", "", self.compile_note, ""]
            out += ["| program | score (95% CI) | Δ vs baseline (95% CI) | n |", "|---|---:|---:|---:|"]
            for row in (self.before, self.after):
                if row:
                    out.append(
                        f"| {_md(_row_name(row))} | {_pct(row.get('score'), row.get('ci'))} | "
                        f"{_delta(row)} | {row.get('n', '')} |"
                    )
            out.append("")
        if self.labels:
            out += [f"## Per label ({_md(self.field)})", "", "| label | n | score (95% CI) |", "|---|---:|---:|"]
            out += [f"| {_md(r.label)} | {r.n} | {_pct(r.score, r.ci)} |" for r in self.labels]
            out.append("")
        if self.matrix is not None:
            golds, columns, pairs = self.matrix
            out += ["## Confusion matrix", "", "Rows: gold label; columns: predicted label.", ""]
            out.append("| gold \\ predicted | " + " | ".join(_md(c) for c in columns) + " |")
            out.append("|---|" + "---:|" * len(columns))
            for gold in golds:
                out.append(f"| {_md(gold)} | " + " | ".join(str(pairs.get((gold, c), 0)) for c in columns) + " |")
            out.append("")
        elif self.matrix_left_out:
            out += [f"Confusion matrix left out: {self.matrix_left_out} distinct labels (at most {MAX_MATRIX}).", ""]
        if self.failures:
            out += ["## Failures", ""]
            out += [f"- {_md(f)}" for f in self.failures]
            out.append("")
        return "\n".join(out)

    # -- HTML -----------------------------------------------------------------------------------------
    def html(self) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{_h(self.title)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>{_h(self.title)}</h1>",
            f'<p class="score">Score ({_h(self.metric)}): <b>{_h(_pct(self.score, self.ci))}</b> '
            f"on {self.n} examples, {self.errors} error(s)</p>",
        ]
        if self.before is not None:
            parts += ["<h2>Before / after compiling</h2>", f"<p>{_h(self.compile_note)}</p>", self.chart()]
        if self.labels:
            parts += [
                f"<h2>Per label ({_h(self.field)})</h2>",
                "<table><tr><th>label</th><th>n</th><th>score (95% CI)</th></tr>",
            ]
            parts += [
                f"<tr><td>{_h(r.label)}</td><td class=num>{r.n}</td><td class=num>{_h(_pct(r.score, r.ci))}</td></tr>"
                for r in self.labels
            ]
            parts.append("</table>")
        if self.matrix is not None:
            parts += [
                "<h2>Confusion matrix</h2>",
                "<p>Rows: gold label; columns: predicted label.</p>",
                self._matrix_html(),
            ]
        elif self.matrix_left_out:
            parts.append(
                f"<p>Confusion matrix left out: {self.matrix_left_out} distinct labels (at most {MAX_MATRIX}).</p>"
            )
        if self.failures:
            parts += ["<h2>Failures</h2>", "<ul>", *(f"<li>{_h(f)}</li>" for f in self.failures), "</ul>"]
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def chart(self) -> str:
        """Horizontal bars (0–100 %) for before and after, each with its 95 % CI as a whisker."""
        rows = [r for r in (self.before, self.after) if r and isinstance(r.get("score"), (int, float))]
        label_w, bar_w, row_h = 220, 360, 34
        width, height = label_w + bar_w + 120, row_h * len(rows) + 30
        svg = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="score before and after compiling">'
        ]
        for tick in (0, 25, 50, 75, 100):
            x = label_w + bar_w * tick / 100
            svg.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 20}" stroke="#ddd"/>')
            svg.append(
                f'<text x="{x:.1f}" y="{height - 6}" font-size="11" text-anchor="middle" fill="#666">{tick}%</text>'
            )
        for i, row in enumerate(rows):
            y = i * row_h + 6
            score = max(0.0, min(100.0, float(row["score"])))
            colour = "#9ca3af" if row is self.before else "#2563eb"
            svg.append(
                f'<text x="{label_w - 8}" y="{y + 15}" font-size="13" text-anchor="end">{_h(_row_name(row))}</text>'
            )
            svg.append(f'<rect x="{label_w}" y="{y}" width="{bar_w * score / 100:.1f}" height="20" fill="{colour}"/>')
            ci = row.get("ci")
            if isinstance(ci, Sequence) and len(ci) == 2:
                lo, hi = (label_w + bar_w * max(0.0, min(100.0, float(v))) / 100 for v in ci)
                mid = y + 10
                svg.append(
                    f'<line x1="{lo:.1f}" y1="{mid}" x2="{hi:.1f}" y2="{mid}" stroke="#111" stroke-width="1.5"/>'
                )
                for x in (lo, hi):
                    svg.append(f'<line x1="{x:.1f}" y1="{mid - 6}" x2="{x:.1f}" y2="{mid + 6}" stroke="#111"/>')
            svg.append(
                f'<text x="{label_w + bar_w + 8}" y="{y + 15}" font-size="13">{_h(_pct(row["score"], None))}</text>'
            )
        svg.append("</svg>")
        return "\n".join(svg)

    def _matrix_html(self) -> str:
        assert self.matrix is not None
        golds, columns, pairs = self.matrix
        top = max(pairs.values(), default=1) or 1
        out = ["<table><tr><th>gold \\ predicted</th>", *(f"<th>{_h(c)}</th>" for c in columns), "</tr>"]
        for gold in golds:
            cells = []
            for column in columns:
                count = pairs.get((gold, column), 0)
                shade = f"rgba(37,99,235,{0.08 + 0.6 * count / top:.2f})" if count else "transparent"
                cells.append(f'<td class=num style="background:{shade}">{count}</td>')
            out.append(f"<tr><th>{_h(gold)}</th>{''.join(cells)}</tr>")
        out.append("</table>")
        return "".join(out)


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}"
    "table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .6rem}"
    "th{background:#f3f4f6;text-align:left}td.num{text-align:right}.score{font-size:1.2rem}"
)


def check_report_path(path: Path) -> None:
    """Before any LM call: the report is ``.md`` or ``.html``, in a folder that exists."""
    if path.suffix.lower() not in FORMATS:
        raise CLIError(f"--report {path}: name a .md (Markdown) or .html file")
    if path.is_dir():
        raise CLIError(f"--report {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CLIError(f"--report {path}: the folder {parent} does not exist")


def build_report(
    result: EvaluationResult,
    *,
    title: str,
    metric: str,
    field: str,
    labels: bool,
    summary: Mapping[str, Any] | None,
) -> Report:
    """The report of one evaluation; ``labels``: show per-label scores and the confusion matrix."""
    from promptless.cli.render import ERROR_CELL, per_label
    from promptless.evaluate.stats import bootstrap_ci

    report = Report(title, metric, result.score, tuple(result.ci), result.n, result.errors, field)  # type: ignore[arg-type]
    if labels:
        scores, pairs = per_label(result, field)
        for label in sorted(scores, key=lambda g: (-len(scores[g]), g)):
            values = scores[label]
            lo, hi = bootstrap_ci(values)
            report.labels.append(LabelRow(label, len(values), 100 * sum(values) / len(values), (100 * lo, 100 * hi)))
        golds = sorted(scores)
        predicted = sorted({p for _, p in pairs} - set(golds) - {ERROR_CELL})
        columns = [*golds, *predicted, *([ERROR_CELL] if any(p == ERROR_CELL for _, p in pairs) else [])]
        if len(columns) > MAX_MATRIX:
            report.matrix_left_out = len(columns)
        else:
            report.matrix = (golds, columns, pairs)
    if summary and isinstance(summary.get("before"), Mapping):
        report.before = dict(summary["before"])
        after = summary.get("after")
        report.after = dict(after) if isinstance(after, Mapping) else None
        report.compile_note = _compile_note(summary)
    report.failures = [f"example {i + 1}: {m}" for i, m in sorted(result.error_details.items())[:MAX_FAILURES]]
    return report


def write_report(path: Path, report: Report) -> None:
    from promptless.atomic import write_text_atomic

    text = report.html() if path.suffix.lower() == ".html" else report.markdown()
    write_text_atomic(path, text)


# -- text helpers ---------------------------------------------------------------------------------------
def _compile_note(summary: Mapping[str, Any]) -> str:
    n = summary.get("val_examples")
    optimizer = summary.get("optimizer") or "the optimizer"
    kept = (summary.get("after") or {}).get("kept")
    verdict = "the compiled program was kept" if kept else "the uncompiled baseline was kept"
    if summary.get("significant") and kept:
        verdict += " (significantly better)"
    elif kept:
        verdict += " (not significantly better: kept as asked)"
    else:
        verdict += " (no significant gain)"
    return safe_text(f"Compiled by {optimizer}, scored on {n} held-out validation examples; {verdict}.")


def _row_name(row: Mapping[str, Any]) -> str:
    name = str(row.get("name") or "")
    if row.get("kept") is False:
        name += " (not kept)"
    return name


def _pct(score: Any, ci: Any) -> str:
    if not isinstance(score, (int, float)):
        return "-"
    if isinstance(ci, Sequence) and len(ci) == 2:
        return f"{score:.1f}% ({ci[0]:.1f}–{ci[1]:.1f})"
    return f"{score:.1f}%"


def _delta(row: Mapping[str, Any]) -> str:
    delta, ci = row.get("delta"), row.get("delta_ci")
    if not isinstance(delta, (int, float)):
        return ""
    if isinstance(ci, Sequence) and len(ci) == 2:
        return f"{delta:+.1f} ({ci[0]:+.1f}..{ci[1]:+.1f})"
    return f"{delta:+.1f}"


def _h(text: Any) -> str:
    return html.escape(safe_text(str(text), one_line=True), quote=True)


def _md(text: Any) -> str:
    return safe_text(str(text), one_line=True).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
