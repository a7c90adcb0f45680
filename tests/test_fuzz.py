"""The bad-input fuzzer (dcsim/tools/fuzz.py), short run: hypothesis draws mutations of the
valid base scenarios; every case must end in exit 0 with every job accounted for, or exit 2
with a located message, in time. The long run (>= 1,000 cases) is `python -m dcsim.tools.fuzz`
(docs/bad-input.md has its last count)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcsim.tools import fuzz
from dcsim.tools.fuzz import BASES, BYTE_EDITS, Mutation, mutate, run_case

mutations = st.builds(
    Mutation,
    kind=st.sampled_from(["set"] * 6 + ["scale"] * 6 + ["drop", "unknown", *BYTE_EDITS]),
    path_index=st.integers(0, 999),
    value_index=st.integers(0, 999),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(sorted(BASES)), muts=st.lists(mutations, min_size=1, max_size=3))
def test_mutated_scenarios_fail_cleanly_or_run_completely(tmp_path, base, muts):
    outcome = run_case("case", mutate(BASES[base], muts), tmp_path, time_limit_s=30)
    assert not outcome.defect, f"{outcome.verdict}: {outcome.detail}\nmutations: {muts}"


@pytest.mark.parametrize("base", sorted(BASES))
def test_every_base_scenario_runs(tmp_path, base):
    outcome = run_case(base, BASES[base].encode(), tmp_path)
    assert outcome.verdict == "ok", outcome.detail


def test_the_fuzzer_sees_defects(tmp_path, monkeypatch):
    """The judge itself: a crash, an unlocated message and a lost job are defects."""
    import dcsim.cli

    data = BASES["philly"].encode()

    def crash(argv):
        raise RuntimeError("boom")

    monkeypatch.setattr(dcsim.cli, "main", crash)
    assert run_case("a", data, tmp_path).verdict == "traceback"

    def unlocated(argv):
        print("something went wrong", file=__import__("sys").stderr)
        return 2

    monkeypatch.setattr(dcsim.cli, "main", unlocated)
    assert run_case("b", data, tmp_path).verdict == "unlocated"
    monkeypatch.undo()
    assert run_case("c", data, tmp_path).verdict == "ok"
    monkeypatch.setattr(fuzz, "_listed_jobs", lambda data: 99)  # the scenario "listed" 99
    assert run_case("d", data, tmp_path).verdict == "lost"


def test_mutations_are_deterministic():
    first = [(n, d) for n, d, _ in fuzz.cases(20, seed=3)]
    assert first == [(n, d) for n, d, _ in fuzz.cases(20, seed=3)]
    assert len({d for _, d in first}) > 15


@pytest.mark.slow
def test_the_long_fuzz_run_finds_no_defect(capsys):
    """The long run (>= 1,000 cases; `pytest -m slow`, ~2-4 min): docs/bad-input.md records
    its counts."""
    assert fuzz.main(["--cases", "1000", "--seed", "0"]) == 0, capsys.readouterr().out
