"""Seeded fuzz run: mutated det_20 files fed to collect, to score as GT and to score as predictions.

Prints, per engine path, how many runs ended in a clean error, were accepted with
the problem counted, were accepted unchanged, changed a number silently, or raised
a traceback (see tests/fuzzing.py for the mutations and the oracle). The promise:
tracebacks = 0 and silent = 0.

    PYTHONPATH=src python benchmarks/fuzz_bad_input.py --files 300 --seed 14
    PYTHONPATH=src python benchmarks/fuzz_bad_input.py --files 300 --stage   # + the whole collect stage

``--stage`` also runs the whole ``collect`` stage (run folder, parquet, charts; no
FiftyOne) on every mutated ground truth, and checks a failed one leaves no folder.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _results import record  # noqa: E402

from fuzzing import KINDS, OUTCOMES, CollectStage, Fuzzer, Mutation, mutate  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="mutated files to generate")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--show", type=int, default=5, help="failures to print")
    parser.add_argument("--stage", action="store_true", help="also run the whole collect stage per GT file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    paths = ("collect", "score-GT", "score-PRED") + (("collect-stage",) if args.stage else ())
    table: dict[str, Counter[str]] = {p: Counter() for p in paths}
    failures = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        fuzzer = Fuzzer(Path(tmp))
        stage = CollectStage(Path(tmp) / "stage", fuzzer.gt) if args.stage else None
        for _ in range(args.files):
            m = Mutation(target=rng.choice(("gt", "pred")), kind=rng.choice(KINDS),
                         frame=rng.randrange(100), label=rng.randrange(100), pick=rng.randrange(100))
            outcomes = fuzzer.run(m)
            if stage is not None and "collect" in outcomes:
                outcomes["collect-stage"] = stage.run(mutate(fuzzer.gt, fuzzer.pred, m)[0], m)
            for path, (outcome, detail) in outcomes.items():
                table[path][outcome] += 1
                if outcome in ("silent", "traceback"):
                    failures.append((path, m, outcome, detail))
    total = Counter()
    print(f"{args.files} mutated files (seed {args.seed}), {time.perf_counter() - start:.1f} s")
    print(f"{'path':<13} {'runs':>5} " + " ".join(f"{o:>9}" for o in OUTCOMES))
    for path, counts in table.items():
        total.update(counts)
        print(f"{path:<13} {sum(counts.values()):>5} " + " ".join(f"{counts[o]:>9}" for o in OUTCOMES))
    print(f"{'all':<13} {sum(total.values()):>5} " + " ".join(f"{total[o]:>9}" for o in OUTCOMES))
    for path, m, outcome, detail in failures[: args.show]:
        print(f"  {outcome}: {path} {m}: {detail}")
    runs = sum(total.values())
    record("fuzz_bad_input: runs that kept the bad-input promise / runs", (runs - len(failures)) / max(runs, 1), 1.0,
           note=f"{runs} runs on {args.files} mutated files: {total['traceback']} tracebacks, {total['silent']} silent")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
