"""How long ``loadlab report`` takes on a large results directory, and how big the page is.

    python benchmarks/bench_report.py --runs 100 [--rounds 3]

Writes a synthetic results directory shaped like the runner's (every run with its samples
and Locust report), then times the real command in a fresh process, as a user runs it.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _synthetic_results as synthetic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        synthetic.write(directory, args.runs)
        seconds = []
        for _ in range(args.rounds):
            began = time.perf_counter()
            subprocess.run([sys.executable, "-m", "loadlab", "report", str(directory)],
                           check=True, capture_output=True)
            seconds.append(time.perf_counter() - began)
        size = (directory / "report.html").stat().st_size
    print(f"{args.runs} runs: loadlab report median {statistics.median(seconds):.2f} s "
          f"(rounds {', '.join(f'{s:.2f}' for s in seconds)}), report.html {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
