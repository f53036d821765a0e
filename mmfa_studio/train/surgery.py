"""``--init-from`` an inference checkpoint (.safetensors, e.g. a bundled model): its weights fitted to the run's
architecture where the run changes something that holds weights.

Handled: a learned-depth model moving to the face template (depth head reset), a model without the
thin-plate-spline proposal gaining one, and a generator gaining the flow-stretch input (``generator_stretch``).
Settings that hold no weights (e.g. max_delta) may simply differ.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ..model import MMFA, ModelConfig
from ..model.dense_motion import add_tps_proposal

# When --init-from adds the spline proposal to a model without one: its starting mask logit, large enough that
# the spline takes about half of the mask at once (models/MODEL_CARD.md has the comparison behind it).
TPS_INIT_LOGIT = 10.0


def fit_to_run(state: dict[str, Tensor], file_cfg: ModelConfig, run_model: MMFA) -> list[str]:
    """Change ``state`` (a model of ``file_cfg``) in place so it loads into ``run_model``; one note per change."""
    run_cfg = run_model.cfg
    notes = []
    if file_cfg.keypoint_depth == "learned" and run_cfg.keypoint_depth == "template":
        # A learned depth head predicts absolute depths; the template's residual head starts from zero instead.
        detector = run_model.keypoint_detector
        state["keypoint_detector.depth_template"] = detector.depth_template.detach().cpu().clone()
        state["keypoint_detector.depth.weight"] = torch.zeros_like(state["keypoint_detector.depth.weight"])
        state["keypoint_detector.depth.bias"] = torch.zeros_like(state["keypoint_detector.depth.bias"])
        notes.append("learned depth replaced by the face template, depth head reset")
    if run_cfg.tps_motion and not file_cfg.tps_motion:
        prefix = "dense_motion."
        old = {k[len(prefix):]: state.pop(k) for k in list(state) if k.startswith(prefix)}
        grown = add_tps_proposal(old, run_model.dense_motion, TPS_INIT_LOGIT)
        state.update({prefix + k: v for k, v in grown.items()})
        notes.append(f"thin-plate-spline motion proposal added (mask logit {TPS_INIT_LOGIT:g})")
    if run_cfg.generator_stretch and not file_cfg.generator_stretch:
        # The stretch map is the generator's last input channel; zero weights render exactly as the file did.
        name = "generator.inp.conv.weight"
        state[name] = torch.cat([state[name], torch.zeros_like(state[name][:, :1])], dim=1)
        notes.append("flow-stretch input added to the generator (zero weights)")
    return notes


def load_inference_weights(path: Path, model_cfg: ModelConfig, *targets: MMFA) -> tuple[int, str]:
    """Load the file's generator into each of ``targets`` (the run's models, of ``model_cfg`` at any training
    size); returns the file's training step and a note of what was changed (empty, or "; …" parts)."""
    from ..checkpoint import CheckpointError, load_model

    try:
        model, info = load_model(path)
    except CheckpointError as exc:
        raise ValueError(str(exc)) from None
    file_cfg = info.config
    state = model.state_dict()
    notes = fit_to_run(state, file_cfg, targets[0])
    changed = [k for k in model_cfg.differences(file_cfg) if k not in ("image_size", "feature_size")]
    try:
        for target in targets:
            target.load_state_dict(state)
    except RuntimeError:
        raise ValueError(f"{path} does not fit this run's model (config differs in: {', '.join(changed)})") from None
    if changed:
        notes.append("config changes " + ", ".join(f"{k} {getattr(file_cfg, k)} → {getattr(model_cfg, k)}"
                                                   for k in changed))
    return int(info.metadata.get("step", 0)), "".join(f"; {n}" for n in notes)


__all__ = ["TPS_INIT_LOGIT", "fit_to_run", "load_inference_weights"]
