"""Long-running commands refuse bad options and an unwritable --json file before they start (exit 2, one line)."""

import re

import pytest

from mmfa_studio.cli import main


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("mmfa-studio ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("extra, message", [
    (["--repeats", "0"], r"--repeats 0 is out of range \[1, 100000\]"),
    (["--device", "tpu"], "unknown device"),
    (["--json", "{tmp}/missing/bench.json"], "folder .*missing does not exist"),
    (["--json", "{tmp}"], "is a folder"),
])
def test_bench_refuses_bad_options_before_timing(capsys, tmp_path, extra, message):
    argv = ["bench", "--config", "tiny", "--variant", "hybrid", "--repeats", "1"]
    argv += [a.format(tmp=tmp_path) for a in extra]
    assert main(argv) == 2
    assert re.search(message, error_line(capsys))


def test_evaluate_refuses_an_unwritable_report_before_evaluating(capsys, tmp_path, tiny_checkpoint):
    data = tmp_path / "videos"
    data.mkdir()
    (data / "clip.mp4").write_bytes(b"never read: the report path is refused first")
    code = main(["evaluate", "--data", str(data), "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                 "--json", str(tmp_path / "missing" / "report.json")])
    assert code == 2
    assert re.search("folder .*missing does not exist", error_line(capsys))
