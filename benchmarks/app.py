"""App benchmark: ``python -m benchmarks.app [--checkpoint PATH] [--frames N] [--save]``.

Measures, on this machine:

1. time from launching ``python -m mmfa_studio gui`` to the window's first paint (subprocess, offscreen);
2. slider-to-frame latency: a slider value set → the frame of that motion shown (median, p90);
3. webcam loop speed: a 640×480 video file driving the portrait through the real window, unpaced
   (frames rendered by the worker and frames shown by the GUI per second, and per-frame latency);
4. memory growth (resident set size) over the webcam frames, after a warm-up.

Targets: ≤ 3 s, ≤ 80 ms median, ≥ 10 fps, < 50 MB over 10 000 frames.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .common import REPO_ROOT, SHARED_DATA, emit, parse_args, say

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

DEFAULT_CLIP = "dreamtalk__M030_front_happy_level3_001.mp4"


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def launch_time(checkpoint: str | None, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        env = dict(os.environ, MMFA_STUDIO_REPORT_VISIBLE="1", MMFA_STUDIO_QUIT_AFTER_VISIBLE="1",
                   QT_QPA_PLATFORM="offscreen")
        cmd = [sys.executable, "-m", "mmfa_studio", "gui"] + (["--checkpoint", checkpoint] if checkpoint else [])
        start = time.time()
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
        visible = [line for line in out.stdout.splitlines() if line.startswith("window-visible")]
        if not visible:
            raise RuntimeError(f"the app did not report a visible window: {out.stderr[-500:]}")
        times.append(float(visible[0].split()[1]) - start)
    return times


def make_driving_clip(path: Path, seconds: float) -> None:
    """A 640×480 clip: a real talking head from ../shared/data when present, else the engine's synthetic face."""
    import cv2
    import numpy as np

    from mmfa_studio.engine import SyntheticSource, VideoExporter, open_frame_source

    clip = SHARED_DATA / "videos" / DEFAULT_CLIP
    source = open_frame_source(str(clip), loop=True) if clip.is_file() else SyntheticSource(fps=25, loop=True)
    say(f"  driving clip: {clip.name if clip.is_file() else 'synthetic (shared data not found)'} → 640×480")
    fps = source.fps
    with VideoExporter(path, fps) as video:
        for i, frame in enumerate(source):
            if i >= seconds * fps:
                break
            h, w = frame.shape[:2]
            scale = min(640 / w, 480 / h)
            resized = cv2.resize(frame, (max(1, int(w * scale)), max(1, int(h * scale))), interpolation=cv2.INTER_AREA)
            canvas = np.zeros((480, 640, 3), np.uint8)
            y, x = (480 - resized.shape[0]) // 2, (640 - resized.shape[1]) // 2
            canvas[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
            video.write(canvas)
    source.close()


def webcam_loop(window, clip: Path, frames: int, pump: Callable[[], None],
                wait: Callable[..., None]) -> dict[str, object]:
    """3 and 4: the webcam loop driven by a 640×480 file through the real window, and memory along the way."""
    make_driving_clip(clip, seconds=10)
    window.webcam.set_source_spec(str(clip))
    window.webcam_session.start(str(clip), window.webcam.settings(), pace=False, loop=True)
    wait(lambda: window.webcam_active)
    warmup = 100  # the tracker, allocator and caches settle during the first frames
    wait(lambda: window.worker.steps_done >= warmup, timeout=600)
    rss_start, shown_start, done_start = rss_mb(), window.webcam.frames_received, window.worker.steps_done
    start = time.perf_counter()
    samples: list[tuple[int, float]] = []
    target = done_start + frames
    step = max(frames // 10, 1)
    samples.append((0, rss_start))
    next_report = done_start + step
    latencies: list[tuple[int, float]] = []
    while window.worker.steps_done < target:
        pump()
        frame = window.last_frame
        if frame is not None and frame.kind == "webcam" and (not latencies or latencies[-1][0] != frame.seq):
            latencies.append((frame.seq, frame.latency_ms))
        if window.worker.steps_done >= next_report:
            samples.append((window.worker.steps_done - done_start, rss_mb()))
            next_report += step
        if not window.webcam_active:
            raise RuntimeError("the webcam loop stopped")
    elapsed = time.perf_counter() - start
    rendered = window.worker.steps_done - done_start
    shown = window.webcam.frames_received - shown_start
    rss_end = rss_mb()
    window.webcam_session.stop()
    wait(lambda: not window.webcam_active)
    lat = sorted(v for _, v in latencies)
    growth = rss_end - rss_start
    # The trend, a least-squares line through every sample: the resident set wanders by several MB as the
    # allocator reuses and returns memory, so its end minus its start, scaled up tenfold, is mostly that noise.
    trend = statistics.linear_regression([n for n, _ in samples], [m for _, m in samples]).slope * 10000
    say(f"   {rendered / elapsed:.1f} fps rendered, {shown / elapsed:.1f} fps shown, over {rendered} frames "
        f"({elapsed:.0f} s); per-frame worker latency median {statistics.median(lat):.0f} ms  [target ≥ 10 fps]")
    say(f"   RSS {rss_start:.0f} → {rss_end:.0f} MB: {growth:+.1f} MB over {rendered} frames "
        f"({growth / max(rendered, 1) * 10000:+.1f} MB per 10 000 frames extrapolated); trend through "
        f"{len(samples)} samples {trend:+.1f} MB per 10 000  [target < 50 MB / 10 000]")
    say("   RSS along the way: " + ", ".join(f"{n}: {m:.0f} MB" for n, m in samples))
    if len(samples) >= 3:  # after the first sample past the start
        (n0, m0), (n1, m1) = samples[1], samples[-1]
        say(f"   after the first {n0} measured frames: {m1 - m0:+.1f} MB over {n1 - n0} frames "
            f"({(m1 - m0) / max(n1 - n0, 1) * 10000:+.1f} MB per 10 000 extrapolated)")
    return {"webcam_fps_rendered": rendered / elapsed, "webcam_fps_shown": shown / elapsed, "webcam_frames": rendered,
            "webcam_latency_ms_median": statistics.median(lat), "rss_mb_start": rss_start, "rss_mb_end": rss_end,
            "rss_growth_mb": growth, "rss_growth_mb_per_10000_frames": growth / max(rendered, 1) * 10000,
            "rss_trend_mb_per_10000_frames": trend,
            "rss_mb_along_the_way": samples}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint",
                        help="model to use (default: the bundled mmfa_studio/assets/mmfa-cpu.safetensors)")
    parser.add_argument("--frames", type=int, default=1000, help="webcam frames for speed and memory (target: 10 000)")
    parser.add_argument("--slider-moves", type=int, default=40)
    parser.add_argument("--launch-runs", type=int, default=3)
    args = parse_args(parser, argv)

    from PySide6.QtCore import QEventLoop, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from mmfa_studio.checkpoint import BUNDLED_MODEL

    checkpoint = args.checkpoint
    if checkpoint is None and not BUNDLED_MODEL.is_file():
        say(f"error: {BUNDLED_MODEL} is missing; pass --checkpoint")
        return 2
    results: dict[str, object] = {"model": str(checkpoint or BUNDLED_MODEL)}
    say(f"MMFA Studio app benchmark — model {results['model']}, Qt offscreen")

    if args.launch_runs > 0:
        say("1. launch → window visible")
        times = launch_time(checkpoint, args.launch_runs)
        results.update(launch_s_median=statistics.median(times), launch_s=times)
        say(f"   {statistics.median(times):.2f} s median of {len(times)} ({', '.join(f'{t:.2f}' for t in times)})"
            "  [target ≤ 3 s]")

    app = QApplication.instance() or QApplication([])
    from mmfa_studio.app.main_window import MainWindow
    from mmfa_studio.engine import SAMPLE_PORTRAIT

    tmp = Path(tempfile.mkdtemp(prefix="mmfa-bench-"))
    window = MainWindow(settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat), device="auto")
    window.show()

    # Block in Qt's event loop (as the real app does) instead of spinning: a busy-polling GUI thread would
    # steal CPU from the engine on this 2-core machine and inflate every figure. The heartbeat timer bounds
    # each wait so that predicates on worker-side counters are re-checked.
    heartbeat = QTimer()
    heartbeat.start(5)

    def pump() -> None:
        app.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)

    def wait(predicate, timeout: float = 120.0) -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError("timed out")
            pump()

    try:
        window.start(str(SAMPLE_PORTRAIT), checkpoint)
        wait(lambda: window.view.frames_shown > 0)
        info = window.engine_info
        results.update(device=str(info.device), precision=info.precision, image_size=info.image_size)
        say(f"   (model on {info.device}, {info.precision}, {info.image_size} px)")

        say("2. slider → frame latency")
        slider = window.editor.sliders["yaw"].slider
        latencies = []
        engine = window.worker.engine
        engine_render = engine.render
        render_times: list[float] = []

        def timed_render(*a, **k):  # the engine's own share of the latency
            t0 = time.perf_counter()
            result = engine_render(*a, **k)
            render_times.append((time.perf_counter() - t0) * 1000)
            return result

        engine.render = timed_render
        for i in range(args.slider_moves):
            value = round(-20.0 + 40.0 * ((i * 7) % args.slider_moves) / args.slider_moves, 1)
            if value == round(window.state.motion.yaw, 1):
                value += 0.5
            start = time.perf_counter()
            slider.setValue(value)
            wait(lambda: window.last_frame is not None and window.last_frame.motion == window.state.motion)
            latencies.append((time.perf_counter() - start) * 1000)
        engine.render = engine_render
        latencies.sort()
        results.update(slider_ms_median=statistics.median(latencies),
                       slider_ms_p90=latencies[int(0.9 * len(latencies))],
                       slider_engine_render_ms_median=statistics.median(render_times))
        say(f"   median {statistics.median(latencies):.0f} ms, p90 {latencies[int(0.9 * len(latencies))]:.0f} ms "
            f"over {len(latencies)} moves  [target ≤ 80 ms median]; engine.render alone: median "
            f"{statistics.median(render_times):.0f} ms")

        if args.frames > 0:
            say("3. webcam loop (640×480 file source, unpaced) and 4. memory")
            results.update(webcam_loop(window, tmp / "driving-640x480.mp4", args.frames, pump, wait))
    finally:
        window.shutdown()
        window.close()
    emit("app", results, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
