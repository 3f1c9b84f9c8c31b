"""Multi-hop question answering on HotPotQA, Baleen-style: search, read, search again, answer.

Each hop writes a search query from the question and what was found so far,
retrieves passages from a BM25 index over HotPotQA's Wikipedia paragraphs, and
adds them to the context; a last step answers from the context. Zero-shot vs
BootstrapFewShot, which needs labels only on the final answer: a run whose
answer is right gives every step (both query writers and the answerer) a demo.
Reports answer exact match, token F1, and the recall of the gold supporting
paragraphs among those retrieved. The index is built once and cached on disk.

    python examples/multihop.py [--train 10 --test 20] [--model local/smollm2-135m]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _data import DATA, hotpotqa, hotpotqa_corpus
from rich.console import Console
from rich.table import Table

import promptless as pl
from promptless.evaluate.metrics import answer_exact_match, answer_f1
from promptless.lm.cache import default_directory
from promptless.modules.retrieve import Retrieve
from promptless.retrieve import BM25Retriever, RetrievalError


class GenerateQuery(pl.Signature):
    """Write a short search query (a few keywords) for the facts still missing to answer the question."""

    context: list[str] = pl.InputField(desc="passages found so far; may be empty")
    question: str = pl.InputField()
    query: str = pl.OutputField()


class GenerateAnswer(pl.Signature):
    """Answer the question from the passages with a short phrase, usually a name, a date or yes/no."""

    context: list[str] = pl.InputField()
    question: str = pl.InputField()
    answer: str = pl.OutputField()


class MultiHop(pl.Module):
    """``with_question``: each hop searches with its query and the question, merged (helps tiny models)."""

    def __init__(self, passages_per_hop: int = 2, hops: int = 2, cot: bool = False, with_question: bool = False):
        self.generate_query = [pl.Predict(GenerateQuery) for _ in range(hops)]
        self.retrieve = Retrieve(k=passages_per_hop)
        self.generate_answer = pl.ChainOfThought(GenerateAnswer) if cot else pl.Predict(GenerateAnswer)
        self.with_question = with_question

    def forward(self, question: str) -> pl.Prediction:
        context: list[str] = []
        titles: list[str] = []
        for hop in self.generate_query:
            query = hop(context=context, question=question).query
            found = self.retrieve([query, question] if self.with_question else query or question)
            new = [p for p in found.retrieved if str(p) not in context]
            # new lists, never appended to: the trace keeps the context each step was given, for its demo
            context = context + [str(p) for p in new]
            titles = titles + [p.title for p in new]
        answer = self.generate_answer(context=context, question=question).answer
        return pl.Prediction(answer=answer, context=context, titles=titles)


def recall(example: pl.Example, titles: list[str]) -> float:
    """The share of the gold supporting paragraphs that were retrieved."""
    return len(set(example.gold_titles) & set(titles)) / len(example.gold_titles)


def hotpotqa_index(console: Console) -> BM25Retriever:
    """The BM25 index over the paragraph corpus, loaded from the cache or built and saved there once."""
    corpus_file = DATA / "hotpotqa" / "wiki_paragraphs_corpus.json"
    digest = hashlib.sha256(corpus_file.read_bytes()).hexdigest()[:12]
    path = default_directory() / "indexes" / f"hotpotqa-bm25-{digest}"
    started = time.perf_counter()
    try:
        index, how = BM25Retriever.load(path), "loaded from"
    except RetrievalError:
        index, how = BM25Retriever(hotpotqa_corpus()), "built and saved to"
        index.save(path)
    console.print(f"BM25 index over {len(index)} paragraphs {how} {path} in {time.perf_counter() - started:.2f} s")
    return index


def scores(result: pl.EvaluationResult) -> tuple[float, float, float]:
    """EM, F1 and retrieval recall in percent, from one evaluation's predictions (a failed example scores 0)."""
    em = f1 = rec = 0.0
    for example, prediction, _ in result.results:
        if prediction is not None:
            em += float(answer_exact_match(example, prediction))
            f1 += answer_f1(example, prediction)
            rec += recall(example, prediction.titles)
    n = max(1, result.n)
    return 100 * em / n, 100 * f1 / n, 100 * rec / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="local/gemma-3-270m", help="or local/smollm2-135m")
    parser.add_argument("--train", type=int, default=10)
    parser.add_argument("--test", type=int, default=20)
    parser.add_argument("--k", type=int, default=2, help="passages per hop")
    parser.add_argument("--demos", type=int, default=2, help="max bootstrapped demos per step")
    parser.add_argument("--rounds", type=int, default=1, help="bootstrap rounds (later ones resample)")
    parser.add_argument("--metric", choices=["em", "f1"], default="em", help="what a trace must pass: EM, or F1 >= 0.5")
    parser.add_argument("--cot", action="store_true", help="reason before answering (ChainOfThought)")
    parser.add_argument("--with-question", action="store_true", help="search with each query and the question")
    parser.add_argument("--no-cache", action="store_true", help="do not reuse or store LM replies")
    args = parser.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 110)

    examples = hotpotqa()
    trainset, testset = examples[: args.train], examples[args.train : args.train + args.test]
    index = hotpotqa_index(console)
    pl.configure(lm=pl.LM(args.model, cache=not args.no_cache), rm=index, num_threads=2)
    console.print(f"HotPotQA: train {len(trainset)}, test {len(testset)}; {args.k} passages per hop, 2 hops")

    baseline = sum(recall(ex, [p.title for p in index(ex.question, k=2 * args.k)]) for ex in testset)
    evaluate = pl.Evaluate(devset=testset, metric=answer_exact_match, display_progress=True)

    program = MultiHop(passages_per_hop=args.k, cot=args.cot, with_question=args.with_question)
    zero_shot = evaluate(program)
    metric, threshold = (answer_exact_match, None) if args.metric == "em" else (answer_f1, 0.5)
    optimizer = pl.BootstrapFewShot(
        metric, metric_threshold=threshold, max_bootstrapped_demos=args.demos, max_labeled_demos=0,
        max_rounds=args.rounds,
    )  # fmt: skip
    compiled = optimizer.compile(program, trainset=trainset)
    after = evaluate(compiled)

    table = Table(title=f"HotPotQA multi-hop on {args.model} (test n={len(testset)})")
    for column in ("program", "EM %", "F1 %", "recall %", "LM calls", "cache hits", "wall s", "errors"):
        table.add_column(column, justify="left" if column == "program" else "right")
    table.add_row("question as the only query (no LM)", "", "", f"{100 * baseline / len(testset):.1f}",
                  "0", "", "", "")  # fmt: skip
    for name, result in (("zero-shot", zero_shot), ("BootstrapFewShot", after)):
        em, f1, rec = scores(result)
        usage = result.usage
        table.add_row(name, f"{em:.1f}", f"{f1:.1f}", f"{rec:.1f}", str(usage.total.calls), str(usage.cache_hits),
                      f"{result.wall_time_s:.1f}", str(result.errors))  # fmt: skip
    console.print(table)
    console.print(compiled.compile_report.summary(), markup=False)
    for error in list(after.error_details.values())[:3]:
        console.print(f"error: {error[:300]}", markup=False)
    for name, predictor in compiled.named_predictors():
        console.rule(f"demos of {name!r}")
        for demo in predictor.demos:
            shown = {key: value for key, value in demo.toDict().items() if key != "context"}
            console.print(shown, f"(+ {len(demo.get('context', []))} passages)", markup=False)


if __name__ == "__main__":
    main()
