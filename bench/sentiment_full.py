"""The full `make demo` run: examples/sentiment.py on all 872 SST-2 dev sentences (about 5 minutes on 2 cores).

    python bench/sentiment_full.py [extra examples/sentiment.py options]

`make demo` scores 150 held-out dev sentences to stay under two minutes; this is the same
program, compile and reload on the whole dev set (the figures in docs/benchmarks.md).
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    example = Path(__file__).resolve().parents[1] / "examples" / "sentiment.py"
    sys.argv = [str(example), "--dev", "0", *sys.argv[1:]]
    runpy.run_path(str(example), run_name="__main__")
