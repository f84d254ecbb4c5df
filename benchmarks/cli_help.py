"""Wall time of `repro --help` (the command tree alone: no command module) next to `repro train --help` and
`repro reproduce --help` (their repro/commands/ module, which leaves torch to the run functions), measured in one
run on this machine.

    python benchmarks/cli_help.py [--repeats 3]
"""

import argparse
import subprocess
import sys
import time

from tabulate import tabulate


def seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "repro.cli", *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each command; the fastest counts")
    args = parser.parse_args()
    cases = {"repro --help": ["--help"], "repro train --help": ["train", "--help"],
             "repro reproduce --help": ["reproduce", "--help"]}
    best = {name: min(seconds(argv) for _ in range(args.repeats)) for name, argv in cases.items()}
    base = best["repro train --help"]
    print(tabulate([[name, f"{s:.2f}", f"{s / base:.2f}"] for name, s in best.items()],
                   headers=["command", "seconds (best of %d)" % args.repeats, "vs train --help"]))


if __name__ == "__main__":
    main()
