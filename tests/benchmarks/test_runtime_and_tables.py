"""The thread plan, the benchmarks' JSON header, the stage timings' configs and the README table script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import readme_table
from benchmarks.common import emit
from mmfa_studio.model import load_model_config
from mmfa_studio.runtime import THREADS_ENV, available_cores, plan_threads
from mmfa_studio.timing import config_for_variant

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_plan_follows_the_cores_this_process_may_use(monkeypatch):
    monkeypatch.delenv(THREADS_ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert plan_threads().cores == available_cores() == len(os.sched_getaffinity(0))
    plan = plan_threads(cores=16)
    assert (plan.torch_threads, plan.torch_interop_threads, plan.opencv_threads, plan.ffmpeg_threads) == (16, 1, 1, 4)
    assert plan_threads(cores=2).ffmpeg_threads == 1
    monkeypatch.setenv(THREADS_ENV, "3")
    assert plan_threads(cores=16).torch_threads == 3


def test_an_entry_point_sizes_the_pools_of_libraries_it_loads_later():
    code = ("from mmfa_studio.runtime import configure_threads; plan = configure_threads(); import torch, cv2; "
            "print(plan.cores, torch.get_num_threads(), cv2.getNumThreads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENCV_FOR_THREADS_NUM", THREADS_ENV)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=True)
    cores, torch_threads, cv2_threads = map(int, out.stdout.split())
    assert torch_threads == cores and cv2_threads == 1


def test_stage_timings_build_the_volumetric_variant_from_the_cpu_config():
    """`mmfa-studio bench` used to stop here: the cpu config's hybrid-only fields on a volumetric model."""
    cpu = load_model_config("cpu")
    volumetric = config_for_variant(cpu, "volumetric")
    assert volumetric.variant == "volumetric" and volumetric.head_region_spread == 0 and volumetric.flow_smoothing == 0
    assert volumetric.image_size == cpu.image_size and config_for_variant(cpu, "hybrid") == cpu


def test_every_benchmark_prints_its_results_under_a_machine_header(capsys):
    report = emit("example", {"fps": 12.5, "unmeasured": float("nan")}, save=False)
    printed = json.loads(capsys.readouterr().out)
    assert printed == report and printed["results"] == {"fps": 12.5, "unmeasured": None}
    machine = printed["machine"]
    for key in ("cpu", "cores_available", "load_average", "git_commit", "torch", "torch_threads", "thread_plan"):
        assert key in machine
    assert machine["git_commit"]  # the tests run in a checkout


def _result(tmp: Path, name: str, results: object, load: float = 0.4, gpu: str | None = None) -> None:
    machine = {"cpu": "AMD EPYC", "cores_available": 2, "gpu": gpu, "load_average": {"1min": load},
               "git_commit": "abc1234"}
    (tmp / f"{name}-{load}.json").write_text(json.dumps({"benchmark": name, "machine": machine, "results": results}))


def test_the_readme_tables_are_rewritten_from_the_newest_results(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    engine = {"device": "cpu", "bf16.render_ms_median": 21.04, "bf16.render_gflops_per_s": 180.0,
              "fp32.render_ms_median": 50.0, "fp32.render_gflops_per_s": 76.0, "prepare_ms_median": 40.0,
              "reenact_fps": 31.2, "reenact_frame_size": "512x512", "reenact_frames": 59, "reenact_detail_fps": 27.5}
    _result(results, "engine", engine)
    _result(results, "busy", {"device": "cpu", "loaded_fps": 14.0, "quiet_fps": 28.0, "loaded_over_quiet": 0.5})
    stages = [{"device": "cpu:x86_64", "variant": "hybrid", "precision": "fp32",
               "median_ms": dict.fromkeys(("source_encoding", "dense_motion", "warping", "generator",
                                           "total_rerender"), 1.0), "gflops_per_s": {"total_rerender": 99.0}}]
    _result(results, "stages", stages, load=3.5)
    (results / "notes.json").write_text("[1, 2]")  # not a result: skipped
    readme = tmp_path / "README.md"
    text = (REPO_ROOT / "README.md").read_text()
    readme.write_text(text)
    readme_table.rewrite(readme, results)
    new = readme.read_text()
    assert "| re-render, bundled model, CPU (`python -m benchmarks.engine`) | 21.0 ms bf16 (180 GFLOP/s)" in new
    assert "| source preparation: detect + crop + encode, CPU (same) | 40 ms median |" in new
    assert ("| reenactment incl. tracking, live (the model's crop), CPU (same) | 31.2 fps (512x512 clip, 59 frames); "
            "27.5 fps also rendering the face at the photo's resolution | ≥ 30 fps |") in new
    assert "14.0 fps beside it, 28.0 alone: 50 % | ≥ 40 % of alone | AMD EPYC ×2, load 0.4, abc1234 |" in new
    assert "| CPU | hybrid | fp32 | 1.00 | 1.00 | 1.00 | 1.00 | 1.00 | 99 | AMD EPYC ×2, load 3.5, abc1234 |" in new
    assert "not measured: run `python -m benchmarks.app --save`" in new
    before, after = text.split("<!-- readme_table:speed begin -->")[0], text.split("<!-- readme_table:speed end -->")[1]
    assert new.startswith(before.split("<!-- readme_table:stages begin -->")[0]) and new.endswith(after)


def test_a_readme_without_the_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no tables here\n")
    assert readme_table.main(["--readme", str(readme), "--results", str(tmp_path)]) == 2
    with pytest.raises(ValueError, match="markers"):
        readme_table.replace_between_markers("", "speed", "")


@pytest.mark.slow
@pytest.mark.parametrize("name, argv", [
    ("engine", ["--config", "tiny", "--repeats", "2", "--frames", "3", "--clip", "synthetic"]),
    ("busy", ["--config", "tiny", "--frames", "3", "--clip", "synthetic"]),
    ("train", ["--config", "tiny", "--size", "64", "--batch", "1", "--steps", "1", "--warmup", "1"]),
    ("app", ["--checkpoint", "{tiny}", "--launch-runs", "0", "--slider-moves", "2", "--frames", "0"]),
])
def test_a_benchmark_runs_on_the_tiny_config_and_prints_json(name, argv, capsys, tiny_checkpoint):
    """Small runs only: they catch a benchmark the code has moved away from, not a slowdown."""
    import importlib

    import torch

    before = torch.get_num_threads()
    try:
        module = importlib.import_module(f"benchmarks.{name}")
        assert module.main([a.format(tiny=tiny_checkpoint) for a in argv]) == 0
    finally:
        torch.set_num_threads(before)
    report = json.loads(capsys.readouterr().out)
    assert report["benchmark"] == name and report["machine"]["torch"] and report["results"]


def test_the_newest_result_is_told_by_the_date_in_its_name_not_the_files_time(tmp_path):
    """A fresh clone gives every saved result the same modification time: the date in the name decides."""
    import os

    machine = {"cpu": "AMD EPYC", "cores_available": 2, "gpu": None, "load_average": {"1min": 0.5},
               "git_commit": "abc1234"}
    for name, fps in (("app-cpu-20261202", 10.0), ("app-20261205T175906Z", 27.1), ("app-20261205T090000Z", 5.0)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"benchmark": "app", "machine": machine, "results": {"device": "cpu", "fps": fps}}))
        os.utime(path, (1_000_000, 1_000_000))
    (newest,) = readme_table.newest_reports(tmp_path).values()
    assert newest["results"]["fps"] == 27.1
