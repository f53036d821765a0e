"""The trainer: overfitting a real clip, exact resume, checkpoints/EMA export, signals, DDP on gloo, the CLI."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmfa_studio.checkpoint import load_model
from mmfa_studio.train.config import load_train_config
from mmfa_studio.train.dataset import ArrayStore
from mmfa_studio.train.run_state import CHECKPOINT_NAME, EMA_NAME, set_resolution
from mmfa_studio.train.trainer import RunOptions, Trainer

from .conftest import blob_video

REPO = Path(__file__).resolve().parents[2]


def tiny(**changes):
    model, train = load_train_config("tiny")
    changes.setdefault("num_workers", 0)
    changes.setdefault("image_every", 0)
    return model, dataclasses.replace(train, **changes)


def options(run_dir: Path, **kw) -> RunOptions:
    kw.setdefault("tensorboard", False)
    kw.setdefault("log", lambda _msg: None)
    return RunOptions(run_dir=run_dir, device="cpu", **kw)


def test_tiny_model_overfits_a_short_real_clip(real_clip, tmp_path):
    """40 steps on 24 frames of one real clip: the perceptual reconstruction loss falls at least 2×."""
    model, cfg = tiny(lr_generator=2e-3, lr_discriminator=2e-3, steps=40)
    record: list[dict] = []
    Trainer(model, cfg, ArrayStore({"clip": real_clip}), options(tmp_path, on_step=lambda s, r: record.append(r))).run()
    perceptual = np.array([r["perceptual"] for r in record])
    first, last = perceptual[:5].mean(), perceptual[-5:].mean()
    assert len(record) == 40 and np.isfinite(perceptual).all()
    assert first / last >= 2.0, f"perceptual loss fell only from {first:.4f} to {last:.4f}"


def run_steps(run_dir: Path, store, max_steps: int, resume: bool = False, **cfg_changes) -> list[dict]:
    model, cfg = tiny(**cfg_changes)
    record: list[dict] = []
    Trainer(model, cfg, store, options(run_dir, resume=resume, max_steps=max_steps,
                                       on_step=lambda s, r: record.append(r))).run()
    return record


def test_resume_reproduces_the_next_steps_exactly(blob_store, tmp_path):
    straight = run_steps(tmp_path / "straight", blob_store, 4)
    first = run_steps(tmp_path / "split", blob_store, 2)
    resumed = run_steps(tmp_path / "split", blob_store, 4, resume=True)
    assert [r["total"] for r in first] == [r["total"] for r in straight[:2]]
    assert len(resumed) == 2
    for a, b in zip(resumed, straight[2:]):
        assert a["total"] == pytest.approx(b["total"], rel=1e-6, abs=1e-7)
        assert a["discriminator"] == pytest.approx(b["discriminator"], rel=1e-6, abs=1e-7)
    state = torch.load(tmp_path / "split" / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 4


def test_resume_reads_a_checkpoint_saved_before_a_model_field_existed(blob_store, tmp_path):
    """A field added later (e.g. tps_motion) is missing from older checkpoints' config: it reads as its default."""
    run_steps(tmp_path, blob_store, 1)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    del state["model_config"]["tps_motion"]
    torch.save(state, tmp_path / CHECKPOINT_NAME)
    assert len(run_steps(tmp_path, blob_store, 2, resume=True)) == 1


def test_frozen_parts_keep_their_weights_and_unknown_parts_are_refused(blob_store, tmp_path):
    model_cfg, cfg = tiny(freeze=("keypoint_detector", "motion_encoder"))
    trainer = Trainer(model_cfg, cfg, blob_store, options(tmp_path / "run", max_steps=2))
    before = {k: v.clone() for k, v in trainer.mmfa.state_dict().items()}
    trainer.run()
    after = trainer.mmfa.state_dict()
    for name, value in before.items():
        frozen = name.startswith(("keypoint_detector.", "motion_encoder."))
        unchanged = torch.equal(after[name], value)
        assert unchanged == frozen or not value.is_floating_point() or "depth_template" in name, name
    with pytest.raises(ValueError, match="unknown part"):
        Trainer(model_cfg, dataclasses.replace(cfg, freeze=("keypoints",)), blob_store, options(tmp_path / "run2"))


def test_scale_anchor_moves_the_motion_encoders_scale_towards_its_target(blob_store, tmp_path):
    """The same 5 steps with and without the anchor (target 0.7): only the anchored run ends near 0.7."""
    model_cfg, cfg = tiny(lr_generator=1e-2, warmup_steps=0, scale_anchor_target=0.7,
                          freeze=("appearance_encoder", "keypoint_detector", "dense_motion", "generator"))
    probe = torch.rand(4, 3, model_cfg.image_size, model_cfg.image_size)
    scales = []
    for weight in (0.0, 1000.0):
        run_cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, scale_anchor=weight))
        trainer = Trainer(model_cfg, run_cfg, blob_store, options(tmp_path / str(weight), max_steps=5))
        trainer.run()
        with torch.no_grad():
            scales.append(trainer.mmfa.motion_encoder(probe).scale.mean().item())
    free, anchored = scales
    assert abs(anchored - 0.7) < 0.05 < abs(free - 0.7), scales


def test_checkpoint_exports_the_ema_generator_and_refuses_to_overwrite(blob_store, tmp_path):
    run_steps(tmp_path, blob_store, 2)
    assert (tmp_path / CHECKPOINT_NAME).is_file()
    _, info = load_model(tmp_path / EMA_NAME)
    assert info.config == load_train_config("tiny")[0] and info.metadata["step"] == 2
    assert "VGG16" in info.metadata["perceptual"]
    assert not any(p.name.endswith(".part.pt") for p in tmp_path.iterdir())  # atomic writes leave nothing behind
    with pytest.raises(FileExistsError, match="--resume"):
        run_steps(tmp_path, blob_store, 3)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run_steps(tmp_path / "fresh", blob_store, 3, resume=True)


def test_sigterm_stops_cleanly_with_a_checkpoint(blob_store, tmp_path):
    model, cfg = tiny()

    def on_step(step, _result):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    lines: list[str] = []
    trainer = Trainer(model, cfg, blob_store, options(tmp_path, max_steps=50, on_step=on_step, log=lines.append))
    assert trainer.run() == 2
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 2
    assert any("SIGTERM" in line for line in lines)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL or callable(signal.getsignal(signal.SIGTERM))


def test_time_limit_and_tensorboard(blob_store, tmp_path):
    model, cfg = tiny(image_every=1)
    lines: list[str] = []
    Trainer(model, cfg, blob_store, options(tmp_path, minutes=0.0, tensorboard=True, log=lines.append)).run()
    assert torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)["step"] == 0
    assert any("time limit" in line for line in lines)
    record: list[dict] = []
    Trainer(model, cfg, blob_store, options(tmp_path, resume=True, max_steps=1, tensorboard=True,
                                            on_step=lambda s, r: record.append(r))).run()
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and sum(e.stat().st_size for e in events) > 1000  # scalars + an image grid
    assert len(record) == 1


def test_progressive_resolution_switches_size_and_keeps_weights(blob_store, tmp_path):
    model, cfg = tiny(progressive=[(0, 32), (2, 64)])
    sizes: list[int] = []
    trainer = Trainer(model, cfg, blob_store, options(tmp_path, max_steps=3,
                                                      on_step=lambda s, r: sizes.append(trainer.size)))
    trainer.run()
    assert sizes == [32, 32, 64]
    set_resolution(trainer.mmfa, 32, model)
    assert trainer.mmfa.cfg.image_size == 32 and trainer.mmfa.dense_motion.cfg.feature_size == 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, run_dir: str, videos: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    model, cfg = tiny(batch_size=2)
    trainer = Trainer(model, cfg, ArrayStore(videos), options(Path(run_dir), max_steps=2))
    logged: list[dict[str, float]] = []
    write = trainer.logbook.write
    trainer.logbook.write = lambda step, means, *a: (logged.append(means), write(step, means, *a))
    trainer.run()
    torch.save(logged, Path(run_dir) / f"logged_rank{rank}.pt")
    params = torch.cat([p.detach().flatten() for p in trainer.mmfa.parameters()])
    torch.save(params, Path(run_dir) / f"params_rank{rank}.pt")


def test_two_process_ddp_on_gloo(tmp_path):
    import torch.multiprocessing as mp

    videos = {"a": blob_video(8, seed=0), "b": blob_video(8, seed=1)}
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path), videos), nprocs=2, join=True)
    state = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert state["step"] == 2 and state["world_size"] == 2 and state["samples_seen"] == 2 * 2 * 2
    p0, p1 = torch.load(tmp_path / "params_rank0.pt"), torch.load(tmp_path / "params_rank1.pt")
    assert torch.equal(p0, p1)  # gradients were all-reduced: both replicas stayed identical
    # Logged losses are means over both ranks' shards (each rank alone saw different pairs).
    logged0, logged1 = torch.load(tmp_path / "logged_rank0.pt"), torch.load(tmp_path / "logged_rank1.pt")
    assert len(logged0) == 2 and logged0 == logged1


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")  # see conftest.one_torch_thread
    return subprocess.run([sys.executable, "-m", "mmfa_studio", "train", *args], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True, timeout=300)


def test_cli_missing_and_empty_dataset_are_one_line_errors(tmp_path):
    proc = run_cli("--config", "tiny", "--data", str(tmp_path / "nope"), cwd=tmp_path)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run_cli("--config", "tiny", "--data", str(tmp_path / "empty"), cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "index.json" in proc.stderr


def test_cli_trains_on_prepared_data_and_resumes(prepared_blobs, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("--config", "tiny", "--data", str(prepared_blobs), "--out", str(out), "--max-steps", "2",
                   "--device", "cpu", "--loss", "head_pose=0.5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "perceptual backbone: VGG16" in proc.stdout and "step 2" in proc.stdout
    assert "head_pose 0.5" in proc.stdout
    assert (out / EMA_NAME).is_file() and (out / CHECKPOINT_NAME).is_file() and (out / "config.yaml").is_file()
    proc = run_cli("--config", "tiny", "--data", str(prepared_blobs), "--out", str(out), "--max-steps", "3",
                   cwd=tmp_path)
    assert proc.returncode == 2 and "--resume" in proc.stderr
    proc = run_cli("--config", "tiny", "--data", str(prepared_blobs), "--out", str(out), "--max-steps", "3",
                   "--resume", "--device", "cpu", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "resumed" in proc.stdout and torch.load(out / CHECKPOINT_NAME, weights_only=True)["step"] == 3


def test_pack_splits_results_and_init_from_continues(blob_store, tmp_path):
    from mmfa_studio.train.pack import main as pack_main

    run = tmp_path / "run"
    run_steps(run, blob_store, 2)
    assert pack_main([str(run), str(tmp_path / "pack"), "--part-mb", "0.3"]) == 0
    parts = sorted((tmp_path / "pack").glob("model_ema.safetensors.part-*"))
    assert len(parts) >= 2 and all(p.stat().st_size <= 0.3 * 1024 * 1024 for p in parts)
    joined = tmp_path / "model_ema.safetensors"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert load_model(joined)[1].metadata["step"] == 2
    weights = tmp_path / "train_weights.pt"
    weights.write_bytes(b"".join(p.read_bytes() for p in sorted((tmp_path / "pack").glob("train_weights.pt.part-*"))))
    model, cfg = tiny()
    trainer = Trainer(model, cfg, blob_store, options(tmp_path / "next", max_steps=3, init_from=weights))
    assert trainer.run() == 3
    ema_before = load_model(joined)[0].state_dict()
    assert any(not torch.equal(v, trainer.ema.state_dict()[k].cpu()) for k, v in ema_before.items())


def test_resumed_adam_moments_take_their_parameters_layout():
    """Fused CUDA Adam needs params and moments with the same dtype, device and strides (an H100 resume
    failed that check); align_optimizer_state rebuilds loaded moments like their parameters."""
    from mmfa_studio.train.run_state import align_optimizer_state

    conv = torch.nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(conv.parameters(), lr=1e-3)
    conv(torch.rand(1, 3, 8, 8)).sum().backward()
    opt.step()
    weight = conv.weight
    moments = opt.state[weight]
    moments["exp_avg"] = moments["exp_avg"].contiguous().double()  # as a file might hand them back
    before = moments["exp_avg"].float().clone()
    align_optimizer_state(opt)
    after = opt.state[weight]["exp_avg"]
    assert after.dtype == weight.dtype and after.device == weight.device and after.stride() == weight.stride()
    assert torch.equal(after, before)


def test_an_fp16_resume_of_a_bf16_run_starts_a_fresh_grad_scaler():
    """A bf16/fp32 run saves a disabled GradScaler as {}; resuming it in fp16 (e.g. --amp auto on a GPU without
    bf16) must not fail in GradScaler.load_state_dict, and a real scaler state still carries over."""
    from mmfa_studio.train.run_state import load_scaler_state

    saved_disabled = torch.amp.GradScaler("cpu", enabled=False).state_dict()
    fresh = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    load_scaler_state(fresh, saved_disabled)
    assert fresh.get_scale() == 1024.0
    load_scaler_state(fresh, torch.amp.GradScaler("cpu", enabled=True, init_scale=8.0).state_dict())
    assert fresh.get_scale() == 8.0


def test_init_from_an_inference_checkpoint_takes_generator_and_ema(blob_store, tmp_path):
    """A later session can continue from the committed model (safetensors): generator and EMA come from it."""
    from mmfa_studio.checkpoint import save_model
    from mmfa_studio.model import MMFA

    model_cfg, cfg = tiny()
    torch.manual_seed(123)
    source = MMFA(model_cfg)
    path = tmp_path / "model.safetensors"
    save_model(path, source, {"step": 7})
    trainer = Trainer(model_cfg, cfg, blob_store, options(tmp_path / "run", max_steps=7, init_from=path))
    assert trainer.run() == 7  # starts at the file's step: nothing left to train
    for k, v in source.state_dict().items():
        assert torch.equal(trainer.mmfa.state_dict()[k].cpu(), v) and torch.equal(trainer.ema.state_dict()[k].cpu(), v)
    longer = Trainer(model_cfg, cfg, blob_store, options(tmp_path / "run2", max_steps=8, init_from=path))
    assert longer.run() == 8


def test_init_from_a_learned_depth_model_moves_it_to_the_face_template(blob_store, tmp_path):
    """The first bundled model (learned, saturated depth) continues under the template-depth recipe."""
    from mmfa_studio.checkpoint import read_info, save_model
    from mmfa_studio.face.depth import face_depth_map
    from mmfa_studio.model import MMFA

    learned_cfg, cfg = tiny()
    template_cfg = dataclasses.replace(learned_cfg, keypoint_depth="template")
    torch.manual_seed(5)
    old = MMFA(learned_cfg)
    old.keypoint_detector.depth.bias.data.fill_(3.0)  # saturated, like the first bundled model
    path = tmp_path / "learned.safetensors"
    save_model(path, old, {"step": 3})
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, keypoint_flow=10.0))
    trainer = Trainer(template_cfg, cfg, blob_store, options(tmp_path / "run", max_steps=5, init_from=path))
    assert trainer.run() == 5
    detector = trainer.ema.keypoint_detector
    size = template_cfg.heatmap_size
    assert torch.allclose(detector.depth_template.view(size, size), torch.from_numpy(face_depth_map(size)))
    assert detector.depth.bias.abs().max() < 0.1  # reset, then a few small steps
    assert read_info(tmp_path / "run" / EMA_NAME).config == template_cfg
    other = dataclasses.replace(template_cfg, num_keypoints=learned_cfg.num_keypoints + 1)  # not a depth upgrade
    with pytest.raises(ValueError, match="num_keypoints"):
        Trainer(other, cfg, blob_store, options(tmp_path / "run3", max_steps=4, init_from=path)).run()


def test_init_from_a_model_without_the_spline_adds_it(blob_store, tmp_path):
    """The stop-9 bundled model continues under tps_motion: its dense-motion weights keep their places."""
    from mmfa_studio.checkpoint import read_info, save_model
    from mmfa_studio.model import MMFA
    from mmfa_studio.train.surgery import TPS_INIT_LOGIT

    plain_cfg, cfg = tiny()
    tps_cfg = dataclasses.replace(plain_cfg, tps_motion=True)
    torch.manual_seed(6)
    old = MMFA(plain_cfg)
    path = tmp_path / "plain.safetensors"
    save_model(path, old, {"step": 3})
    trainer = Trainer(tps_cfg, cfg, blob_store, options(tmp_path / "run", max_steps=3, init_from=path))
    assert trainer.run() == 3  # loaded, nothing trained
    grown = trainer.ema.dense_motion.state_dict()
    for name, weight in old.dense_motion.state_dict().items():
        leading = grown[name][tuple(slice(0, n) for n in weight.shape)]
        assert torch.equal(leading, weight), name
    assert grown["mask.bias"][-1] == TPS_INIT_LOGIT and grown["mask.weight"][-1].abs().max() == 0
    assert read_info(tmp_path / "run" / EMA_NAME).config == tps_cfg
    assert Trainer(tps_cfg, cfg, blob_store, options(tmp_path / "run2", max_steps=5, init_from=path)).run() == 5


def _train_until_first_step(tmp_path: Path, prepared_blobs: Path, out: Path):
    import time

    log = open(tmp_path / "log.txt", "w")  # noqa: SIM115 - the caller closes it after the process ends
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "mmfa_studio", "train", "--config", "tiny",
                             "--data", str(prepared_blobs), "--out", str(out), "--device", "cpu",
                             "--num-workers", "1", "--minutes", "5", "--log-every", "1"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while "step 1 " not in (tmp_path / "log.txt").read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc, log


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGTERM are POSIX")
@pytest.mark.parametrize("how", ["process group", "pkill -f"])
def test_sigterm_to_the_whole_process_group_or_every_process_still_saves(prepared_blobs, tmp_path, how):
    """A cluster's preemption (or `kill -- -PGID`) signals the data-loader workers too, and `pkill -f` reaches
    them even in their own process group: the run must still save."""
    import shutil

    if how == "pkill -f" and shutil.which("pkill") is None:
        pytest.skip("pkill is not installed")
    out = tmp_path / "run"
    proc, log = _train_until_first_step(tmp_path, prepared_blobs, out)
    try:
        if how == "process group":
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            subprocess.run(["pkill", "-TERM", "-f", str(out)], check=True)  # the workers share the command line
        assert proc.wait(timeout=120) == 0, (tmp_path / "log.txt").read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
    assert (out / CHECKPOINT_NAME).is_file() and "SIGTERM" in (tmp_path / "log.txt").read_text()


def test_template_flow_targets_turn_the_face_the_model_way():
    """+yaw turns the face to the image right: the template's nose moves right, its far cheek left."""
    from mmfa_studio.model import MMFA
    from mmfa_studio.model.mmfa import TargetMotion
    from mmfa_studio.model.motion_encoder import HeadMotion
    from mmfa_studio.train.step import GeneratorStep

    model_cfg, _ = tiny()
    step = GeneratorStep(MMFA(model_cfg), pose_edits=(30.0, 20.0), face_template=True)
    zeros = torch.zeros(2)
    source = HeadMotion.__new__(HeadMotion)
    source.yaw, source.pitch, source.roll = zeros, zeros, zeros
    edit = TargetMotion(torch.tensor([30.0, 0.0]), zeros, zeros, torch.zeros(2, 3), torch.ones(2), torch.zeros(2, 1, 3))
    edited, original = step._template_pair(source, edit)
    points = step.template_points
    nose, right = int(points[:, 2].argmin()), int(points[:, 0].argmax())
    assert edited[0, nose, 0] - original[0, nose, 0] > 0.1 and edited[0, right, 0] - original[0, right, 0] < -0.02
    assert torch.allclose(edited[1], original[1])  # no edit, no motion


def test_keypoint_flow_trains_the_dense_motion_only():
    """Gradients into the keypoints let them chase their own targets (δ ran away in a CPU run)."""
    from mmfa_studio.model import MMFA
    from mmfa_studio.train import losses as L
    from mmfa_studio.train.step import GeneratorStep

    model_cfg, _ = tiny()
    torch.manual_seed(0)
    model = MMFA(model_cfg).train()
    step = GeneratorStep(model, pose_edits=(30.0, 20.0), face_template=True)
    x = torch.rand(2, 3, model_cfg.image_size, model_cfg.image_size)
    out = step(x, x, x, x)
    assert len(out.flow_targets) == 2
    sum(L.keypoint_flow_loss(*f) for f in out.flow_targets).backward()
    trained = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert trained == {"dense_motion"}


def test_render_expression_mean_renders_the_latent_mean_without_sampling_noise():
    """render_expression='mean' decodes μ for the training render: the same inputs give the same δ and image."""
    from mmfa_studio.model import MMFA
    from mmfa_studio.train.config import TrainConfig
    from mmfa_studio.train.step import GeneratorStep

    model_cfg, _ = tiny()
    torch.manual_seed(0)
    model = MMFA(model_cfg).train()
    x = torch.rand(2, 3, model_cfg.image_size, model_cfg.image_size)
    mean_step = GeneratorStep(model, render_expression="mean")
    first, second = mean_step(x, x, x, x), mean_step(x, x, x, x)
    assert torch.equal(first.render_delta, second.render_delta)
    assert torch.allclose(first.render_delta, first.views.mean_delta[6:8])  # the augmented frame's μ, decoded
    sampled = GeneratorStep(model)(x, x, x, x)
    assert not torch.allclose(sampled.render_delta, first.render_delta)
    with pytest.raises(ValueError, match="render_expression"):
        TrainConfig(render_expression="mode")


def test_tracked_change_replaces_the_read_driving_pose_where_labelled(blob_store, tmp_path):
    """driving_motion='tracker': the driving render moves the source's own pose by the labels' turn, zoom and
    shift, only in the pairs with labels; the others keep the encoder's reading. A short run trains with it."""
    from mmfa_studio.model import MMFA
    from mmfa_studio.model.mmfa import TargetMotion
    from mmfa_studio.train.config import TrainConfig
    from mmfa_studio.train.step import GeneratorStep, TrackedChange

    model_cfg, _ = tiny()
    torch.manual_seed(0)
    model = MMFA(model_cfg).eval()  # per-image normalisation: the step's batch and a lone encode agree
    step = GeneratorStep(model, render_expression="mean")
    source, driving = (torch.rand(2, 3, model_cfg.image_size, model_cfg.image_size) for _ in range(2))
    yes_no = torch.tensor([True, False])
    tracked = TrackedChange(turn=torch.tensor([[15.0, -5.0, 3.0]] * 2), has_turn=yes_no, zoom=torch.tensor([1.2, 1.2]),
                            shift=torch.tensor([[0.1, -0.05]] * 2), has_placement=yes_no)
    read = step(source, driving, driving, driving)
    moved = step(source, driving, driving, driving, tracked)
    assert torch.allclose(moved.render.keypoints[1], read.render.keypoints[1])
    # pair 0: the source's canonical keypoints in its own pose moved by the labels, with the driving frame's δ
    src, _ = model.encode_motion(source)
    expected = TargetMotion(src.yaw + 15, src.pitch - 5, src.roll + 3,
                            src.translation + torch.tensor([0.1, -0.05, 0.0]), src.scale * 1.2, moved.render_delta)
    kp, _ = model.pose_keypoints(moved.source.canonical, expected)
    assert torch.allclose(moved.render.keypoints[0], kp[0], atol=1e-5)
    assert not torch.allclose(moved.render.keypoints[0], read.render.keypoints[0], atol=1e-3)
    with pytest.raises(ValueError, match="driving_motion"):
        TrainConfig(driving_motion="webcam")
    model, cfg = tiny(driving_motion="tracker")
    assert Trainer(model, cfg, blob_store, options(tmp_path, max_steps=2)).run() == 2


def test_landmark_expression_moves_the_render_keypoints_by_the_landmarks_movement(blob_store, tmp_path):
    """train.landmark_expression: the driving render's keypoints move by the weighted landmark movement (exactly
    that, in the image plane), only in pairs with landmarks; without landmark data the trainer refuses."""
    from mmfa_studio.model import MMFA
    from mmfa_studio.model.landmark_motion import landmark_weights
    from mmfa_studio.train.config import TrainConfig
    from mmfa_studio.train.step import GeneratorStep, TrackedChange

    model_cfg, _ = tiny()
    torch.manual_seed(0)
    model = MMFA(model_cfg).eval()
    step = GeneratorStep(model, render_expression="mean")
    source, driving = (torch.rand(2, 3, model_cfg.image_size, model_cfg.image_size) for _ in range(2))
    yes_no = torch.tensor([True, False])
    labels = {"turn": torch.tensor([[10.0, 0.0, 0.0]] * 2), "has_turn": torch.ones(2, dtype=torch.bool),
              "zoom": torch.ones(2), "shift": torch.zeros(2, 2), "has_placement": torch.ones(2, dtype=torch.bool)}
    landmarks = torch.rand(2, 478, 2) * 1.6 - 0.8
    movement = torch.zeros(2, 478, 2)
    movement[:, :, 1] = 0.05  # every landmark moves down
    plain = step(source, driving, driving, driving, TrackedChange(**labels))
    moved = step(source, driving, driving, driving, TrackedChange(**labels, landmarks=landmarks,
                                                                  landmark_motion=movement, has_landmarks=yes_no))
    weights = landmark_weights(moved.source.keypoints[..., :2], landmarks, crop_width=2.0)
    expected = weights @ movement
    offset = moved.render.keypoints - plain.render.keypoints
    assert torch.allclose(offset[0, :, :2], expected[0], atol=1e-5) and expected[0].abs().max() > 1e-3
    assert offset[0, :, 2].abs().max() < 1e-5  # in the image plane only
    assert torch.allclose(offset[1], torch.zeros_like(offset[1]), atol=1e-6)  # no landmarks, no shift
    # the keypoint prior sees the model's own keypoints, not the shifted ones
    assert torch.allclose(moved.own_driving_keypoints, plain.render.keypoints, atol=1e-6)
    with pytest.raises(ValueError, match="driving_motion"):
        TrainConfig(landmark_expression=True)
    model, cfg = tiny(driving_motion="tracker", landmark_expression=True)
    with pytest.raises(ValueError, match="--landmarks"):
        Trainer(model, cfg, blob_store, options(tmp_path, max_steps=1))


def _tracked_portrait_store(sample_portrait) -> ArrayStore:
    """Three 64-px frames of the sample portrait with tracked landmarks: the lower lip drops in frame 1, frame 2
    has no face. (In-process: a loader worker forked after MediaPipe has started in this process can hang.)"""
    import cv2

    from mmfa_studio.face import create_tracker
    from mmfa_studio.train.landmarks import ClipLandmarks

    image = cv2.resize(cv2.cvtColor(cv2.imread(str(sample_portrait)), cv2.COLOR_BGR2RGB), (64, 64))
    tracker = create_tracker("mediapipe", max_faces=1)
    try:
        face = tracker.detect(cv2.resize(image, (256, 256)))[0].scaled(0.25)
    finally:
        tracker.close()
    points = np.stack([face.landmarks[:, :2]] * 3).astype(np.float32)
    points[1, [14, 87, 178, 317, 402], 1] += 1.0  # the lower lip drops in frame 1; frame 2 has no face
    tracked = ClipLandmarks(points=points, depth=np.stack([face.landmarks_3d[:, 2]] * 3).astype(np.float32),
                            pose=np.stack([face.pose.as_array()] * 3), found=np.array([True, True, False]))
    return ArrayStore({"face": np.stack([image] * 3)}, poses={"face": np.zeros((3, 3), np.float32)},
                      landmarks={"face": tracked})


def test_a_run_with_landmark_expression_trains_through_the_data_loader(sample_portrait, tmp_path):
    """The whole path: an ArrayStore with landmarks → PairDataset → the data loader → collate → TrackedChange →
    the render, with a frame that has no face. (In-process loading: a loader worker forked after MediaPipe
    has started in this process can hang.)"""
    store = _tracked_portrait_store(sample_portrait)
    model, cfg = tiny(driving_motion="tracker", landmark_expression=True)
    assert Trainer(model, cfg, store, options(tmp_path, max_steps=2)).run() == 2


def test_a_run_weighing_the_mouth_and_eyes_trains_through_the_data_loader(sample_portrait, tmp_path):
    """loss.expression_regions reads the driving frame's mesh through the loader; the term is logged."""
    store = _tracked_portrait_store(sample_portrait)
    model, cfg = tiny()
    cfg = dataclasses.replace(cfg, loss=dataclasses.replace(cfg.loss, expression_regions=10.0, painted_regions=5.0,
                                                                painted_l1=1.0))
    assert cfg.uses_landmarks
    lines: list[str] = []
    trainer = Trainer(model, dataclasses.replace(cfg, log_every=1), store,
                      options(tmp_path, max_steps=2, log=lines.append))
    assert trainer.run() == 2
    assert any("expression_regions" in line and "painted_regions" in line and "painted_l1" in line for line in lines)


def test_init_from_a_model_without_the_stretch_input_renders_as_it_did(blob_store, tmp_path):
    """generator_stretch added by --init-from: the new input channel starts at zero weight, every other weight
    is the file's, so the first render is the file's render."""
    from mmfa_studio.checkpoint import read_info, save_model
    from mmfa_studio.model import MMFA

    plain_cfg, cfg = tiny()
    plain_cfg = dataclasses.replace(plain_cfg, tps_motion=True)
    stretch_cfg = dataclasses.replace(plain_cfg, generator_stretch=True)
    torch.manual_seed(8)
    old = MMFA(plain_cfg).eval()
    path = tmp_path / "plain.safetensors"
    save_model(path, old, {"step": 3})
    trainer = Trainer(stretch_cfg, cfg, blob_store, options(tmp_path / "run", max_steps=3, init_from=path))
    assert trainer.run() == 3  # loaded, nothing trained
    grown = trainer.ema.eval()
    weight = grown.generator.inp.conv.weight
    assert weight[:, -1].abs().max() == 0 and torch.equal(weight[:, :-1], old.generator.inp.conv.weight)
    assert read_info(tmp_path / "run" / EMA_NAME).config == stretch_cfg
    image = torch.rand(1, 3, plain_cfg.image_size, plain_cfg.image_size)
    with torch.no_grad():
        src_old, src_new = old.encode_source(image), grown.encode_source(image)
        turned = lambda src: dataclasses.replace(src.own_motion, yaw=src.own_motion.yaw + 20)
        assert torch.allclose(old.render(src_old, turned(src_old)).image, grown.render(src_new, turned(src_new)).image,
                              atol=1e-5)


def test_anchor_points_join_the_training_render_where_both_frames_are_tracked():
    """train.anchor_points: the mesh anchors of the source and of the driving frame join the render's spline (the
    render changes with where the driving anchors lie), the keypoints keep the source's own δ, and a batch with an
    untracked pair renders without anchors."""
    from mmfa_studio.face.anchors import anchor_indices
    from mmfa_studio.model import MMFA
    from mmfa_studio.train.config import TrainConfig
    from mmfa_studio.train.step import GeneratorStep, TrackedChange

    model_cfg = dataclasses.replace(tiny()[0], tps_motion=True)  # the anchors join the spline
    torch.manual_seed(0)
    model = MMFA(model_cfg).eval()
    step = GeneratorStep(model, render_expression="mean")
    source, driving = (torch.rand(2, 3, model_cfg.image_size, model_cfg.image_size) for _ in range(2))
    labels = {"turn": torch.zeros(2, 3), "has_turn": torch.ones(2, dtype=torch.bool), "zoom": torch.ones(2),
              "shift": torch.zeros(2, 2), "has_placement": torch.ones(2, dtype=torch.bool)}
    landmarks = torch.rand(2, 478, 2) * 1.2 - 0.6
    opened = landmarks.clone()
    opened[:, [14, 87, 178, 317, 402], 1] += 0.15  # the lower lip drops
    tracked = lambda driving_landmarks, found: TrackedChange(
        **labels, landmarks=landmarks, landmark_motion=torch.zeros(2, 478, 2), has_landmarks=found,
        driving_landmarks=driving_landmarks, shift_keypoints=False)
    both = torch.ones(2, dtype=torch.bool)
    anchors = tracked(opened, both).anchor_points()
    assert anchors.source.shape == (2, len(anchor_indices()), 2)
    assert torch.equal(anchors.driving, opened[:, torch.as_tensor(anchor_indices())])
    assert tracked(opened, torch.tensor([True, False])).anchor_points() is None
    with torch.no_grad():
        still = step(source, driving, driving, driving, tracked(landmarks, both))
        moved = step(source, driving, driving, driving, tracked(opened, both))
        plain = step(source, driving, driving, driving, TrackedChange(**labels))
    assert (moved.image - still.image).abs().max() > 1e-3
    assert torch.allclose(moved.render_delta, moved.views.mean_delta[:2])  # the source's own δ
    assert not torch.allclose(plain.render_delta, moved.render_delta)  # without anchors: the driving frame's
    with pytest.raises(ValueError, match="driving_motion"):
        TrainConfig(anchor_points=True)
    with pytest.raises(ValueError, match="pair_candidates"):
        TrainConfig(pair_candidates=0)


def test_a_run_with_anchor_points_and_motion_pairs_trains_through_the_data_loader(sample_portrait, tmp_path):
    """anchor_points + pair_choice: motion through PairDataset → loader → TrackedChange → the render."""
    store = _tracked_portrait_store(sample_portrait)
    model, cfg = tiny(driving_motion="tracker", anchor_points=True, pair_choice="motion")
    with pytest.raises(ValueError, match="tps_motion"):
        Trainer(model, cfg, store, options(tmp_path / "refused", max_steps=1))
    model = dataclasses.replace(model, tps_motion=True)
    assert Trainer(model, cfg, store, options(tmp_path, max_steps=2)).run() == 2


def test_every_save_can_keep_a_numbered_ema_snapshot(blob_store, tmp_path):
    """checkpoint.pt is overwritten; numbered EMA snapshots keep the weights from before a late divergence."""
    model, cfg = tiny(keep_ema_snapshots=True)
    trainer = Trainer(model, cfg, blob_store, options(tmp_path, max_steps=2))
    assert trainer.run() == 2
    trainer.save_checkpoint("again")
    snapshot = tmp_path / "model_ema-step0000002.safetensors"
    assert snapshot.is_file() and snapshot.read_bytes() == (tmp_path / EMA_NAME).read_bytes()
    model, cfg = tiny()
    Trainer(model, cfg, blob_store, options(tmp_path / "plain", max_steps=2)).run()
    assert not list((tmp_path / "plain").glob("model_ema-step*"))
