"""The online choice of torch's thread count (mmfa_studio/runtime.py): the faster count is kept, and when the
load changes the tuner notices and moves."""

from mmfa_studio.runtime import ThreadTuner


def run(tuner: ThreadTuner, cost: dict[int, float], frames: int, applied: list[int]) -> list[int]:
    used = []
    for _ in range(frames):
        used.append(tuner.current)
        tuner.record(cost[tuner.current])
    return used


def test_the_tuner_keeps_the_faster_count_and_follows_a_change_of_load():
    applied: list[int] = []
    tuner = ThreadTuner([2, 1], applied.append, window=5, hold=3)
    busy = {2: 0.30, 1: 0.18}  # beside a busy process: one thread is faster
    used = run(tuner, busy, 40, applied)
    assert used[:5] == [2] * 5 and used[5:10] == [1] * 5  # each timed for a window
    assert used[5:20] == [1] * 15 and used.count(1) >= 25  # then one thread, re-timing 2 now and then
    quiet = {2: 0.10, 1: 0.16}  # the other process ended
    used = run(tuner, quiet, 40, applied)
    assert used[-20:].count(2) >= 15
    tuner.restore()
    assert tuner.current == 2 and applied[-1] == 2 and set(applied) == {1, 2}


def test_one_candidate_is_never_changed():
    applied: list[int] = []
    tuner = ThreadTuner([1, 1], applied.append, window=2)
    assert not tuner.active
    run(tuner, {1: 0.1}, 10, applied)
    tuner.restore()
    assert applied == [] and tuner.current == 1


def test_a_few_frames_held_up_by_something_else_do_not_change_the_count():
    """Every seventh frame at 2 threads is held up (the GUI thread, a collection): by the mean its windows
    looked slower than 1 thread's, by the median they are not."""
    applied: list[int] = []
    tuner = ThreadTuner([2, 1], applied.append, window=10, hold=12)
    used = []
    for frame in range(200):
        used.append(tuner.current)
        held_up = tuner.current == 2 and frame % 7 == 0
        tuner.record(1.0 if held_up else {2: 0.10, 1: 0.16}[tuner.current])
    assert used[20:].count(2) >= 0.85 * len(used[20:])  # all but the re-timing of 1 thread
