"""``mmfa-studio calibrate``: bad inputs, and a real measurement that inverts the bundled model's response."""

import json

import pytest

from mmfa_studio.assets import BUNDLED_MODEL
from mmfa_studio.checkpoint import read_info
from mmfa_studio.cli import main


def test_calibrate_refuses_missing_data_and_unwritable_output(tmp_path, tiny_checkpoint, capsys):
    out = tmp_path / "out.safetensors"
    assert main(["calibrate", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path / "nope"),
                 "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["calibrate", "--data", str(tmp_path), "--out", str(tmp_path / "no" / "x.safetensors")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason=f"no bundled model at {BUNDLED_MODEL}")
def test_calibrating_the_bundled_model_on_real_clips(shared_data, tmp_path, capsys):
    """Two training clips (4 sources): the model turns yaw by less than asked, so the calibration asks for more."""
    from mmfa_studio.engine import Engine

    data = tmp_path / "clips"
    data.mkdir()
    for name in ("liveportrait__d14.mp4", "comfyui-advancedliveportrait__d2.mp4"):
        (data / name).symlink_to(shared_data / "videos" / name)
    out = tmp_path / "calibrated.safetensors"
    assert main(["calibrate", "--data", str(data), "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "over 4 sources" in printed and "yaw reach" in printed and f"wrote {out}" in printed
    info = read_info(out)
    response = info.metadata["pose_response"]
    assert 2.0 < response["yaw"]["10"] < 10.0 and 5.0 < response["roll"]["10"] < 12.0
    bundled = read_info(BUNDLED_MODEL)
    assert info.config == bundled.config and info.metadata["step"] == bundled.metadata["step"]
    with Engine.load(out, device="cpu", precision="fp32") as engine:
        yaw, _, _ = engine.pose_calibration.to_model(8.0, 0.0, 0.0)
        assert yaw > 8.0


@pytest.mark.parametrize("as_json", [False, True])
def test_calibrate_prints_the_response_and_writes_it_to_the_header(tmp_path, tiny_checkpoint, capsys, monkeypatch,
                                                                   as_json):
    """The measuring is stubbed (the real one is tested below); this checks what the command prints and stores."""
    from mmfa_studio.eval import calibrate

    measured = {"yaw": {-10.0: -6.0, 10.0: 7.0}, "pitch": {-10.0: -8.0, 10.0: 8.5}, "roll": {-10.0: -9.0, 10.0: 9.0}}
    monkeypatch.setattr(calibrate, "measure_pose_response",
                        lambda engine, videos: calibrate.PoseResponse(sources=2, measured=measured))
    (tmp_path / "clip.mp4").write_bytes(b"")  # listed only: the stub reads nothing
    out = tmp_path / "out.safetensors"
    args = ["calibrate", "--checkpoint", str(tiny_checkpoint), "--data", str(tmp_path), "--out", str(out)]
    assert main(args + ["--json"] * as_json) == 0
    printed = capsys.readouterr().out
    if as_json:
        assert json.loads(printed)["pose_calibration"]["yaw"] == [[-6.0, -10.0], [0.0, 0.0], [7.0, 10.0]]
    else:
        assert "yaw reach -6.0° … +7.0° (model -10° … +10°)" in printed and "over 2 sources" in printed
    assert read_info(out).metadata["pose_response"]["pitch"] == {"-10": -8.0, "10": 8.5}
