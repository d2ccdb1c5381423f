"""The inpainting lab (course_lib.lab and widgets.inpainting_lab): functions and callbacks."""

import io

import pytest
import torch
from PIL import Image

from course_lib import baselines, lab, masks, metrics, widgets

FAST = ("telea", "biharmonic", "PConvUNet", "MAE")  # one of each family, quick to run


def test_lab_images_are_held_out_images():
    scene = lab.lab_image("scenes", 2)
    assert scene.shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="index must be"):
        lab.lab_image("photos", 64)
    with pytest.raises(ValueError, match="source must be"):
        lab.lab_image("faces", 0)


def test_an_uploaded_picture_is_centre_cropped_and_resized(tmp_path):
    picture = Image.new("RGB", (300, 100), (255, 0, 0))
    picture.paste((0, 0, 255), (100, 0, 200, 100))  # a blue centre square
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    image = lab.image_from_file(buffer.getvalue())
    assert image.shape == (1, 3, 64, 64)
    assert torch.allclose(image[0, :, 32, 32], torch.tensor([0.0, 0.0, 1.0]))  # only the centre
    path = tmp_path / "picture.png"
    picture.save(path)
    assert torch.equal(lab.image_from_file(path), image)
    with pytest.raises(ValueError, match="PNG or JPEG"):
        lab.image_from_file(b"not an image")


def test_drawing_boxes_and_dabs():
    hole = torch.zeros(1, 1, 64, 64)
    boxed = lab.add_box(hole, top=10, left=20, height=5, width=8)
    assert boxed.sum() == 40 and hole.sum() == 0  # a copy: the input is left alone
    assert boxed[0, 0, 10:15, 20:28].eq(1).all()
    clipped = lab.add_box(hole, top=60, left=60, height=10, width=10)
    assert clipped.sum() == 16  # clipped at the image's edge
    dab = lab.add_dab(boxed, row=40, column=40, radius=2)
    assert dab.sum() == 40 + 13  # a disc of radius 2 has 13 pixels
    assert dab[0, 0, 40, 42] == 1 and dab[0, 0, 42, 42] == 0
    with pytest.raises(ValueError, match="top must be"):
        lab.add_box(hole, top=64, left=0, height=1, width=1)


def test_run_lab_scores_every_method_on_the_composite():
    image = lab.lab_image("scenes", 1)
    hole = lab.lab_mask("box", 0.3, seed=2)
    result = lab.run_lab(image, hole, FAST)
    assert list(result.composites) == list(FAST)
    expected = masks.composite(image, hole, baselines.telea(image * (1 - hole), hole))
    assert torch.allclose(result.composites["telea"], expected)
    assert result.psnr["telea"] == pytest.approx(metrics.psnr(expected, image).item(), abs=1e-3)
    for composite in result.composites.values():
        known = hole.expand_as(image) == 0
        assert torch.equal(composite[known], image[known])
    assert result.best("psnr") in FAST and "coverage 0.3" in result.summary()


def test_run_lab_refuses_bad_input():
    image = lab.lab_image("photos", 0)
    with pytest.raises(ValueError, match="leaves some pixels known|covers 0%"):
        lab.run_lab(image, torch.zeros(1, 1, 64, 64), FAST)
    with pytest.raises(ValueError, match="64x64"):
        lab.run_lab(torch.rand(1, 3, 32, 32), torch.ones(1, 1, 32, 32), FAST)
    with pytest.raises(ValueError, match="unknown method"):
        lab.run_lab(image, lab.lab_mask("box", 0.2), ("magic",))


def test_quality_curve_has_one_point_per_coverage():
    curves = lab.quality_curve(lab.lab_image("scenes", 0), "box", (0.1, 0.4), ("biharmonic",))
    assert list(curves) == ["biharmonic"] and len(curves["biharmonic"]) == 2
    assert curves["biharmonic"][0] > curves["biharmonic"][1]  # bigger holes, lower PSNR


def test_lab_tables_score_each_method_by_band(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    tables = lab.lab_tables("scenes", ("box",), ("biharmonic", "PConvUNet"), per_band=2)
    assert [table.method for table in tables] == ["biharmonic", "PConvUNet"]
    assert tables[0].row("box", 0)["count"] == 2


def test_uploaded_bytes_reads_both_ipywidgets_formats():
    assert widgets.uploaded_bytes(()) is None and widgets.uploaded_bytes({}) is None
    eight = ({"name": "a.png", "content": memoryview(b"abc")},)
    seven = {"a.png": {"content": b"abc", "metadata": {}}}
    assert widgets.uploaded_bytes(eight) == b"abc" == widgets.uploaded_bytes(seven)


def test_the_lab_widget_follows_its_controls():
    box = widgets.inpainting_lab(methods=("telea", "PConvUNet"))
    first = box.children[4].value
    assert box.result is not None and list(box.result.composites) == ["telea", "PConvUNet"]
    box.controls["coverage"].value = 0.5
    assert abs(box.result.coverage - 0.5) <= masks.COVERAGE_TOLERANCE
    assert box.children[4].value != first  # the picture changed
    box.controls["source"].value = "scenes"
    box.controls["index"].value = 3
    assert torch.equal(box.result.image, lab.lab_image("scenes", 3))

    box.controls["mode"].value = widgets.DRAWN
    assert "cannot inpaint yet" in box.children[5].value  # nothing drawn yet
    box.controls["top"].value, box.controls["left"].value = 8, 8
    box.controls["height"].value, box.controls["width"].value = 10, 20
    box.buttons["box"].click()
    assert box.result.hole.sum() == 200
    box.buttons["dab"].click()
    assert box.result.hole.sum() > 200
    box.buttons["clear"].click()
    assert box.drawn.sum() == 0

    box.controls["mode"].value = "irregular"
    box.buttons["curve"].click()
    assert set(box.curves) == {"telea", "PConvUNet"} and len(box.curves["telea"]) == 6


def test_the_upload_path_of_the_widget():
    box = widgets.inpainting_lab(methods=("telea",))
    box.controls["source"].value = "upload"
    assert "upload button" in box.children[5].value


def test_run_lab_scores_a_network_left_in_training_mode_in_eval_mode():
    image = lab.lab_image("photos", 0)
    hole = lab.lab_mask("box", 0.3)
    reference = lab.run_lab(image, hole, ["PConvUNet"])
    network = lab.learned_model("PConvUNet")
    running = [buffer.clone() for buffer in network.buffers()]
    network.train()
    try:
        again = lab.run_lab(image, hole, ["PConvUNet"])
        assert network.training  # its mode is given back
        assert all(torch.equal(a, b) for a, b in zip(running, network.buffers(), strict=True))
    finally:
        network.eval()
    assert again.psnr == reference.psnr
