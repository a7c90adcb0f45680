"""docs/policies.md quotes benchmarks/compare_policies.py: re-run four of its rows and check the
doc's mean JCTs still match what the code predicts (regenerate the doc when they move)."""

from __future__ import annotations

import re

import pytest

from benchmarks.compare_policies import STUDIES, run_variant
from tests.conftest import REPO


def _doc_mean_jct_h(study: str, variant: str) -> float:
    text = (REPO / "docs/policies.md").read_text()
    section = text.split(f"`{STUDIES[study][0]}`", 1)[1]
    row = re.search(rf"^\| {re.escape(variant)} \| ([^|]+) \| ([^|]+) \|", section, re.M)
    assert row, f"no row {variant} for {study} in docs/policies.md"
    return float(row.group(2))


@pytest.mark.parametrize(("study", "variant"), [("gavel-schedulers", "fifo"),
                                                 ("gavel-schedulers", "srtf"),
                                                 ("placement", "packed"),
                                                 ("placement", "topology-aware")])
def test_docs_quote_the_comparison(study, variant):
    scenario, common, variants = STUDIES[study]
    row = run_variant(scenario, common + variants[variant])
    assert round(row["jct_mean_s"] / 3600, 2) == _doc_mean_jct_h(study, variant)
