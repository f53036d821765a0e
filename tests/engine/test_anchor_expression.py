"""An anchor expression model in the engine: the source's anchors and code, named controls, renders that move."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from mmfa_studio.checkpoint import save_model
from mmfa_studio.engine import Engine, Motion
from mmfa_studio.model import MMFA
from mmfa_studio.motion import CONTROLS_KEY, ExpressionControls


@pytest.fixture(scope="module")
def anchor_engine(tmp_path_factory, tiny_config):
    torch.manual_seed(0)
    # 128 px (a face the tracker finds in the crop), the spline on, a small anchor VAE whose decoder moves the
    # anchors visibly; the controls are two latent steps.
    cfg = replace(tiny_config, image_size=128, feature_size=32, detector_size=128, tps_motion=True,
                  anchor_latent_dim=4, anchor_hidden=16)
    model = MMFA(cfg)
    torch.nn.init.normal_(model.anchor_expression.decoder[-1].weight, std=0.5)
    model.anchor_expression.scale.fill_(0.05)
    path = tmp_path_factory.mktemp("anchor") / "anchor.safetensors"
    controls = ExpressionControls({"mouth_open": [2.0, 0.0, 0.0, 0.0], "brows": [0.0, 2.0, 0.0, 0.0]})
    save_model(path, model, {CONTROLS_KEY: controls.to_json()})
    with Engine.load(path, device="cpu", precision="fp32") as engine:
        yield engine


def test_a_source_carries_its_anchors_and_their_code(anchor_engine, sample_portrait):
    source = anchor_engine.prepare_source(sample_portrait)
    assert source.anchors is not None
    assert anchor_engine.latent_dim == 4 and source.expression.shape == (4,)
    assert np.allclose(source.expression, source.anchors.code)


def test_zero_edit_is_the_plain_render_and_a_control_moves_the_face(anchor_engine, sample_portrait):
    source = anchor_engine.prepare_source(sample_portrait)
    plain = anchor_engine.render(source, Motion()).crop
    own = anchor_engine.render(source, Motion(expression=tuple(map(float, source.expression)))).crop
    assert np.abs(plain.astype(int) - own.astype(int)).max() <= 1  # decode(z_src) − decode(z_src) = 0
    z = anchor_engine.expressions.with_controls(source.expression, {"mouth_open": 1.0})
    assert np.allclose(z - source.expression, [2.0, 0.0, 0.0, 0.0], atol=1e-6)
    moved = anchor_engine.render(source, Motion(expression=tuple(map(float, z)))).crop
    assert np.abs(moved.astype(int) - plain.astype(int)).mean() > 0.05
    with pytest.raises(ValueError, match="unknown expression control"):
        anchor_engine.expressions.with_controls(source.expression, {"grin": 1.0})
    assert anchor_engine.expressions.reach(2.0) > 0


def test_reenactment_reads_the_drivers_expression_through_the_anchor_vae(anchor_engine, sample_portrait):
    from mmfa_studio.engine import Reenactor
    from mmfa_studio.face import load_image

    source = anchor_engine.prepare_source(sample_portrait)
    frame = load_image(sample_portrait)
    with Reenactor(anchor_engine, source, smoothing=0.0) as reenactor:
        results = [reenactor.process(frame) for _ in range(2)]
    assert all(r.face_found for r in results)
    driver = anchor_engine.expressions.of_face(anchor_engine.tracker.detect(frame)[0])
    # The reading is the mesh's code (the video tracker's mesh differs a little from the still one's) …
    assert driver is not None and np.allclose(results[-1].driving_expression, driver, atol=0.1)
    # … and the same frame as its own reference moves the anchors (almost) not at all (the video tracker refines
    # its mesh between the two frames: by less than 1 % of the eyes' distance)
    vae = anchor_engine.model.anchor_expression
    with torch.no_grad():
        change = vae.decode(torch.as_tensor(np.stack([results[-1].motion.expression, source.expression]),
                                            dtype=torch.float32))
    assert float((change[0] - change[1]).norm(dim=-1).max()) < 0.01


def test_lids_and_lips_are_never_taken_past_each_other():
    """A blink made for the average eye crossed a narrow eye's lids and the render showed it inside out: the
    driving anchors keep each facing pair apart, but never open what the source holds closed."""
    import torch

    from mmfa_studio.engine.anchors import keep_lids_apart
    from mmfa_studio.face.anchors import closing_pairs, mean_face_anchors

    source = torch.as_tensor(mean_face_anchors()[:, :2], dtype=torch.float32)[None] * 0.4
    eye, _, lips = closing_pairs()
    crossed = source.clone()
    crossed[:, eye.upper, 1] = source[:, eye.lower, 1] + 0.01  # the upper lid pushed below the lower one
    kept = keep_lids_apart(source, crossed)
    axis = source[0, eye.corners[1]] - source[0, eye.corners[0]]
    width = axis.norm()
    normal = torch.stack([-axis[1], axis[0]]) / width * torch.sign(axis[0])  # pointing down the face
    gap = (kept[0, eye.lower] - kept[0, eye.upper]) @ normal  # across the corners' line
    assert gap.min() >= eye.least_gap * width - 1e-5 and gap.max() < eye.least_gap * width + 1e-5
    untouched = [i for i in range(source.shape[1]) if i not in set(eye.upper) | set(eye.lower)]
    assert torch.equal(kept[:, untouched], crossed[:, untouched])
    # an open pair is left alone, and a mouth the source holds shut is not pried open
    assert torch.equal(keep_lids_apart(source, source), source)
    shut = source.clone()
    shut[:, lips.lower] = shut[:, lips.upper]
    assert torch.allclose(keep_lids_apart(shut, shut), shut)


def test_reenactment_code_moves_the_anchors_as_the_drivers_moved(anchor_engine, sample_portrait):
    """The encoder reads one face at a time; reenactment's code is refined on the decoder so that the source's
    anchors move by the driver's change since its reference, which the encoder's relative code misses."""
    from mmfa_studio.face import Face
    from mmfa_studio.face.anchors import anchor_indices, canonical_anchors
    from mmfa_studio.face.pose import canonical_face

    vae = anchor_engine.model.anchor_expression
    source = anchor_engine.prepare_source(sample_portrait)
    mesh = canonical_face().points[:468] * 100.0 + 300.0  # a frontal face in pixels
    reference = Face(np.zeros(4), mesh[:, :2], 1.0, landmarks_3d=mesh)
    with torch.no_grad():  # a change the decoder can make: the one towards a known latent
        reachable = (vae.decode(torch.as_tensor(source.expression)[None] + 1.5)
                     - vae.decode(torch.as_tensor(source.expression)[None]))[0].numpy()
    layout = canonical_anchors(mesh)
    moved = mesh.copy()
    moved[anchor_indices()] = (layout + reachable - layout.mean(0)) * 100.0 + mesh[anchor_indices()].mean(0)
    driving = Face(np.zeros(4), moved[:, :2], 1.0, landmarks_3d=moved)
    wanted = canonical_anchors(moved) - layout

    def miss(z):
        with torch.no_grad():
            change = vae.decode(torch.as_tensor(z, dtype=torch.float32)[None]) - vae.decode(
                torch.as_tensor(source.expression)[None])
        return float(np.abs(change[0].numpy() - wanted).mean())

    codes = [anchor_engine.expressions.of_face(f) for f in (reference, driving)]
    encoded = source.expression + codes[1] - codes[0]
    followed = anchor_engine.expressions.relative(source.expression, reference, driving)
    assert followed is not None and followed.shape == (4,)
    assert miss(followed) < 0.5 * miss(encoded)
    # no change, no edit; and a face without a mesh gives no code
    same = anchor_engine.expressions.relative(source.expression, reference, reference)
    assert np.abs(same - source.expression).max() < 1e-3
    assert anchor_engine.expressions.relative(source.expression, reference, replace(driving, landmarks_3d=None)) is None


def test_a_photos_code_opens_the_sources_mouth_and_eyes_as_far_as_the_photos(anchor_engine, sample_portrait):
    """The encoder reads one face at a time, so its code of a photo opens another person's mouth only part of the
    way: for a source it is refined on the two openings (gap over width) of the photo."""
    from mmfa_studio.engine.anchors import OPENINGS, match_openings
    from mmfa_studio.face.anchors import anchor_measures

    vae = anchor_engine.model.anchor_expression
    source = anchor_engine.prepare_source(sample_portrait)
    own = torch.as_tensor(source.expression)[None]
    with torch.no_grad():  # the photo: the source's own face with a change the decoder can make
        photo = source.anchors.face.layout + (vae.decode(own + 1.5) - vae.decode(own))[0].numpy()

    def openings(z):
        with torch.no_grad():
            layout = source.anchors.face.layout + (vae.decode(torch.as_tensor(z, dtype=torch.float32)[None])
                                                   - vae.decode(own))[0].numpy()
        return np.array([float(anchor_measures(layout)[name]) for name in OPENINGS])

    wanted = np.array([float(anchor_measures(photo)[name]) for name in OPENINGS])
    start = source.expression + 0.3  # an encoder that reads a fifth of the change
    matched = match_openings(vae, source.anchors, photo, start)
    assert matched.shape == (4,)
    assert np.abs(openings(matched) - wanted).max() < 0.2 * np.abs(openings(start) - wanted).max()
    # a photo with the source's own openings asks for nothing
    same = match_openings(vae, source.anchors, source.anchors.face.layout, source.expression)
    assert np.abs(same - source.expression).max() < 1e-3


def test_a_drivers_blink_closes_the_sources_eye_in_proportion_and_a_widening_adds():
    """Openings for reenactment: a driver who halves an eye's opening halves the source's (whatever its size),
    one who widens it adds the same ratio (a factor from a squinting reference made the eyes bulge)."""
    from mmfa_studio.engine.anchors import OPENINGS, OpeningTargets
    from mmfa_studio.face.anchors import anchor_measures, closing_pairs, mean_face_anchors

    def with_eyes(layout, factor):  # both eyes' lids opened by ``factor`` about their middle line
        out = layout.copy()
        for pair in closing_pairs()[:2]:
            middle = (out[pair.upper] + out[pair.lower]) / 2
            out[pair.upper] = middle + factor * (out[pair.upper] - middle)
            out[pair.lower] = middle + factor * (out[pair.lower] - middle)
        return out

    measure = lambda layout: np.array([float(anchor_measures(layout)[name]) for name in OPENINGS])
    face = mean_face_anchors()
    reference, source = face, with_eyes(face, 0.6)  # a narrower-eyed source
    closing = OpeningTargets.following(source, reference, with_eyes(face, 0.5))
    assert np.allclose(closing.wanted[1:], measure(source)[1:] * 0.5, rtol=0.05)
    assert np.isclose(closing.wanted[0], measure(source)[0], atol=1e-6)  # the mouth did not move
    widening = OpeningTargets.following(source, reference, with_eyes(face, 1.5))
    change = measure(with_eyes(face, 1.5))[1:] - measure(reference)[1:]
    assert np.allclose(widening.wanted[1:], measure(source)[1:] + change, rtol=0.05)


class _LidVAE:
    """A stand-in anchor VAE whose latent's first value drops both eyes' upper lids by 0.1 canonical units."""

    def __init__(self):
        from mmfa_studio.face.anchors import closing_pairs, mean_face_anchors

        self.neutral = torch.as_tensor(mean_face_anchors(), dtype=torch.float32)
        self.scale = torch.ones(())
        self.drop = torch.zeros_like(self.neutral)
        for eye in closing_pairs()[:2]:
            self.drop[eye.upper, 1] = 0.1  # y points down

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z[..., :1, None] * self.drop


def test_a_blink_closes_a_wide_eye_as_fully_as_the_mean_faces():
    """Fitted to a face whose eyes open 1.5× as wide as the mean face's, ``blink`` steps 1.5× as far, so the eyes
    close by the mean face's factor; the controls that open nothing stay as they were."""
    from mmfa_studio.engine.anchors import SourceAnchors, fitted_controls
    from mmfa_studio.face.anchors import FaceAnchors, anchor_measures, closing_pairs

    vae = _LidVAE()
    wide = vae.neutral.clone()
    for eye in closing_pairs()[:2]:
        middle = (wide[eye.upper] + wide[eye.lower]) / 2
        wide[eye.upper] = middle + 1.5 * (wide[eye.upper] - middle)
        wide[eye.lower] = middle + 1.5 * (wide[eye.lower] - middle)
    layout = wide.numpy()
    anchors = SourceAnchors(FaceAnchors(layout, layout, np.eye(3)), np.zeros(2, dtype=np.float32))
    controls = ExpressionControls({"blink": [1.0, 0.0], "brows": [0.0, 1.0]})
    fitted = fitted_controls(vae, anchors, controls)
    assert fitted.directions["brows"] == [0.0, 1.0]
    assert fitted.directions["blink"][0] == pytest.approx(1.5, abs=0.05)
    closed = lambda layout, z: float(anchor_measures(layout + vae.decode(torch.tensor([z, 0.0])))["eye_open_left"])
    mean_factor = closed(vae.neutral, 1.0) / closed(vae.neutral, 0.0)
    assert closed(wide, fitted.directions["blink"][0]) / closed(wide, 0.0) == pytest.approx(mean_factor, abs=0.03)


def test_sources_carry_their_fitted_controls(anchor_engine, sample_portrait):
    from mmfa_studio.engine.anchors import CONTROL_STRENGTHS

    source = anchor_engine.prepare_source(sample_portrait)
    fitted, fitted_for_all = source.controls, anchor_engine.expressions.controls
    assert fitted is not None and fitted.directions["brows"] == fitted_for_all.directions["brows"]
    strength = fitted.directions["mouth_open"][0] / fitted_for_all.directions["mouth_open"][0]
    assert np.isclose(CONTROL_STRENGTHS, strength).any()
    z = anchor_engine.expressions.with_controls(source.expression, {"mouth_open": 1.0}, source)
    assert np.allclose(z - source.expression, fitted.directions["mouth_open"], atol=1e-6)


def test_eye_openings_close_the_sources_lids_in_the_render(anchor_engine, sample_portrait):
    """``render(eye_openings=…)`` moves the lids after the latent: the source's own openings change nothing, shut
    eyes change the eyes and not the mouth; a batch takes one per motion."""
    from mmfa_studio.face.anchors import anchor_measures, closing_pairs

    source = anchor_engine.prepare_source(sample_portrait)
    own = anchor_measures(source.anchors.face.layout)
    plain = anchor_engine.render(source, Motion()).crop.astype(int)
    same = anchor_engine.render(source, Motion(), eye_openings=np.array(
        [float(own["eye_open_left"]), float(own["eye_open_right"])])).crop.astype(int)
    assert np.abs(same - plain).max() <= 1
    shut = anchor_engine.render(source, Motion(), eye_openings=np.array([0.02, 0.02])).crop.astype(int)
    size = anchor_engine.image_size

    def change_around(rows):  # mean |difference| in the box around some anchors, grown by 3 px
        xy = (source.anchors.face.points[rows, :2] + 1.0) * size / 2 - 0.5
        (x0, y0), (x1, y1) = np.floor(xy.min(0)).astype(int) - 3, np.ceil(xy.max(0)).astype(int) + 3
        return np.abs(shut - plain)[max(y0, 0):y1, max(x0, 0):x1].mean()

    right_eye, left_eye, mouth = closing_pairs()
    for eye in (right_eye, left_eye):
        assert change_around(np.r_[eye.upper, eye.lower]) > 1.0
    assert change_around(np.r_[mouth.upper, mouth.lower]) < 0.25 * change_around(np.r_[left_eye.upper, left_eye.lower])
    batch = anchor_engine.render_batch(source, [Motion(), Motion()], eye_openings=[None, np.array([0.02, 0.02])])
    assert np.abs(batch[0].crop.astype(int) - plain).max() <= 1
    assert np.abs(batch[1].crop.astype(int) - shut).max() <= 1
    with pytest.raises(ValueError, match="eye openings"):
        anchor_engine.render_batch(source, [Motion()], eye_openings=[None, None])


def test_reenactment_closes_the_sources_eyes_by_the_drivers_factor(anchor_engine, sample_portrait, monkeypatch):
    """A driver whose lids close to half their opening asks the source's eyes for half of theirs, and
    reenactment renders with those openings (the driver's own reference frame asks for the source's own)."""
    from mmfa_studio.engine import Reenactor
    from mmfa_studio.engine.anchors import OpeningTargets
    from mmfa_studio.face import Face, load_image
    from mmfa_studio.face.anchors import anchor_indices, anchor_measures, canonical_anchors, with_eye_openings
    from mmfa_studio.face.pose import canonical_face

    source = anchor_engine.prepare_source(sample_portrait)
    own = anchor_measures(source.anchors.face.layout)
    own = np.array([float(own["eye_open_left"]), float(own["eye_open_right"])])
    mesh = canonical_face().points[:468] * 100.0 + 300.0
    reference = Face(np.zeros(4), mesh[:, :2], 1.0, landmarks_3d=mesh)
    layout = canonical_anchors(mesh)
    ref_eyes = anchor_measures(layout)
    halved = with_eye_openings(layout, [0.5 * float(ref_eyes[f"eye_open_{side}"]) for side in ("left", "right")])
    blinking = mesh.copy()
    blinking[anchor_indices()] = (halved - layout.mean(0)) * 100.0 + mesh[anchor_indices()].mean(0)
    driving = Face(np.zeros(4), blinking[:, :2], 1.0, landmarks_3d=blinking)
    wanted = anchor_engine.expressions.following_eyes(source.anchors, reference, driving)
    assert wanted is not None and np.allclose(wanted, 0.5 * own, rtol=0.03)
    assert np.allclose(anchor_engine.expressions.following_eyes(source.anchors, reference, reference), own, rtol=0.03)
    assert anchor_engine.expressions.following_eyes(None, reference, driving) is None
    # a frame's targets are worked out once for the latent (relative) and the lids (following_eyes)
    targets = OpeningTargets.following
    computed = []
    monkeypatch.setattr(OpeningTargets, "following",
                        classmethod(lambda cls, *layouts: computed.append(1) or targets(*layouts)))
    again = Face(np.zeros(4), blinking[:, :2], 1.0, landmarks_3d=blinking.copy())
    anchor_engine.expressions.relative(source.expression, reference, again, source.anchors)
    assert np.allclose(anchor_engine.expressions.following_eyes(source.anchors, reference, again), wanted)
    assert len(computed) == 1
    monkeypatch.undo()

    asked = []
    render = anchor_engine.render
    monkeypatch.setattr(anchor_engine, "render", lambda *a, **k: asked.append(k.get("eye_openings")) or render(*a, **k))
    frame = load_image(sample_portrait)
    with Reenactor(anchor_engine, source, smoothing=0.0) as reenactor:
        reenactor.process(frame)
        reenactor.process(frame)
    with Reenactor(anchor_engine, source, smoothing=0.0, mode="absolute") as reenactor:
        reenactor.process(frame)
    assert asked[0] is not None and np.allclose(asked[1], own, rtol=0.1)  # the reference itself: the source's own
    assert asked[2] is None  # absolute mode takes the driver's code as it is
