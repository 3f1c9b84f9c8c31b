"""Tables and the plot from bench/results/: the accuracy suite (accuracy.jsonl) and compare.py's figures (compare.json).

python bench/report.py   # prints markdown tables, writes docs/benchmarks.png
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PLOT = HERE.parent / "docs" / "benchmarks.png"


SHORT = {"boolean_expressions": "bool. expr.", "sports_understanding": "sports"}  # task names that fit a tick


def label(row: dict) -> str:
    if row["framework"] == "dspy":
        return "DSPy 3.4.1, server"
    return f"promptless, {row['backend']}"


def accuracy_rows() -> list[dict]:
    path = RESULTS / "accuracy.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def print_tables(rows: list[dict]) -> None:
    print("| task | model | side | zero-shot acc | parse failures | compiled acc | parse failures | demos |"
          " compile LM calls | eval LM calls (zero-shot + compiled) | wall s (all) | peak RSS MB |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: (r["task"], r["model"].removeprefix("local/")[:4], label(r))):
        z, c = r["zero_shot"], r["compiled"]
        wall = z["seconds"] + c["compile_seconds"] + c["eval_seconds"]
        calls = f"{z['lm_calls']} + {c['eval_lm_calls']}"
        if c["error"]:
            compiled = f"compile failed ({c['error'].split(':')[0]}) | – | – "
        else:
            compiled = f"{c['accuracy']}% | {c['parse_failures']}/{r['n_test']} | {c['demos']} "
        print(f"| {r['task']} | {r['model']} | {label(r)} | {z['accuracy']}% | {z['parse_failures']}/{r['n_test']} | "
              f"{compiled}| {c['compile_lm_calls']} | {calls} | {wall} | {r['peak_rss_mb']} |")  # fmt: skip


def plot(rows: list[dict], compare: dict) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    names = [n for n in compare if "peak RSS" not in n]
    ours = [compare[n]["promptless"] for n in names]
    theirs = [compare[n]["dspy"] for n in names]
    ax = axes[0]
    ax.set_title("framework cost (log scale, lower is better)")
    ys = range(len(names))
    ax.barh([y + 0.2 for y in ys], ours, height=0.4, label="promptless")
    ax.barh([y - 0.2 for y in ys], theirs, height=0.4, label="DSPy 3.4.1")
    ax.set_yticks(list(ys), [n.replace("overhead per call, ", "per call, ") for n in names], fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    groups = sorted({(r["task"], r["model"].removeprefix("local/").split("-")[0]) for r in rows})
    sides = ["promptless, server", "DSPy 3.4.1, server", "promptless, embedded"]
    for ax, (key, title) in zip(axes[1:], [("zero_shot", "zero-shot"), ("compiled", "BootstrapFewShot")], strict=True):
        ax.set_title(f"{title} accuracy % (hatched: parse failures %)")
        width = 0.8 / len(sides)
        for s, side in enumerate(sides):
            accs, fails = [], []
            for task, model in groups:
                match = [r for r in rows if r["task"] == task and label(r) == side
                         and r["model"].removeprefix("local/").startswith(model)]  # fmt: skip
                row = match[0] if match else None
                accs.append((row[key]["accuracy"] or 0) if row else 0)
                fails.append(100 * (row[key]["parse_failures"] or 0) / row["n_test"] if row else 0)
            xs = [g + s * width for g in range(len(groups))]
            ax.bar(xs, accs, width=width, label=side)
            ax.bar(xs, fails, width=width, fill=False, hatch="//", edgecolor="black", linewidth=0)
            for x, (task, model) in zip(xs, groups, strict=True):
                failed = [r for r in rows if r["task"] == task and label(r) == side and r[key].get("error")
                          and r["model"].removeprefix("local/").startswith(model)]  # fmt: skip
                if failed:
                    ax.text(x, 2, "compile failed", rotation=90, ha="center", va="bottom", fontsize=7)
        ax.set_xticks(
            [g + 0.4 - width / 2 for g in range(len(groups))],
            [f"{SHORT.get(t, t)}\n{m}" for t, m in groups],
            fontsize=8,
        )
        ax.set_ylim(0, 100)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    print(f"\nwrote {PLOT}")


def main() -> None:
    rows = accuracy_rows()
    print_tables(rows)
    compare_path = RESULTS / "compare.json"
    compare = json.loads(compare_path.read_text()) if compare_path.is_file() else {}
    plot(rows, compare)


if __name__ == "__main__":
    main()
