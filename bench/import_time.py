"""`import llmrelay` against `import openai`, measured in one run (best of N fresh interpreters).

    python bench/import_time.py [--runs 7]

Target: llmrelay costs no more than openai + 100 ms, since it builds on openai's types. Both
are imported from bytecode, as installed packages are (llmrelay's modules are compiled first).
"""

from __future__ import annotations

import argparse
import compileall
import subprocess
import sys
import time
from pathlib import Path

CASES = {
    "python -c pass": "pass",
    "import openai": "import openai",
    "import llmrelay": "import llmrelay",
}


def best_of(code: str, runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "llmrelay", quiet=1)
    # interleave the cases so machine noise hits all of them alike
    times = {name: float("inf") for name in CASES}
    for _ in range(args.runs):
        for name, code in CASES.items():
            times[name] = min(times[name], best_of(code, 1))
    for name, seconds in times.items():
        print(f"{name:<18} {seconds * 1000:8.1f} ms")
    extra = (times["import llmrelay"] - times["import openai"]) * 1000
    ratio = times["import llmrelay"] / times["import openai"]
    verdict = "ok" if extra <= 100 else "OVER BUDGET"
    print(f"llmrelay - openai   {extra:+8.1f} ms  (ratio {ratio:.2f}x, budget +100 ms: {verdict})")


if __name__ == "__main__":
    main()
