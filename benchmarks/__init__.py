"""Benchmarks of a checkout (not shipped in the wheel), run from the repository root:

    python -m benchmarks.engine    re-render latency, source preparation, reenactment fps
    python -m benchmarks.busy      reenactment fps alone and beside a busy competitor process
    python -m benchmarks.app       launch time, slider → frame latency, webcam loop speed and memory
    python -m benchmarks.face      detection rate, crop jitter, tracking speed (needs ../shared/data)
    python -m benchmarks.train     training iterations/s and where a step's time goes
    python -m benchmarks.readme_table   README's speed table from the saved results

Each prints one JSON object, ``{"benchmark", "machine", "results"}`` (``benchmarks/common.py``), on stdout and
its progress on stderr; ``--save`` also keeps it in ``benchmarks/results/``. The per-stage model timings are
the installed tool's own command, ``mmfa-studio bench --json FILE``, written in the same layout.
"""
