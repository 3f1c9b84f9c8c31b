"""Rich rendering of what the commands show: the before/after table, scores, predictors and demos."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text

from promptless.redact import safe_text

if TYPE_CHECKING:
    from rich.console import Console

    from promptless.evaluate.evaluate import EvaluationResult
    from promptless.module import Module
    from promptless.optimizers.base import CandidateScore, CompileReport

DEMO_CELL = 80  # characters of a demo value shown in the table
REPORT_COLUMNS = ("", "candidate", "score (95% CI)", "Δ vs baseline (95% CI)", "n", "errors")


def score_text(score: float | None, ci: tuple[float, float] | None) -> str:
    if score is None:
        return "-"
    return f"{score:.1f}% ({ci[0]:.1f}–{ci[1]:.1f})" if ci else f"{score:.1f}%"


def delta_text(candidate: CandidateScore) -> str:
    if candidate.delta is None or candidate.delta_ci is None:
        return ""
    lo, hi = candidate.delta_ci
    return f"{candidate.delta:+.1f} ({lo:+.1f}..{hi:+.1f})"


def gain_text(candidate: CandidateScore | None) -> str:
    """``+12.5 points (95% CI +2.0..+23.0)``, or "" when the candidate was not compared with the baseline."""
    if candidate is None or candidate.delta is None or candidate.delta_ci is None:
        return ""
    lo, hi = candidate.delta_ci
    return f"{candidate.delta:+.1f} points (95% CI {lo:+.1f}..{hi:+.1f})"


def verdict(report: CompileReport, extra: Sequence[CandidateScore] = ()) -> tuple[str, str]:
    """One sentence on the outcome, and its style: a significant gain, or the baseline kept, and why.

    ``extra``: rows scored after the compile, for an optimizer that compared nothing itself.
    """
    if report.baseline is None:
        compared = next((c for c in extra if c.delta is not None), None)
        if compared is None:
            return "the result was not compared with the uncompiled program", "yellow"
        if compared.significant:
            return f"the compiled program beats the baseline significantly: {gain_text(compared)}", "green"
        return f"the compiled program is not significantly better: {gain_text(compared)} (saved anyway)", "yellow"
    baseline = report.baseline
    scored = [c for c in report.candidates if c.name != baseline and c.delta is not None]
    best = max(scored, key=lambda c: c.delta or 0.0, default=None)
    if report.chosen in (None, baseline):
        if best is None:
            return "no candidate was scored against the baseline: baseline kept", "yellow"
        return f"no significant gain: baseline kept (best candidate {best.name}: {gain_text(best)})", "yellow"
    chosen = next((c for c in report.candidates if c.name == report.chosen), None)
    gain = f": {gain_text(chosen)}" if gain_text(chosen) else ""
    if report.significant:
        return f"{report.chosen} beats the baseline significantly{gain}", "green"
    if report.significant is None:
        return f"{report.chosen} kept without a check against the baseline (it could not be scored)", "yellow"
    return f"{report.chosen} kept although not significantly better than the baseline{gain}", "yellow"


# The library's notes name Python arguments; on the command line the same advice names options.
_CLI_WORDS = (
    (re.compile(r"\(fallback_to_baseline=False returns the best candidate\)"), "(--keep-compiled keeps it)"),
    (re.compile(r"returned as asked"), "kept as --keep-compiled asks"),
    (re.compile(r"\bof max_lm_calls=(\d+)"), r"of \1 (--budget)"),
    (re.compile(r"\bfull valset\b"), "whole validation set"),
    (re.compile(r"\bvalset\b"), "validation set"),
    (re.compile(r"\btrainset\b"), "training set"),
)


def cli_wording(note: str) -> str:
    """A library note worded for the command line: options instead of Python argument names."""
    for pattern, words in _CLI_WORDS:
        note = pattern.sub(words, note)
    return note


def render_report(
    console: Console, report: CompileReport, extra: Sequence[CandidateScore] = (), *, metric: str = ""
) -> None:
    """The candidates as a table (the chosen one marked), the verdict, cost, and the optimizer's notes."""
    from rich.table import Table

    table = Table(title=f"before / after on the validation set{f' ({metric})' if metric else ''}", title_justify="left")
    for header in REPORT_COLUMNS:
        table.add_column(header, justify="left" if header in ("", "candidate") else "right", overflow="fold")
    for candidate in [*report.candidates, *extra]:
        mark = "→" if candidate.name == report.chosen else ""
        cells = (safe_text(candidate.name), score_text(candidate.score, candidate.ci), delta_text(candidate))
        table.add_row(mark, *map(Text, cells), str(candidate.n), str(candidate.errors))
    console.print(table)
    text, style = verdict(report, extra)
    say(console, text, style)
    if report.stopped_by_budget:
        say(console, f"stopped by budget: {report.stopped_by_budget}", "yellow")
    cost = (
        f"{report.total_calls} LM calls ({report.cache_hits} from the cache), "
        f"{report.prompt_tokens} prompt + {report.completion_tokens} completion tokens, {report.wall_time_s:.1f} s"
    )
    if report.forecast is not None:
        cost += f"; forecast ~{report.forecast.lm_calls} calls"
    say(console, cost, "dim")
    for note in report.notes:
        say(console, f"note: {note}", "dim")


def render_evaluation(console: Console, result: EvaluationResult, *, name: str, metric: str) -> None:
    from rich.table import Table

    table = Table(title=Text(safe_text(f"{name} ({metric})", one_line=True)), title_justify="left")
    for header in ("score (95% CI)", "n", "errors", "s/item", "LM calls"):
        table.add_column(header, justify="right")
    usage = result.usage
    per_item = result.wall_time_s / result.n if result.n else 0.0
    calls = f"{usage.total.calls} (+{usage.cache_hits} cached)"
    score = Text(score_text(result.score, result.ci))
    table.add_row(score, str(result.n), str(result.errors), f"{per_item:.2f}", calls)
    console.print(table)
    for index, message in sorted(result.error_details.items())[:5]:
        say(console, f"example {index + 1} failed: {message}", "dim")


MAX_MATRIX = 12  # labels beyond this: per-label scores only, no confusion matrix
ERROR_CELL = "(error)"


def per_label(result: EvaluationResult, field: str) -> tuple[dict[str, list[float]], dict[tuple[str, str], int]]:
    """Scores per gold label, and counts per (gold, predicted) pair; a failed example predicts ``(error)``."""
    scores: dict[str, list[float]] = {}
    pairs: dict[tuple[str, str], int] = {}
    for example, prediction, score in result.results:
        gold = str(example.get(field))
        predicted = ERROR_CELL if prediction is None else str(prediction.get(field))
        scores.setdefault(gold, []).append(float(score))
        pairs[(gold, predicted)] = pairs.get((gold, predicted), 0) + 1
    return scores, pairs


def render_per_label(console: Console, result: EvaluationResult, field: str) -> None:
    """Per gold label: n and score (95% CI); then gold × predicted counts, when the labels are few."""
    from rich.table import Table

    from promptless.evaluate.stats import bootstrap_ci

    scores, pairs = per_label(result, field)
    table = Table(title=Text(safe_text(f"per label ({field})", one_line=True)), title_justify="left")
    for header in ("label", "n", "score (95% CI)"):
        table.add_column(header, justify="left" if header == "label" else "right")
    for label in sorted(scores, key=lambda g: (-len(scores[g]), g)):
        values = scores[label]
        lo, hi = bootstrap_ci(values)
        shown = score_text(100 * sum(values) / len(values), (100 * lo, 100 * hi))
        table.add_row(Text(_cell(label)), str(len(values)), shown)
    console.print(table)
    golds = sorted(scores)
    predicted = sorted({p for _, p in pairs} - set(golds) - {ERROR_CELL})
    columns = [*golds, *predicted, *([ERROR_CELL] if any(p == ERROR_CELL for _, p in pairs) else [])]
    if len(columns) > MAX_MATRIX:
        say(console, f"confusion matrix left out: {len(columns)} distinct labels (at most {MAX_MATRIX} shown)", "dim")
        return
    say(console, "confusion matrix (rows: gold, columns: predicted)")
    matrix = Table()
    matrix.add_column("gold \\ predicted")
    for column in columns:
        matrix.add_column(Text(_cell(column)), justify="right")
    for gold in golds:
        matrix.add_row(Text(_cell(gold)), *(str(pairs.get((gold, c), 0)) for c in columns))
    console.print(matrix)


def render_predictors(console: Console, program: Module) -> None:
    """Per predictor: its signature, instructions and demos."""
    from rich.table import Table

    for name, predictor in program.named_predictors():
        signature = predictor.signature
        console.print(Text.assemble((safe_text(name, one_line=True), "bold"), safe_text(f": {signature.signature}")))
        say(console, f"instructions: {signature.instructions}")
        if not predictor.demos:
            say(console, "demos: none", "dim")
            continue
        table = Table(title=f"{len(predictor.demos)} demo(s)", title_justify="left", show_lines=True)
        columns = [n for n in signature.fields if any(n in d for d in predictor.demos)]
        table.add_column("#", justify="right")
        for column in columns:
            table.add_column(Text(safe_text(column, one_line=True)), overflow="fold")
        for i, demo in enumerate(predictor.demos, start=1):
            table.add_row(str(i), *(Text(_cell(demo.get(c))) for c in columns))
        console.print(table)


def say(console: Console, text: str, style: str = "") -> None:
    """Print text that may hold brackets (signatures, notes, model output) as it is, never as rich markup.

    Text from files and model output may hold terminal escape sequences and echoed keys: both are
    made harmless (``promptless.redact.safe_text``) before anything reaches the terminal.
    """
    console.print(safe_text(text), style=style or None, markup=False, highlight=False, soft_wrap=True)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    text = text if len(text) <= DEMO_CELL else text[: DEMO_CELL - 1] + "…"
    return safe_text(text)
