"""Run the benchmarks: every benchmarks/bench_*.py in turn, or those named.

Prints the environment once, then each benchmark's tables (dezero vs PyTorch CPU, medians,
IQRs and ratios). Every benchmark times each side in its own worker process, the sides'
rounds alternating (benchmarks/common.py). A benchmark that fails is reported and the
others still run; the exit status is 1 if any failed.

    python benchmarks/run.py                    # all of them
    python benchmarks/run.py overhead cnn       # bench_overhead.py and bench_cnn.py
    python benchmarks/run.py --quick            # tiny sizes: a smoke run, not a measurement
    python benchmarks/run.py overhead --profile # plus cProfile's top functions
    python benchmarks/run.py --json results.json # also write every table as JSON
    python benchmarks/run.py --ab ../old-checkout # this tree's dezero vs another's, A/B
    python benchmarks/run.py --threads 1        # 1 BLAS/OpenMP thread in every worker

The JSON file (environment, mode, date, and per benchmark its tables or its failure) is what
the documentation's Benchmarks page is generated from (docs/benchmarks/results.json).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import add_arguments, apply_arguments, environment, print_environment  # noqa: E402


def available() -> list[str]:
    """Names of the benchmarks (``bench_<name>.py`` -> ``name``), sorted."""
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def _normalise(name: str) -> str:
    name = Path(name).name
    if name.endswith(".py"):
        name = name[:-3]
    if name.startswith("bench_"):
        name = name[len("bench_"):]
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*",
                        help="benchmarks to run (overhead, bench_overhead or bench_overhead.py)")
    add_arguments(parser)
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the results (environment and every table) as JSON")
    args = parser.parse_args(argv)

    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    if args.names:
        wanted = [_normalise(n) for n in args.names]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(names)})")
        names = wanted

    try:
        apply_arguments(args)
    except ValueError as e:
        parser.error(str(e))
    print_environment()
    print(f"# mode       {'quick (smoke run, not a measurement)' if args.quick else 'full'}")
    print()
    failed = []
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if args.quick else "full",
        "ab": args.ab,
        "command": " ".join(["python benchmarks/run.py", *(argv if argv is not None
                                                            else sys.argv[1:])]),
        "environment": environment(),
        "benchmarks": {},
    }
    for name in names:
        print(f"## bench_{name}")
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench_{name}")
            if args.ab and not getattr(module, "SUPPORTS_AB", True):
                print(f"## bench_{name} skipped: it has no A/B mode\n", flush=True)
                results["benchmarks"][name] = {"skipped": "no A/B mode"}
                continue
            tables = module.run(quick=args.quick, profile=args.profile)
        except Exception:
            traceback.print_exc()
            print(f"## bench_{name} FAILED\n", flush=True)
            failed.append(name)
            results["benchmarks"][name] = {"failed": traceback.format_exc().splitlines()[-1]}
            continue
        for table in tables:
            table.print()
        seconds = time.perf_counter() - t0
        results["benchmarks"][name] = {"seconds": round(seconds, 1),
                                       "tables": [t.to_dict() for t in tables]}
        print(f"## bench_{name} took {seconds:.1f} s\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"# results written to {args.json}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
