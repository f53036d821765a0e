"""README.md's speed tables, rewritten from the saved benchmark JSON, so they say what the code did on the day.

    python -m benchmarks.readme_table [--results benchmarks/results] [--readme README.md]

Reads the newest saved result of each benchmark (``python -m benchmarks.<name> --save``; ``mmfa-studio bench
--json benchmarks/results/stages-….json``), per device kind (CPU, CUDA), and rewrites the text between each pair
of markers ``<!-- readme_table:NAME begin -->`` / ``<!-- readme_table:NAME end -->``: ``stages`` (the per-stage
table) and ``speed`` (one row per figure). Every row names the machine, its load average and the commit it was
measured at; a figure with no saved result says how to measure it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .common import REPO_ROOT, RESULTS_DIR

Report = dict  # one benchmark's JSON: {"benchmark", "machine", "results"}


def device_kind(report: Report) -> str:
    """"cuda" when the benchmark ran on a GPU, else "cpu" (the face benchmark names none: it is CPU only)."""
    results = report["results"]
    first = results[0] if isinstance(results, list) else results["runs"][0] if "runs" in results else results
    return "cuda" if str(first.get("device", "cpu")).startswith("cuda") else "cpu"


def saved_at(path: Path) -> tuple[str, float]:
    """When a result was saved, as a sortable key: the date (and time) in its name (``engine-20261207T173636Z``,
    ``app-cpu-20261202``), then the file's modification time. A fresh clone gives every file the same time, so
    the time alone picked an older result at random."""
    found = re.search(r"(\d{8})(T\d{6}Z?)?", path.stem)
    stamp = (found.group(1) + (found.group(2) or "T000000")) if found else ""
    return stamp, path.stat().st_mtime


def newest_reports(folder: Path) -> dict[tuple[str, str], Report]:
    """The newest report of each (benchmark, device kind), by :func:`saved_at`."""
    newest: dict[tuple[str, str], tuple[tuple[str, float], Report]] = {}
    for path in folder.glob("*.json"):
        try:
            report = json.loads(path.read_text())
            key = (report["benchmark"], device_kind(report))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            print(f"skipped {path}: not a benchmark result", file=sys.stderr)
            continue
        when = saved_at(path)
        if key not in newest or when > newest[key][0]:
            newest[key] = (when, report)
    return {key: report for key, (_, report) in newest.items()}


def measured_on(report: Report) -> str:
    m = report["machine"]
    where = m["gpu"] or f"{m['cpu']} ×{m['cores_available']}"
    return f"{where}, load {m['load_average']['1min']}, {m['git_commit'] or 'no commit'}"


@dataclass(frozen=True)
class Row:
    what: str
    benchmark: str
    device: str  # "cpu" or "cuda"
    command: str
    figure: Callable[[dict], str]  # the report's "results" → the figure's text
    target: str


def training_figure(r: dict) -> str:
    run = r["runs"][0]
    flops = "" if run["gflops_per_s"] is None else f", {run['gflops_per_s']:.0f} GFLOP/s"
    return (f"{run['it_s']:.2f} it/s, {run['img_s']:.0f} images/s (`{run['config']}` config, {run['size']} px, "
            f"batch {run['batch']}, AMP {run['amp']}{flops})")


ROWS = (
    Row("re-render, bundled model, CPU", "engine", "cpu", "python -m benchmarks.engine",
        lambda r: (f"{r['bf16.render_ms_median']:.1f} ms bf16 ({r['bf16.render_gflops_per_s']:.0f} GFLOP/s), "
                   f"{r['fp32.render_ms_median']:.1f} ms fp32 ({r['fp32.render_gflops_per_s']:.0f} GFLOP/s) median"),
        "≤ 25 ms bf16"),
    Row("re-render with the face at the photo's resolution (512 / 1024 px face crop), CPU", "engine", "cpu",
        "python -m benchmarks.engine",
        lambda r: (f"{r['detail512_render_ms_median']:.0f} / {r['detail1024_render_ms_median']:.0f} ms "
                   f"{r['detail_precision']}; pasted back {r['detail512_paste_back_ms_median']:.0f} / "
                   f"{r['detail1024_paste_back_ms_median']:.0f} ms"), "≤ 60 ms at 512 px"),
    Row("source preparation: detect + crop + encode, CPU", "engine", "cpu", "python -m benchmarks.engine",
        lambda r: f"{r['prepare_ms_median']:.0f} ms median", "≤ 1 s"),
    Row("reenactment incl. tracking, live (the model's crop), CPU", "engine", "cpu", "python -m benchmarks.engine",
        lambda r: (f"{r['reenact_fps']:.1f} fps ({r['reenact_frame_size']} clip, {r['reenact_frames']} frames); "
                   f"{r['reenact_detail_fps']:.1f} fps also rendering the face at the photo's resolution"),
        "≥ 30 fps"),
    Row("reenactment beside one busy process, CPU", "busy", "cpu", "python -m benchmarks.busy",
        lambda r: (f"{r['loaded_fps']:.1f} fps beside it, {r['quiet_fps']:.1f} alone: "
                   f"{100 * r['loaded_over_quiet']:.0f} %"), "≥ 40 % of alone"),
    Row("re-render, GPU, CUDA graph", "engine", "cuda", "python -m benchmarks.engine",
        lambda r: f"{r['fp16.render_ms_median']:.2f} ms fp16, {r['fp32.render_ms_median']:.2f} ms fp32", "≤ 3 ms"),
    Row("window visible after launch, CPU", "app", "cpu", "python -m benchmarks.app",
        lambda r: f"{r['launch_s_median']:.2f} s", "≤ 3 s"),
    Row("slider → new frame, bundled model, CPU", "app", "cpu", "python -m benchmarks.app",
        lambda r: f"{r['slider_ms_median']:.0f} ms median (p90 {r['slider_ms_p90']:.0f} ms)", "≤ 80 ms"),
    Row("webcam loop, 640×480 file source, CPU", "app", "cpu", "python -m benchmarks.app",
        lambda r: f"{r['webcam_fps_rendered']:.1f} fps over {r['webcam_frames']} frames", "≥ 10 fps"),
    Row("memory growth over those frames", "app", "cpu", "python -m benchmarks.app",
        lambda r: (f"{r['rss_growth_mb']:+.0f} MB start to end; trend {r['rss_trend_mb_per_10000_frames']:+.0f} MB "
                   f"per 10 000 (least squares over {len(r['rss_mb_along_the_way'])} samples)"),
        "< 50 MB per 10 000"),
    Row("face detection, real portraits", "face", "cpu", "python -m benchmarks.face",
        lambda r: f"{r['detection']['detected_percent']:.1f} % of {r['detection']['portraits']}", "≥ 98 %"),
    Row("crop-centre jitter, still-camera talking clip, smoothing on", "face", "cpu", "python -m benchmarks.face",
        lambda r: f"{r['jitter'][0]['shake_rms_px_smoothed']:.2f} px RMS", "≤ 1 px"),
    Row("tracking, 640×480 frames, CPU", "face", "cpu", "python -m benchmarks.face",
        lambda r: f"{r['tracking_fps']:.1f} fps", "≥ 30 fps"),
    Row("training, CPU", "train", "cpu", "python -m benchmarks.train --config cpu --size 128 --batch 4",
        training_figure, "≥ 1 it/s"),
    Row("training, GPU", "train", "cuda", "python -m benchmarks.train --size 256 --batch 48 --device cuda",
        training_figure, "—"),
)


def speed_table(reports: dict[tuple[str, str], Report]) -> str:
    lines = ["| what (command) | figure | target | measured on (machine, 1-min load, commit) |", "|---|---|---|---|"]
    previous = None
    for row in ROWS:
        report = reports.get((row.benchmark, row.device))
        what = f"{row.what} ({'same' if row.command == previous else f'`{row.command}`'})"
        previous = row.command
        if report is None:
            lines.append(f"| {what} | not measured: run `{row.command} --save` | {row.target} | — |")
            continue
        try:
            figure = row.figure(report["results"])
        except (KeyError, IndexError, TypeError):  # a run that skipped this part (e.g. --skip-reenact)
            figure = "not in the saved result"
        lines.append(f"| {what} | {figure} | {row.target} | {measured_on(report)} |")
    return "\n".join(lines)


def stages_table(reports: dict[tuple[str, str], Report]) -> str:
    stages = ("source_encoding", "dense_motion", "warping", "generator", "total_rerender")
    lines = ["| device | variant | precision | source encoding | dense motion | warping | generator | total re-render "
             "| GFLOP/s (total) | measured on |", "|---|---|---|---|---|---|---|---|---|---|"]
    found = False
    for kind in ("cpu", "cuda"):
        report = reports.get(("stages", kind))
        if report is None:
            continue
        found = True
        device = report["machine"]["gpu"] or "CPU"
        for r in report["results"]:
            cells = " | ".join(f"{r['median_ms'][s]:.2f}" for s in stages)
            lines.append(f"| {device} | {r['variant']} | {r['precision']} | {cells} | "
                         f"{r['gflops_per_s']['total_rerender']:.0f} | {measured_on(report)} |")
    if not found:
        lines.append("| not measured: run `mmfa-studio bench --json benchmarks/results/stages.json` |"
                     + " |" * 9)
    return "\n".join(lines)


def replace_between_markers(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- readme_table:{name} begin -->\n).*?(\n<!-- readme_table:{name} end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no <!-- readme_table:{name} begin/end --> markers")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def rewrite(readme: Path, results: Path) -> str:
    reports = newest_reports(results)
    text = readme.read_text()
    text = replace_between_markers(text, "stages", stages_table(reports))
    text = replace_between_markers(text, "speed", speed_table(reports))
    readme.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.readme_table", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--readme", type=Path, default=REPO_ROOT / "README.md")
    args = parser.parse_args(argv)
    try:
        rewrite(args.readme, args.results)
    except ValueError as exc:
        print(f"readme_table: {exc}", file=sys.stderr)
        return 2
    print(f"rewrote the speed tables of {args.readme} from {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
