"""An LM judge of answers, measured against labels, compiled, then used as the metric to compile a task program.

    python examples/judge.py                        # gemma-3-270m, 40 judgements, 10 task items
    python examples/judge.py --limit 16 --task-items 4 --model local/smollm2-135m

The labelled judgements are *constructed*, not written by humans: each is a
HotPotQA question with its gold answer and a candidate answer. For half of them
the candidate is the gold answer itself or a normalised variant of it (case,
a dropped leading article, a trailing full stop), labelled ``correct``; for the
other half it is another question's answer (a different one after
normalising), labelled ``incorrect``. So the labels are known without
annotators, and always agreeing with one label scores 50 %.

Steps: (1) the judge's agreement with the labels on the dev half, zero-shot;
(2) BootstrapFewShot compiles the Judge on the train half (metric: verdict ==
label) and the agreement is measured again; (3) the compiled judge is the
metric that compiles a small reading-comprehension program (context, question
-> answer, with the gold paragraphs as context) on a few other HotPotQA items,
whose dev score is reported by the judge and, as a check, by exact match.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _data import DATA
from rich.console import Console
from rich.table import Table

import promptless as pl
from promptless.evaluate.judge import Judge
from promptless.evaluate.metrics import answer_exact_match, normalize_text

JUDGE_INPUTS = ("question", "gold_answer", "predicted_answer")


class AnswerFromContext(pl.Signature):
    """Answer the question from the passages with a short phrase, usually a name, a date or yes/no."""

    context: list[str] = pl.InputField()
    question: str = pl.InputField()
    answer: str = pl.OutputField()


def hotpotqa_items() -> list[dict]:
    """HotPotQA train sample rows: question, answer and the gold supporting paragraphs as ``context``."""
    path = DATA / "hotpotqa" / "hotpotqa_train_sample.json"
    if not path.is_file():
        raise SystemExit(f"HotPotQA not found at {path}; set PROMPTLESS_DATA to the folder holding hotpotqa/")
    items = []
    for row in json.loads(path.read_text(encoding="utf-8")):
        gold_titles = {title for title, _ in row["supporting_facts"]}
        paragraphs = [f"{title}: {''.join(sentences).strip()}" for title, sentences in row["context"]]
        context = [p for (title, _), p in zip(row["context"], paragraphs, strict=True) if title in gold_titles]
        items.append({"question": row["question"], "answer": row["answer"], "context": context})
    return items


def variant(answer: str, rng: random.Random) -> str:
    """The gold answer as someone might write it: same meaning, different surface."""
    choices = [answer, answer.lower(), answer.upper() if len(answer) <= 4 else answer.lower(), f"{answer}."]
    if answer.lower().startswith("the "):
        choices.append(answer[4:])
    return rng.choice(choices)


def judgements(items: list[dict], seed: int = 0) -> list[pl.Example]:
    """(question, gold, candidate, verdict): even positions keep the gold answer, odd ones take another's."""
    rng = random.Random(seed)
    out = []
    for i, item in enumerate(items):
        if i % 2 == 0:
            candidate, verdict = variant(item["answer"], rng), "correct"
        else:
            others = [o["answer"] for o in items if normalize_text(o["answer"]) != normalize_text(item["answer"])]
            candidate, verdict = rng.choice(others), "incorrect"
        example = pl.Example(question=item["question"], gold_answer=item["answer"], predicted_answer=candidate)
        out.append(example.copy(verdict=verdict).with_inputs(*JUDGE_INPUTS))
    return out


def agrees(example: pl.Example, prediction: pl.Prediction, trace: object = None) -> bool:
    return example.verdict == prediction.verdict


def parse_failures(result: pl.EvaluationResult) -> int:
    return sum("ParseError" in detail for detail in result.error_details.values())


def row(program: str, measured_by: str, result: pl.EvaluationResult, cost: str = "-") -> list[str]:
    score = f"{result.score:.1f}% ({result.ci[0]:.1f}–{result.ci[1]:.1f})"
    return [program, measured_by, score, str(parse_failures(result)), cost]


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m")
    parser.add_argument("--limit", type=int, default=40, help="labelled judgements, split half train / half dev")
    parser.add_argument("--task-items", type=int, default=10, help="HotPotQA items for the task program (half dev)")
    parser.add_argument("--demos", type=int, default=4, help="bootstrapped demos for the judge")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.limit < 4 or args.task_items < 2:
        parser.error(f"--limit must be at least 4 and --task-items at least 2, got {args.limit} and {args.task_items}")
    console = Console(width=None if sys.stdout.isatty() else 110)

    items = hotpotqa_items()
    random.Random(0).shuffle(items)
    if args.limit + args.task_items > len(items):
        parser.error(f"--limit + --task-items must be at most {len(items)} (the HotPotQA sample)")
    labelled = judgements(items[: args.limit])
    half = args.limit // 2 // 2 * 2  # even, so both halves alternate correct / incorrect
    judge_train, judge_dev = labelled[:half], labelled[half:]
    task = [
        pl.Example(question=i["question"], answer=i["answer"], context=i["context"]).with_inputs("context", "question")
        for i in items[args.limit : args.limit + args.task_items]
    ]
    task_train, task_dev = task[: len(task) // 2], task[len(task) // 2 :]
    console.print(
        f"model {args.model} · judgements: {len(judge_train)} train / {len(judge_dev)} dev "
        f"({sum(ex.verdict == 'correct' for ex in judge_dev)} correct in dev) · task: "
        f"{len(task_train)} train / {len(task_dev)} dev HotPotQA items"
    )

    lm = pl.LM(args.model, cache=False)  # measure the model, not the cache
    results: dict[str, float] = {}
    table = Table(title="LM judge on constructed HotPotQA judgements")
    for column in ("program", "measured by", "score (95% CI)", "parse fail", "LM calls"):
        table.add_column(column)
    with pl.context(lm=lm, num_threads=args.threads):
        judge_eval = pl.Evaluate(devset=judge_dev, metric=agrees, display_progress=True)
        judge = Judge()
        before = judge_eval(judge)
        table.add_row(*row("judge, zero-shot", "agreement with labels", before))

        optimizer = pl.BootstrapFewShot(agrees, max_bootstrapped_demos=args.demos, max_labeled_demos=args.demos)
        compiled_judge = optimizer.compile(judge, trainset=judge_train)
        after = judge_eval(compiled_judge)
        cost = f"{compiled_judge.compile_report.lm_calls} to compile"
        name = f"judge, compiled ({len(compiled_judge.predict.demos)} demos)"
        table.add_row(*row(name, "agreement with labels", after, cost))

        program = pl.Predict(AnswerFromContext)
        task_eval = pl.Evaluate(devset=task_dev, metric=compiled_judge, display_progress=True)
        zero_shot = task_eval(program)
        table.add_row(*row("task, zero-shot", "compiled judge", zero_shot))
        task_optimizer = pl.BootstrapFewShot(compiled_judge, max_bootstrapped_demos=2, max_labeled_demos=2)
        compiled_task = task_optimizer.compile(program, trainset=task_train)
        tuned = task_eval(compiled_task)
        cost = f"{compiled_task.compile_report.lm_calls} to compile"
        table.add_row(*row("task, compiled by the judge", "compiled judge", tuned, cost))
    # The same answers by exact match, as a check on the judge (no new LM calls).
    answered = [(ex, pred, score) for ex, pred, score in tuned.results if pred is not None]
    exact = [bool(answer_exact_match(ex, pred)) for ex, pred, _ in answered]
    exact_score = 100 * sum(exact) / len(tuned.results)
    same = sum((score >= compiled_judge.threshold) == em for (_, _, score), em in zip(answered, exact, strict=True))
    table.add_row("task, compiled by the judge", "exact match", f"{exact_score:.1f}%", "-", "-")
    console.print(table)

    results.update(
        agreement_before=before.score,
        agreement_after=after.score,
        task_zero_shot=zero_shot.score,
        task_compiled=tuned.score,
        task_compiled_exact_match=exact_score,
    )
    lines = [
        f"agreement before compiling: {before.score:.1f}% (n={before.n}, chance 50%)",
        f"agreement after compiling: {after.score:.1f}% (n={after.n})",
        f"task program scored by the compiled judge: zero-shot {zero_shot.score:.1f}%, compiled {tuned.score:.1f}%",
        f"compiled task program by exact match: {exact_score:.1f}%; judge and exact match agree on "
        f"{same} of {len(answered)} answers",
    ]
    for line in lines:
        console.print(line, markup=False, highlight=False)
    return results


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    Console().print(f"total wall time {time.perf_counter() - started:.0f} s")
