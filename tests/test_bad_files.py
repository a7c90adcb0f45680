"""Bad input files (issue 14): every file dcsim reads gives a located error for bytes that are
not UTF-8 text, for YAML that would blow up or recurse, for repeated keys and columns, and for
paths that are not regular files; a UTF-8 byte-order mark is accepted."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import dcsim
from dcsim.errors import ScenarioError
from dcsim.workload.formats import FORMATS
from dcsim.yamlsrc import MAX_YAML_DEPTH, load_yaml, parse_yaml
from tests.conftest import REPO, small_scenario

# a valid header and one valid row per format (the rows are real, from the shipped traces)
ROWS = {
    "philly": ("timestamp,duration,num_gpus,gpu_time,cluster",
               "2017-10-09 07:01:55,66.0,1,66.0,11cb48"),
    "pollux": ("name,time,application,num_replicas,batch_size",
               "cifar10-0,107,cifar10,6,2048"),
    "tiresias": ("job_id,num_gpu,submit_time,iterations,model_name,duration,interval",
                 "0,1,0,606,vgg19,164,30"),
    "helios": ("job_id,user,vc,jobname,gpu_num,cpu_num,node_num,state,submit_time,start_time,"
               "end_time,duration,queue",
               "1001,uA,vcX,train1,1,4,1,COMPLETED,2020-06-09 18:41:01,2020-06-09 18:41:01,"
               "2020-06-09 19:41:01,3600,0"),
    "dcsim-csv": ("name,arrival_s,model,global_batch,iterations", "a,0,resnet50,8,10"),
}
LATIN1 = "caf\xe9".encode("latin-1")  # 0xe9 alone is not UTF-8


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _error(call) -> str:
    with pytest.raises(ScenarioError) as info:
        call()
    return str(info.value)


@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_a_trace_that_is_not_utf8_names_the_file_and_byte(tmp_path, fmt):
    header, row = ROWS[fmt]
    data = f"{header}\n{row}\n".encode() + b"x," + LATIN1 + b"\n"
    path = _write(tmp_path / "t.csv", data)
    msg = _error(lambda: FORMATS.get(fmt)().parse(path))
    offset = data.index(b"\xe9")
    assert f"{path}:3: not UTF-8 text: byte 0xe9 at byte offset {offset}" in msg


@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_a_trace_with_a_bom_reads_like_one_without(tmp_path, fmt):
    header, row = ROWS[fmt]
    plain = FORMATS.get(fmt)().parse(_write(tmp_path / "a.csv", f"{header}\n{row}\n".encode()))
    bom = FORMATS.get(fmt)().parse(_write(tmp_path / "b.csv",
                                          f"\ufeff{header}\n{row}\n".encode()))
    assert not bom.bad and len(bom.records or bom.jobs or []) == 1
    assert [r.name for r in (bom.records or bom.jobs)] == [r.name for r in (plain.records
                                                                             or plain.jobs)]


@pytest.mark.parametrize("fmt", sorted(ROWS))
def test_repeated_columns_and_extra_cells_are_errors(tmp_path, fmt):
    header, row = ROWS[fmt]
    first = header.split(",")[0]
    twice = _write(tmp_path / "twice.csv", f"{header},{first}\n{row},x\n".encode())
    assert f"{twice}:1: column {first!r} appears more than once" in _error(
        lambda: FORMATS.get(fmt)().parse(twice))
    extra = _write(tmp_path / "extra.csv", f"{header}\n{row},surplus\n".encode())
    parsed = FORMATS.get(fmt)().parse(extra)
    n = len(header.split(","))
    assert [(p.line, p.message) for p in parsed.bad] == [(2, f"expected {n} fields, "
                                                             f"got {n + 1}")]


def test_gavel_and_pai_traces_that_are_not_utf8(tmp_path):
    gavel = _write(tmp_path / "g.trace", b"Transformer (batch size 128)\t" + LATIN1 + b"\n")
    assert f"{gavel}:1: not UTF-8 text" in _error(lambda: FORMATS.get("gavel")().parse(gavel))
    pai = _write(tmp_path / "p.csv", b"\x00\x01binary")
    assert f"{pai}:1: not a text file: NUL byte at byte offset 0" in _error(
        lambda: FORMATS.get("alibaba-pai")().parse(pai))


def test_scenarios_sweeps_profiles_and_failure_traces_that_are_not_utf8(tmp_path, write_yaml):
    bad = _write(tmp_path / "bad.yaml", b"name: " + LATIN1 + b"\n")
    assert f"{bad}:1: not UTF-8 text" in _error(lambda: dcsim.load_scenario(bad))
    from dcsim.sweep import read_sweep
    assert f"{bad}:1: not UTF-8 text" in _error(lambda: read_sweep(bad))
    scenario = write_yaml({**small_scenario(), "engine": {"profiles": ["bad.yaml"]}})
    assert f"{bad}:1: not UTF-8 text" in _error(lambda: dcsim.load_scenario(scenario))
    _write(tmp_path / "f.csv", b"time_s,component,target\n1," + LATIN1 + b",0\n")
    scenario = write_yaml({**small_scenario(), "faults": {"trace": {"path": "f.csv"}}})
    assert "f.csv:2: not UTF-8 text" in _error(lambda: dcsim.load_scenario(scenario))


def test_a_directory_or_a_device_is_not_read(tmp_path):
    assert f"{tmp_path}: cannot read scenario: a directory" in _error(
        lambda: dcsim.load_scenario(tmp_path))
    if Path("/dev/zero").exists():
        start = time.perf_counter()
        assert "/dev/zero: cannot read scenario: not a regular file" in _error(
            lambda: dcsim.load_scenario("/dev/zero"))
        assert time.perf_counter() - start < 5  # refused, not read forever


# ----------------------------------------------------------------------------- YAML attacks
def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_expands():
    msg = _error(lambda: parse_yaml(_bomb(), "bomb.yaml"))  # 9**9 = 387M values expanded
    assert "bomb.yaml:7: the document expands to more than 2,000,000 values" in msg
    small = parse_yaml(_bomb(3), "ok.yaml")  # aliases that stay small are fine
    assert len(small.data["a2"]) == 9 and small.data["a2"][0][0] == ["x"] * 9


def test_recursive_aliases_deep_nesting_and_control_characters():
    assert "r.yaml:1: an alias refers to the value that contains it" in _error(
        lambda: load_yaml("a: &a [1, *a]\n", "r.yaml"))
    deep = "x: " + "[" * 3000 + "]" * 3000 + "\n"
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in _error(
        lambda: load_yaml(deep, "d.yaml"))
    blocks = "".join("  " * i + f"k{i}:\n" for i in range(MAX_YAML_DEPTH + 5))
    assert f"nested more than {MAX_YAML_DEPTH} levels deep" in _error(
        lambda: load_yaml(blocks, "b.yaml"))
    assert "c.yaml:2: invalid YAML: character 0x0007" in _error(
        lambda: load_yaml("a: 1\nb: \x07\n", "c.yaml"))


def test_a_key_given_twice_is_an_error_not_last_one_wins(write_yaml):
    text = (REPO / "scenarios" / "quickstart.yaml").read_text() + "seed: 9\n"
    path = write_yaml(text)
    msg = _error(lambda: dcsim.load_scenario(path))
    assert "key 'seed' given twice in one mapping (first at line" in msg
    # merge keys (<<) are not duplicates
    data = load_yaml("base: &b {x: 1}\nc:\n  <<: *b\n  y: 2\n", "m.yaml")
    assert data["c"] == {"x": 1, "y": 2}


def test_set_values_are_checked_like_files(write_yaml):
    path = write_yaml(small_scenario())
    msg = _error(lambda: dcsim.load_scenario(path, ["seed={a: 1, a: 2}"]))
    assert "--set seed={a: 1, a: 2}:1: key 'a' given twice" in msg
