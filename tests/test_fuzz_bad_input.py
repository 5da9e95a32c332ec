"""Hostile det_20 files: a clean error or a counted problem, never a traceback, never a silent change.

The mutations and the oracle are in tests/fuzzing.py; benchmarks/fuzz_bad_input.py
runs the same over a few hundred files and prints the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from fuzzing import KINDS, Fuzzer, Mutation


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Fuzzer:
    return Fuzzer(tmp_path_factory.mktemp("fuzz"))


def _assert_clean(outcomes: dict[str, tuple[str, str]], m: Mutation) -> None:
    for path, (outcome, detail) in outcomes.items():
        assert outcome in ("error", "counted", "unchanged"), f"{path} {m}: {outcome}: {detail}"


@pytest.mark.parametrize("target", ["gt", "pred"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_mutation_kind(fuzzer: Fuzzer, kind: str, target: str) -> None:
    m = Mutation(target, kind, frame=3, label=1, pick=0)
    _assert_clean(fuzzer.run(m), m)


@seed(14)
@settings(max_examples=60, deadline=None, derandomize=False, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["gt", "pred"]), kind=st.sampled_from(KINDS),
       frame=st.integers(0, 99), label=st.integers(0, 99), pick=st.integers(0, 99))
def test_random_mutations(fuzzer: Fuzzer, target: str, kind: str, frame: int, label: int, pick: int) -> None:
    m = Mutation(target, kind, frame, label, pick)
    _assert_clean(fuzzer.run(m), m)


def test_the_oracle_catches_a_silent_change(fuzzer: Fuzzer, tmp_path: Path) -> None:
    """The oracle itself can fail: a moved box, counted by nothing, is reported as silent."""
    from fuzzing import LABEL_KINDS, SAME_KINDS, judge, score_numbers

    assert SAME_KINDS <= set(LABEL_KINDS)
    moved = [dict(f, labels=[dict(lb, box2d={**lb["box2d"], "x1": lb["box2d"]["x1"] + 3})
                             for lb in f["labels"]]) for f in fuzzer.gt]
    path = tmp_path / "moved.json"
    import json

    path.write_text(json.dumps(moved))
    outcome, _ = judge(lambda: score_numbers(path, fuzzer.pred_path), fuzzer.score_base, same=False, file=path)
    assert outcome == "silent"
