"""Issue 20.3: reenacting a tightly framed 256 px portrait (VoxCeleb framing: the model's crop reaches past the
photo's bottom edge) must not draw the photo's last row down the crop as vertical stripes."""

from __future__ import annotations

import cv2
import imageio.v3 as iio
import numpy as np
import pytest

from mmfa_studio.assets import BUNDLED_MODEL
from mmfa_studio.face import box_transform, create_tracker, crop_box, load_image, pixel_aligned_box

from .test_engine_commands import run

# A column "repeats one colour" below the photo when its pixels there vary by less than FLAT (std, 8-bit levels,
# the largest of R, G, B) while as many rows just inside the photo vary by TEXTURED or more (a plain backdrop is
# flat on both sides of the edge, rightly). Measured on this portrait: 201 of 256 columns with the edge pixels
# repeated, 0 with the softened mirror; on a VoxCeleb frame (lia__vox-driving1, frame 10): 223 and 0.
FLAT, TEXTURED = 2.0, 4.0


@pytest.fixture(scope="module")
def tight_portrait(tmp_path_factory, sample_portrait):
    """The sample cut to a VoxCeleb-style 256 px frame: hair to chin fills it, the suit is cut off below."""
    image = load_image(sample_portrait)
    path = tmp_path_factory.mktemp("tight") / "tight.png"
    tight = cv2.resize(image[4:178, 137:311], (256, 256), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(tight, cv2.COLOR_RGB2BGR))
    return path


OUTPUT = 512  # reenact's default --output-size


def rows_below_the_photo(photo) -> np.ndarray:
    """Output rows (OUTPUT px crop) that lie below the photo's bottom edge, as the engine frames the face."""
    image = load_image(photo)
    tracker = create_tracker()
    try:
        transform = box_transform(pixel_aligned_box(crop_box(tracker.detect(image)[0])), OUTPUT, image.shape)
    finally:
        tracker.close()
    inv = transform.inverse
    rows = np.arange(OUTPUT)
    return rows[inv[1, 1] * rows + inv[1, 2] > image.shape[0] - 0.5]


def streaks(frame: np.ndarray, rows: np.ndarray) -> int:
    """Columns that repeat one colour below the photo but not in the rows just above its edge."""
    def spread(band: np.ndarray) -> np.ndarray:
        return frame[band].astype(np.float64).std(axis=0).max(axis=-1)

    return int(((spread(rows) < FLAT) & (spread(rows - len(rows)) >= TEXTURED)).sum())


@pytest.mark.slow
@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason=f"no bundled model at {BUNDLED_MODEL}")
def test_no_output_column_below_a_tight_portrait_repeats_one_colour(capsys, tmp_path, tight_portrait, cli_ntsc_clip):
    rows = rows_below_the_photo(tight_portrait)
    assert len(rows) >= 0.1 * OUTPUT  # the crop reaches well past the photo (~15 % of its side)
    out = tmp_path / "tight.mp4"
    code, _, _ = run(capsys, "reenact", tight_portrait, cli_ntsc_clip, "-o", out, "--max-frames", 2, "--no-audio",
                     "--precision", "fp32", "--quiet")
    assert code == 0
    frames = iio.imread(out)
    assert frames.shape[1:] == (OUTPUT, OUTPUT, 3)
    assert [streaks(f, rows) for f in frames] == [0] * len(frames)
