"""The evaluation harness (course_lib.evaluate): cells, border split, caching, bad input."""

import math

import pytest
import torch

from course_lib import evaluate, masks, metrics
from course_lib.data import PhotoPatches


@pytest.fixture(scope="module")
def photos():
    return PhotoPatches(patch_size=64, split="test", seed=0).batch(0, 8)  # (8, 3, 64, 64)


def grey_fill(image, hole):
    return torch.full_like(image, 0.5)


def test_every_cell_is_scored_and_the_border_split_adds_up(photos, tmp_path):
    table = evaluate.evaluate(
        grey_fill, photos, ["box", "irregular"], per_band=10, cache_dir=tmp_path
    )
    assert table.kinds == ["box", "irregular"]
    for kind in table.kinds:
        for band in range(len(masks.COVERAGE_BANDS)):
            cells = {
                row["border"]: row
                for row in table.rows
                if row["kind"] == kind and row["band"] == band
            }
            assert cells["all"]["count"] == 10
            assert cells["border"]["count"] + cells["no border"]["count"] == 10
    # Boxes keep a margin, so the "border" cells are empty and say so.
    assert table.value("box", 0, "psnr", border="border") is None
    assert table.skipped == []


def test_a_cell_equals_the_metrics_computed_directly(photos, tmp_path):
    table = evaluate.evaluate(grey_fill, photos, "box", per_band=5, cache_dir=tmp_path)
    holes = masks.load_eval_set("box", 64, band=2)[:5]
    images = photos[[0, 1, 2, 3, 4]]
    composite = holes * 0.5 + (1 - holes) * images
    assert table.value("box", 2, "psnr") == pytest.approx(
        metrics.psnr(composite, images).mean().item(), abs=1e-5
    )
    assert table.value("box", 2, "ssim") == pytest.approx(
        metrics.ssim(composite, images).mean().item(), abs=1e-5
    )
    assert table.value("box", 2, "l1") == pytest.approx(
        metrics.l1(composite, images).mean().item(), abs=1e-6
    )


def test_errors_grow_with_the_hole(photos, tmp_path):
    table = evaluate.evaluate(grey_fill, photos, "mixed", per_band=8, cache_dir=tmp_path)
    psnrs = [table.value("mixed", band, "psnr") for band in range(6)]
    assert psnrs == sorted(psnrs, reverse=True)


def test_the_method_never_sees_the_hidden_pixels(photos, tmp_path):
    def copy_input(image, hole):
        return image  # a cheat: would be perfect if the hole still held the true pixels

    table = evaluate.evaluate(copy_input, photos, "box", per_band=4, cache_dir=tmp_path)
    assert table.value("box", 3, "psnr") < 20


def test_results_are_cached_and_the_key_follows_the_code(photos, tmp_path):
    calls = []

    def counted(image, hole):
        calls.append(1)
        return grey_fill(image, hole)

    first = evaluate.evaluate(counted, photos, "box", per_band=3, cache_dir=tmp_path)
    made = len(calls)
    second = evaluate.evaluate(counted, photos, "box", per_band=3, cache_dir=tmp_path)
    assert len(calls) == made and second.rows == first.rows  # served from the cache
    evaluate.evaluate(counted, photos[:4], "box", per_band=3, cache_dir=tmp_path)
    assert len(calls) > made  # other images, other key

    def counted_differently(image, hole):
        calls.append(1)
        return torch.zeros_like(image)

    assert evaluate.method_fingerprint(counted) != evaluate.method_fingerprint(counted_differently)


def test_module_weights_change_the_key():
    model = torch.nn.Conv2d(3, 3, 1)
    before = evaluate.method_fingerprint(model)
    with torch.no_grad():
        model.weight.add_(1)
    assert evaluate.method_fingerprint(model) != before


def test_an_all_hole_mask_is_reported_not_a_crash(photos):
    own = masks.generate("box", 4, 64, 64, coverage=0.25, seed=0)  # all in band 20-30%
    own[1] = 1  # an all-hole mask
    table = evaluate.evaluate(grey_fill, photos, {"own": own}, per_band=4, cache=False)
    assert table.skipped == [
        "own mask 1 (coverage 1.000): all hole: nothing to inpaint from; not scored"
    ]
    assert table.value("own", 2, "psnr", border="all") is not None  # the other three were scored
    assert table.value("own", 2, "l1", border="all") is not None
    assert [row["count"] for row in table.rows if row["band"] == 2 and row["border"] == "all"] == [
        3
    ]


def test_pairs_a_method_refuses_are_reported(photos):
    def refuses_large_holes(image, hole):
        if (hole.flatten(1).mean(dim=1) > 0.3).any():
            raise ValueError("hole too large for me")
        return grey_fill(image, hole)

    own = masks.generate("box", 4, 64, 64, coverage=0.25, seed=0)
    own[2] = masks.generate("box", 1, 64, 64, coverage=0.35, seed=1)[0]
    table = evaluate.evaluate(refuses_large_holes, photos, {"own": own}, per_band=4, cache=False)
    assert len(table.skipped) == 1 and "hole too large for me" in table.skipped[0]
    assert table.value("own", 2, "psnr") is not None  # the band 20-30% masks were scored
    assert table.value("own", 3, "psnr") is None  # its only 30-40% mask was refused


def test_bad_inputs_are_explained(photos):
    with pytest.raises(ValueError, match="no fixed evaluation set"):
        evaluate.evaluate(grey_fill, photos, "stars", cache=False)
    with pytest.raises(ValueError, match="draw masks at the image size"):
        evaluate.evaluate(grey_fill, photos, {"small": torch.zeros(2, 1, 32, 32)}, cache=False)
    with pytest.raises(ValueError, match="must be square"):
        evaluate.evaluate(grey_fill, photos[..., :48], "box", cache=False)
    with pytest.raises(RuntimeError, match="must return one"):
        evaluate.evaluate(lambda image, hole: image[:, :1], photos, "box", per_band=2, cache=False)


def test_text_tables_and_comparison(photos, tmp_path):
    grey = evaluate.evaluate(grey_fill, photos, "box", per_band=4, cache_dir=tmp_path)
    text = grey.format("psnr")
    assert text.splitlines()[0].startswith("grey_fill") and "10-20%" in text
    black = evaluate.evaluate(
        lambda i, h: torch.zeros_like(i),
        photos,
        "box",
        per_band=4,
        method="black",
        cache_dir=tmp_path,
    )
    table = evaluate.compare([grey, black], metric="ssim", kind="box")
    assert "grey_fill" in table and "black" in table and len(table.splitlines()) == 2 + 6
    figure = evaluate.plot([grey, black], metric="psnr", kind="box")
    assert len(figure.axes[0].lines) == 2 and not math.isnan(figure.axes[0].lines[0].get_ydata()[0])


def test_held_out_images_are_not_training_images():
    from course_lib.data import PhotoPatches, ProceduralScenes

    photos = evaluate.held_out_images("photos", 64, 4)
    scenes = evaluate.held_out_images("scenes", 64, 4)
    assert photos.shape == scenes.shape == (4, 3, 64, 64)
    assert not set(PhotoPatches(patch_size=64, split="test").photos) & set(
        PhotoPatches(patch_size=64, split="train").photos
    )
    training_scenes = ProceduralScenes(size=64, seed=0).batch(0, 4)[0]
    assert not torch.equal(scenes, training_scenes)
    with pytest.raises(ValueError, match="unknown held-out source"):
        evaluate.held_out_images("faces", 64, 4)
