"""Results I/O: `write_csv` writes the bytes pandas' `to_csv(index=False, float_format="%.9g")`
writes; `outputs.format: parquet` saves the tables as Parquet and `load_results` reads either."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dcsim
from dcsim import results as results_mod
from dcsim.cli import main
from dcsim.errors import ScenarioError
from dcsim.results import FILES, load_results, write_csv
from tests.conftest import REPO, small_job, small_scenario

EDGE_FLOATS = [0.0, -0.0, 1e-300, -1e-300, 1e300, -1e300, 123456789.0, 999999999.0, 1e9,
               -1e9, 999999999.5, 1234567890.0, 0.1, 1 / 3, 2.5, -2.5, 5e-324, 1e-5, 1e-4,
               1.7976931348623157e308, 0.0001234, 12345678.9, 2.0**53, 2.0**63, -(2.0**63),
               100.0, 1e16, math.nan, math.inf, -math.inf]
EDGE_INTS = [0, 1, -1, 2**31, -(2**31), 2**62, 2**63 - 1, -(2**63), 123456789, -987654321]
EDGE_TEXT = ["", "plain", "a,b", 'say "hi"', "two\nlines", "cr\rhere", "both\r\n", " lead",
             "trail ", "tab\there", "é ü 中", "x\x00y", '"', ",", "1.5", "nan", "None", "True"]


def pandas_bytes(frame: pd.DataFrame, path: Path) -> bytes:
    frame.to_csv(path, index=False, float_format="%.9g")
    return path.read_bytes()


def fast_bytes(frame: pd.DataFrame, path: Path, *, fast_only: bool = True) -> bytes:
    """write_csv's bytes; with fast_only, the fast path must take the frame (no pandas)."""
    if fast_only:
        results_mod._write_csv_fast(frame, path)
    else:
        write_csv(frame, path)
    return path.read_bytes()


def same_bytes(frame: pd.DataFrame, tmp: Path, *, fast_only: bool = True) -> None:
    expected = pandas_bytes(frame, tmp / "pandas.csv")
    got = fast_bytes(frame, tmp / "fast.csv", fast_only=fast_only)
    assert got == expected, (got[:400], expected[:400])


texts = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cs",)),
                                   st.sampled_from(list(',"\r\n '))), max_size=8)
floats = st.one_of(st.floats(), st.sampled_from(EDGE_FLOATS),
                   st.integers(-(10**10), 10**10).map(float))
ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(EDGE_INTS))


@st.composite
def columns(draw, n: int):
    kind = draw(st.sampled_from(["float", "float32", "int", "int32", "uint", "bool", "str",
                                 "object", "category", "repeat"]))
    if kind in ("float", "float32"):
        values = np.array(draw(st.lists(floats, min_size=n, max_size=n)), dtype=float)
        if kind == "float32":
            with np.errstate(over="ignore"):
                values = values.astype(np.float32)
        return values
    if kind == "int":
        return np.array(draw(st.lists(ints, min_size=n, max_size=n)), dtype=np.int64)
    if kind == "int32":
        return np.array(draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n)),
                        dtype=np.int32)
    if kind == "uint":
        return np.array(draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n)),
                        dtype=np.uint64)
    if kind == "bool":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "repeat":  # few distinct values: each formatted once (_distinct)
        pool = draw(st.lists(floats, min_size=1, max_size=4))
        return np.array([pool[i % len(pool)] for i in range(n)], dtype=float)
    text = st.one_of(texts, st.sampled_from(EDGE_TEXT))
    values = draw(st.lists(st.one_of(text, st.none(), st.just(math.nan)), min_size=n,
                           max_size=n))
    if kind == "str":  # pandas' inferred text column (str in pandas 3, object before) or "string"
        return pd.Series(values, dtype=draw(st.sampled_from([None, "string"])))
    if kind == "category":  # as requests.csv's service, status and reason
        return pd.Series(values, dtype="category")
    return pd.Series(values, dtype=object)


@st.composite
def frames(draw):
    n = draw(st.sampled_from([0, 1, 2, 5, 17, 70, 130]))
    width = draw(st.integers(1, 5))
    names = draw(st.lists(st.sampled_from(["a", "b", "time_s", "x,y", 'q"t', "", "é"]),
                          min_size=width, max_size=width))
    data = [pd.Series(draw(columns(n))) for _ in range(width)]
    frame = pd.concat(data, axis=1, ignore_index=True) if data else pd.DataFrame()
    frame.columns = names
    return frame


@settings(max_examples=100, deadline=None)
@given(frame=frames())
def test_fast_csv_equals_pandas_on_random_frames(tmp_path_factory, frame):
    same_bytes(frame, tmp_path_factory.mktemp("csv"))


def test_edge_values_in_one_frame_and_in_chunks(tmp_path, monkeypatch):
    n = 300
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({
        "f": [EDGE_FLOATS[i % len(EDGE_FLOATS)] for i in range(n)],  # repeats: deduplicated
        "g": rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n),  # all distinct
        "i": [EDGE_INTS[i % len(EDGE_INTS)] for i in range(n)],
        "b": rng.random(n) < 0.5,
        "s": [EDGE_TEXT[i % len(EDGE_TEXT)] if i > n // 2 else f"job-{i}" for i in range(n)],
        "o": pd.Series([None if i % 7 == 0 else f"v{i % 5}" for i in range(n)], dtype=object),
        "c": pd.Categorical([None if i % 5 == 0 else EDGE_TEXT[i % 4] for i in range(n)]),
    })
    same_bytes(frame, tmp_path)
    # small chunks: the plain rows joined directly, the later ones (quoted text) through csv
    monkeypatch.setattr(results_mod, "_CHUNK_CELLS", 50)
    same_bytes(frame, tmp_path)
    same_bytes(frame[["s"]], tmp_path)  # one column: an empty row is written ""
    same_bytes(frame[["f"]], tmp_path)
    same_bytes(frame.iloc[::-3], tmp_path)  # a non-contiguous slice


def test_random_bit_patterns_format_as_pandas(tmp_path):
    rng = np.random.default_rng(7)
    bits = rng.integers(0, 2**64, 20_000, dtype=np.uint64)
    values = bits.view(np.float64)  # every exponent, subnormals, NaN payloads, inf
    whole = np.concatenate([np.arange(-1000, 1000), rng.integers(-10**9, 10**9, 2000),
                            [999_999_999, 1_000_000_000, -999_999_999, 2**53, 2**53 + 1]])
    frame = pd.DataFrame({"x": values, "w": np.resize(whole.astype(float), len(values)),
                          "h": np.resize(whole.astype(float) + 0.5, len(values))})
    same_bytes(frame, tmp_path)


def test_other_columns_go_to_pandas(tmp_path):
    n = 5
    odd = {
        "mixed": pd.DataFrame({"m": pd.Series([1, "a", 2.5, None, True], dtype=object)}),
        "nullable": pd.DataFrame({"i": pd.array([1, None, 3, 4, 5], dtype="Int64")}),
        "int categories": pd.DataFrame({"c": pd.Categorical([1, 2, 1, None, 2])}),
        "dates": pd.DataFrame({"d": pd.date_range("2026-01-01", periods=n)}),
        "int labels": pd.DataFrame({0: range(n), 1: np.linspace(0, 1, n)}),
        "no columns": pd.DataFrame(),
        "no columns, rows": pd.DataFrame(index=range(3)),
        "empty with columns": pd.DataFrame(columns=["a", "b,c"]),
        "np.str_": pd.DataFrame({"s": pd.Series([np.str_("a"), "b", None, "c", "d"],
                                                dtype=object)}),
    }
    for name, frame in odd.items():
        expected = pandas_bytes(frame, tmp_path / "pandas.csv")
        assert fast_bytes(frame, tmp_path / "fast.csv", fast_only=False) == expected, name


@pytest.fixture(scope="module")
def quickstart_dirs(tmp_path_factory):
    """The quickstart run through the CLI twice: CSV tables and Parquet tables."""
    base = tmp_path_factory.mktemp("qs")
    scenario = str(REPO / "scenarios/quickstart.yaml")
    csv_dir, parquet_dir = base / "csv", base / "parquet"
    assert main(["run", scenario, "--quiet", "--no-plots", "--out", str(csv_dir)]) == 0
    assert main(["run", scenario, "--quiet", "--no-plots", "--out", str(parquet_dir),
                 "--set", "outputs.format=parquet"]) == 0
    return csv_dir, parquet_dir


@pytest.mark.parametrize("name", ["quickstart", "contention"])
def test_saved_tables_equal_pandas_rewrite(tmp_path, repo, name):
    res = dcsim.simulate(dcsim.load_scenario(repo / f"scenarios/{name}.yaml"))
    out = res.save(tmp_path / "out")
    written = sorted(p.name for p in out.glob("*.csv"))
    assert "jobs.csv" in written and "links.csv" in written
    for attr, file in FILES.items():
        if not (out / file).exists():
            continue
        expected = pandas_bytes(getattr(res, attr), tmp_path / "pandas.csv")
        assert (out / file).read_bytes() == expected, file


def test_parquet_run_reads_back_as_the_csv_run(quickstart_dirs):
    csv_dir, parquet_dir = quickstart_dirs
    assert not list(parquet_dir.glob("*.csv")) and (parquet_dir / "jobs.parquet").is_file()
    assert {p.stem for p in parquet_dir.glob("*.parquet")} == {
        p.stem for p in csv_dir.glob("*.csv")}
    for name in ("summary.json", "run.json"):
        assert (parquet_dir / name).is_file()
    from_csv, from_parquet = load_results(csv_dir), load_results(parquet_dir)
    for attr in FILES:
        pd.testing.assert_frame_equal(getattr(from_parquet, attr), getattr(from_csv, attr),
                                      check_dtype=False, rtol=1e-8)
    assert from_parquet.run["scenario"]["outputs"]["format"] == "parquet"
    assert from_csv.run["scenario"]["outputs"]["format"] == "csv"
    assert from_parquet.summary().keys() == from_csv.summary().keys()


def test_parquet_round_trip_is_exact(tmp_path):
    res = dcsim.simulate(dcsim.scenario_from_dict(small_scenario([small_job(iterations=20)])))
    back = load_results(res.save(tmp_path / "p", format="parquet"))
    for attr in FILES:
        pd.testing.assert_frame_equal(getattr(back, attr), getattr(res, attr))
    # saving the other format into the same folder replaces the tables, never mixes them
    res.save(tmp_path / "p")
    assert not list((tmp_path / "p").glob("*.parquet"))
    pd.testing.assert_frame_equal(load_results(tmp_path / "p").jobs, res.jobs,
                                  check_dtype=False, rtol=1e-8)
    # a missing value in a text column reads back as "" from either format, categories too
    res.requests = pd.DataFrame({"service": pd.Categorical(["chat", None]),
                                 "status": ["served", None], "e2e_s": [1.5, math.nan]})
    for fmt in ("parquet", "csv"):
        back = load_results(res.save(tmp_path / fmt, format=fmt))
        assert list(back.requests["service"]) == ["chat", ""], fmt
        assert list(back.requests["status"]) == ["served", ""], fmt
    with pytest.raises(ValueError, match="format must be one of csv, parquet"):
        res.save(tmp_path / "x", format="xlsx")  # type: ignore[arg-type]


def test_bad_format_is_a_located_schema_error(write_yaml):
    path = write_yaml(small_scenario(outputs={"format": "xlsx"}))
    with pytest.raises(ScenarioError) as info:
        dcsim.load_scenario(path)
    (msg,) = [str(p) for p in info.value.problems]
    assert msg.startswith(f"{path}:") and "outputs.format: Input should be 'csv' or 'parquet'" \
        in msg


def test_load_results_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)) as info:
        load_results(tmp_path)
    assert "jobs.csv" in str(info.value) and ".parquet" in str(info.value)


@pytest.mark.parametrize(("fmt", "content", "message"), [
    ("parquet", b"garbage", "jobs.parquet: not a readable parquet table"),
    ("csv", b"\xff\xfe,\x00", "jobs.csv:1: not UTF-8 text: byte 0xff at byte offset 0"),
    ("csv", b'job_id,name\n1,"unclosed\n', "jobs.csv: not a readable csv table"),
])
def test_a_damaged_table_is_a_located_error(quickstart_dirs, tmp_path, fmt, content, message):
    import shutil

    csv_dir, parquet_dir = quickstart_dirs
    folder = tmp_path / "damaged"
    shutil.copytree(parquet_dir if fmt == "parquet" else csv_dir, folder)
    (folder / f"jobs.{fmt}").write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_results(folder)
    assert str(folder / message.split(":")[0]) in str(info.value)
    assert message.split(":", 1)[1].strip() in str(info.value)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("summary.json", b"\xff{}", "summary.json:1: not UTF-8 text"),
    ("run.json", b'{"a": 1,\n', "run.json:2: not JSON"),
    ("summary.json", b"[1, 2]", "summary.json: not a JSON object: list"),
])
def test_a_damaged_json_file_is_a_located_error(quickstart_dirs, tmp_path, name, content,
                                                message):
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(quickstart_dirs[0], folder)
    (folder / name).write_bytes(content)
    with pytest.raises(ScenarioError) as info:
        load_results(folder)
    assert f"{folder}/{message}" in str(info.value)


def test_sweep_points_save_in_the_scenario_format(tmp_path, write_yaml):
    from dcsim.sweep.runner import Task, run_point

    path = write_yaml(small_scenario([small_job(iterations=5)]))
    record = run_point(Task("p0", str(path), ("outputs.format=parquet",), 1, str(tmp_path)))
    assert record["error"] is None
    assert (tmp_path / "p0/jobs.parquet").is_file() and not (tmp_path / "p0/jobs.csv").exists()
