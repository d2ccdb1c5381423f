"""Data sets (course_lib.data): procedural scenes, photo patches, real-data loaders."""

import math
import pickle
import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

from course_lib import data
from course_lib.data import (
    BACKGROUNDS,
    PHOTOS,
    SHAPES,
    TEST_PHOTOS,
    PhotoPatches,
    ProceduralScenes,
    Shape,
    Texture,
    object_masks,
    real_images,
    render_texture,
    shape_mask,
)

# ---------------------------------------------------------------------------------------------
# ProceduralScenes
# ---------------------------------------------------------------------------------------------


def test_scene_items_depend_only_on_seed_and_index():
    scenes = ProceduralScenes(size=32, length=20, seed=3)
    image, labels = scenes[7]
    again_image, again_labels = ProceduralScenes(size=32, length=20, seed=3)[7]
    assert torch.equal(image, again_image) and torch.equal(labels, again_labels)
    # Reading other items first (or reading in a batch) changes nothing.
    scenes[0], scenes[19]
    assert torch.equal(scenes[7][0], image)
    assert torch.equal(scenes.batch(5, 4)[0][2], image)
    other_image, _ = ProceduralScenes(size=32, length=20, seed=4)[7]
    assert not torch.allclose(image, other_image)
    assert not torch.allclose(image, scenes[8][0])


def test_scene_items_have_the_course_layout():
    scenes = ProceduralScenes(size=64, length=30, seed=0, max_objects=4)
    for index in range(30):
        image, labels = scenes[index]
        assert image.shape == (3, 64, 64) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1
        assert labels.shape == (64, 64) and labels.dtype == torch.int64
        assert 1 <= labels.max() <= 4 and labels.min() >= 0
        assert image.std() > 0.05  # a scene, not a flat colour


def test_object_count_follows_max_objects():
    single = ProceduralScenes(size=32, length=10, max_objects=1)
    assert all(int(single[index][1].max()) == 1 for index in range(10))
    counts = {int(labels.max()) for labels in ProceduralScenes(size=32, length=40).batch(0, 40)[1]}
    assert counts == {1, 2, 3, 4}


def test_object_masks_partition_the_objects():
    scenes = ProceduralScenes(size=48, length=12, seed=1)
    for index in range(12):
        _, labels = scenes[index]
        masks = object_masks(labels)
        count = int(labels.max())
        assert masks.shape == (count, 1, 48, 48) and masks.dtype == torch.float32
        assert ((masks == 0) | (masks == 1)).all()
        # Disjoint, covering exactly the non-background pixels, none empty.
        assert torch.equal(masks.sum(dim=0)[0], (labels > 0).float())
        assert (masks.sum(dim=(1, 2, 3)) > 0).all()
        for k in range(count):
            assert torch.equal(masks[k, 0].bool(), labels == k + 1)


def test_object_masks_of_a_batch_pad_to_the_largest_count():
    _, labels = ProceduralScenes(size=32, length=8, seed=2).batch(0, 8)
    masks = object_masks(labels)
    largest = int(labels.max())
    assert masks.shape == (8, largest, 1, 32, 32)
    for b in range(8):
        own = object_masks(labels[b])
        assert torch.equal(masks[b, : own.shape[0]], own)
        assert masks[b, own.shape[0] :].sum() == 0


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.zeros(1, 1, 4, 4, dtype=torch.int64), r"\(H, W\) or \(B, H, W\)"),
        (torch.zeros(4, 4), "integers"),
        (torch.full((4, 4), -1), ">= 0"),
    ],
)
def test_object_masks_reject_bad_labels(labels, message):
    with pytest.raises(ValueError, match=message):
        object_masks(labels)


def test_later_objects_cover_earlier_ones():
    scene = data.Scene(
        background=Texture("flat", ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))),
        objects=(
            (Shape("circle", (0.5, 0.5), 0.3), Texture("flat", ((1.0, 0.0, 0.0),) * 2)),
            (Shape("rectangle", (0.5, 0.5), 0.1), Texture("flat", ((0.0, 0.0, 1.0),) * 2)),
        ),
    )
    image, labels = data.render_scene(scene, 64, 64)
    assert labels[32, 32] == 2 and labels[32, 16] == 1 and labels[0, 0] == 0
    assert torch.equal(image[:, 32, 32], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.equal(image[:, 32, 16], torch.tensor([1.0, 0.0, 0.0]))
    # A first object hidden completely by the second disappears; labels are renumbered.
    hidden = data.Scene(scene.background, (scene.objects[1], scene.objects[0]))
    _, labels = data.render_scene(hidden, 64, 64)
    assert int(labels.max()) == 1 and labels[32, 32] == 1


@pytest.mark.parametrize(
    ("kind", "aspect", "area"),
    [
        ("circle", 1.0, math.pi),
        ("ellipse", 0.5, math.pi * 0.5),
        ("rectangle", 0.5, 4 * 0.5),
        ("triangle", 1.0, 3 * math.sqrt(3) / 4),
        # Ten triangles (centre, outer point, inner corner) with the sine rule.
        ("star", 1.0, 10 * 0.5 * data.STAR_INNER * math.sin(math.pi / 5)),
    ],
)
def test_shapes_have_their_geometric_area(kind, aspect, area):
    radius, size = 0.3, 256
    shape = Shape(kind, centre=(0.5, 0.5), radius=radius, angle=0.7, aspect=aspect)
    pixels = shape_mask(shape, size, size).sum().item()
    expected = area * (radius * size) ** 2  # `area` is for radius 1
    assert pixels == pytest.approx(expected, rel=0.03)


def test_every_shape_and_background_appears():
    scenes = ProceduralScenes(size=16, length=60, seed=0)
    backgrounds = {scenes.background_of(index) for index in range(60)}
    shapes = {shape.kind for index in range(60) for shape, _ in scenes.scene(index).objects}
    assert backgrounds == set(BACKGROUNDS) and shapes == set(SHAPES)


def test_background_of_matches_the_scene_and_the_options():
    scenes = ProceduralScenes(size=16, length=20, seed=5)
    for index in range(20):
        assert scenes.background_of(index) == scenes.scene(index).background.kind
    only_dots = ProceduralScenes(size=16, length=10, backgrounds=("dots",), shapes=("star",))
    assert {only_dots.background_of(index) for index in range(10)} == {"dots"}
    assert {s.kind for index in range(10) for s, _ in only_dots.scene(index).objects} == {"star"}


def _shift_difference(image: torch.Tensor, dy: int, dx: int) -> float:
    """Largest change of ``image`` (C, H, W) when moved by (dy, dx) pixels (overlap only)."""
    height, width = image.shape[-2:]
    moved = image[:, dy:, dx:]
    original = image[:, : height - dy, : width - dx]
    return (moved - original).abs().max().item()


COLOURS = ((0.1, 0.2, 0.9), (0.9, 0.8, 0.1))


@pytest.mark.parametrize(
    ("texture", "shift", "half"),
    [
        # Vertical stripes, 8 pixels apart at 64x64: moving 8 pixels right changes nothing.
        (Texture("stripes", COLOURS, period=8 / 64), (0, 8), (0, 4)),
        (Texture("stripes", COLOURS, period=8 / 64, square=True, phase=(0.3, 0)), (0, 8), (0, 4)),
        # Stripes turned so that their normal is (4, 3) / 5: a shift of (dx=4, dy=3) pixels
        # moves 5 pixels along the normal, one period.
        (Texture("stripes", COLOURS, period=5 / 64, angle=math.atan2(3, 4)), (3, 4), (0, 2)),
        (Texture("checkerboard", COLOURS, period=8 / 64), (8, 8), (0, 4)),
        (Texture("dots", COLOURS, period=8 / 64, dot_radius=0.3), (8, 8), (4, 4)),
        (
            Texture("grating", COLOURS, period=8 / 64, period2=16 / 64, angle2=math.pi / 2),
            (16, 8),
            (8, 4),
        ),
    ],
)
def test_periodic_backgrounds_repeat_after_one_period(texture, shift, half):
    image = render_texture(texture, 64, 64)
    assert _shift_difference(image, *shift) < 1e-4
    # A shift by half a period does change the pattern, so the check above means something.
    assert _shift_difference(image, *half) > 0.3


def test_procedural_textures_stay_in_the_period_range():
    scenes = ProceduralScenes(size=16, length=50, seed=0)
    low, high = data.PERIOD_RANGE
    for index in range(50):
        background = scenes.scene(index).background
        if background.kind != "smooth":
            assert low <= background.period <= high
            assert 4 <= background.period * 64 <= 16  # pixels at 64x64


def test_scenes_scale_with_size():
    small = ProceduralScenes(size=64, length=8, seed=0)
    large = ProceduralScenes(size=128, length=8, seed=0)
    for index in range(8):
        assert small.scene(index) == large.scene(index)  # same description at any size
        small_image, small_labels = small[index]
        large_image, large_labels = large[index]
        assert large_image.shape == (3, 128, 128) and large_labels.shape == (128, 128)
        # Every 64x64 pixel matches its 2x2 block at 128x128, up to edges and fine texture.
        agree = (large_labels[::2, ::2] == small_labels).float().mean()
        assert agree > 0.95
        shrunk = F.avg_pool2d(large_image[None], 2)[0]
        assert (shrunk - small_image).abs().mean() < 0.06


def test_non_square_scenes():
    scenes = ProceduralScenes(size=(48, 80), length=6, seed=0)
    images, labels = scenes.batch(0, 6)
    assert images.shape == (6, 3, 48, 80) and labels.shape == (6, 48, 80)
    # Objects are spread over the whole width, not only over a 48x48 square.
    assert (labels[:, :, 48:] > 0).any()


def test_scene_batch_equals_stacked_items():
    scenes = ProceduralScenes(size=32, length=10, seed=7)
    images, labels = scenes.batch(2, 5)
    assert images.shape == (5, 3, 32, 32) and labels.shape == (5, 32, 32)
    for offset in range(5):
        image, label = scenes[2 + offset]
        assert torch.equal(images[offset], image) and torch.equal(labels[offset], label)


def test_scene_indexing_and_iteration():
    scenes = ProceduralScenes(size=16, length=3)
    assert len(scenes) == 3 and len(list(scenes)) == 3
    assert torch.equal(scenes[-1][0], scenes[2][0])
    with pytest.raises(IndexError, match="out of range"):
        scenes[3]
    with pytest.raises(IndexError, match="larger length"):
        scenes.batch(2, 2)
    loader = torch.utils.data.DataLoader(scenes, batch_size=3)
    images, labels = next(iter(loader))
    assert images.shape == (3, 3, 16, 16) and labels.shape == (3, 16, 16)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"size": 4}, "at least 8"),
        ({"size": (16, 7)}, "width must be at least 8"),
        ({"size": 32.0}, "int or a"),
        ({"size": (16, 16.5)}, "width must be an int"),
        ({"length": 0}, "length must be at least 1"),
        ({"length": 10.0}, "length must be an int"),
        ({"seed": -1}, "seed must be at least 0"),
        ({"max_objects": 0}, "max_objects must be at least 1"),
        ({"backgrounds": ("stripes", "plaid")}, r"unknown backgrounds \['plaid'\]"),
        ({"backgrounds": "stripes"}, "non-empty tuple"),
        ({"shapes": ("hexagon",)}, r"unknown shapes \['hexagon'\]"),
        ({"shapes": ()}, "non-empty tuple"),
    ],
)
def test_bad_scene_options_are_explained(options, message):
    with pytest.raises(ValueError, match=message):
        ProceduralScenes(**options)


# ---------------------------------------------------------------------------------------------
# PhotoPatches
# ---------------------------------------------------------------------------------------------


def test_every_listed_photo_is_installed():
    for name in PHOTOS:
        assert data.photo_path(name).is_file()
    assert set(TEST_PHOTOS) <= set(PHOTOS)


def test_photos_shrink_to_the_short_side_but_never_grow():
    assert data.load_photo("china", 128).shape == (3, 128, 192)
    assert data.load_photo("chelsea", 1000).shape == (3, 300, 451)  # the original size
    grey = data.load_photo("camera", 64)
    assert grey.shape == (3, 64, 64) and torch.equal(grey[0], grey[1])


def test_photo_patches_have_the_course_layout():
    patches = PhotoPatches(patch_size=32, split="train", length=40, seed=0)
    images = patches.batch(0, 40)
    assert images.shape == (40, 3, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    # Shrunk photos give patches with content: most are far from flat.
    assert (images.std(dim=(1, 2, 3)) > 0.05).float().mean() > 0.7


def test_photo_patches_are_deterministic_by_index():
    first = PhotoPatches(patch_size=32, length=10, seed=1)
    second = PhotoPatches(patch_size=32, length=10, seed=1)
    assert torch.equal(first[4], second[4]) and first.source_of(4) == second.source_of(4)
    assert torch.equal(first.batch(3, 3)[1], first[4])
    other = PhotoPatches(patch_size=32, length=10, seed=2)
    assert not torch.equal(first.batch(0, 10), other.batch(0, 10))


def test_train_and_test_photos_are_disjoint():
    train = PhotoPatches(patch_size=32, split="train", length=200)
    test = PhotoPatches(patch_size=32, split="test", length=200)
    assert set(test.photos) == set(TEST_PHOTOS)
    assert not set(train.photos) & set(test.photos)
    assert set(train.photos) | set(test.photos) == set(PHOTOS)
    assert set(PhotoPatches(patch_size=32, split="all").photos) == set(PHOTOS)
    train_sources = {train.source_of(index) for index in range(200)}
    test_sources = {test.source_of(index) for index in range(200)}
    assert train_sources == set(train.photos) and test_sources == set(TEST_PHOTOS)


def test_patches_are_copies_of_the_cached_photo():
    patches = PhotoPatches(patch_size=16, length=2)
    patch = patches[0]
    patch.zero_()
    assert patches[0].abs().sum() > 0


def test_flip_mirrors_some_of_the_same_crops():
    plain = PhotoPatches(patch_size=16, length=16, seed=0)
    flipped = PhotoPatches(patch_size=16, length=16, seed=0, flip=True)
    mirrored = 0
    for index in range(16):
        if torch.equal(flipped[index], plain[index].flip(-1)):
            mirrored += 1
        else:
            assert torch.equal(flipped[index], plain[index])
    assert 0 < mirrored < 16


def test_too_large_patches_name_the_photo_and_the_fix():
    with pytest.raises(ValueError, match=r"astronaut \(48x48\).*smaller patch_size"):
        PhotoPatches(patch_size=64, short_side=48)
    # chelsea (451x300) and coins (384x303) are too small for 320 even at their full size.
    with pytest.raises(ValueError, match=r"chelsea \(451x300\), coins \(384x303\)"):
        PhotoPatches(patch_size=320, short_side=4000)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split": "valid"}, "unknown split 'valid'"),
        ({"patch_size": 4}, "patch_size must be at least 8"),
        ({"patch_size": 32.0}, "patch_size must be an int"),
        ({"short_side": 0}, "short_side must be at least 1"),
    ],
)
def test_bad_patch_options_are_explained(options, message):
    with pytest.raises(ValueError, match=message):
        PhotoPatches(**options)


# ---------------------------------------------------------------------------------------------
# real_images
# ---------------------------------------------------------------------------------------------


def _save_image(path, size=(20, 12), colour=(200, 30, 90), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).convert(mode).save(path)


def test_image_folder_reads_flat_and_nested_images(tmp_path):
    _save_image(tmp_path / "b.png")
    _save_image(tmp_path / "nested" / "deeper" / "a.JPG")
    _save_image(tmp_path / "nested" / "grey.png", mode="L")
    _save_image(tmp_path / "nested" / "alpha.png", mode="RGBA")
    (tmp_path / "notes.txt").write_text("not an image")
    images = real_images("folder", tmp_path, split="all", size=8)
    assert len(images) == 4
    for index in range(4):
        image = images[index]
        assert image.shape == (3, 8, 8) and image.dtype == torch.float32
        assert 0 <= image.min() and image.max() <= 1


def test_image_folder_keeps_the_central_square(tmp_path):
    # 40x20 picture: blue | green (the middle half) | red; the central 20x20 square is green.
    picture = np.zeros((20, 40, 3), dtype=np.uint8)
    picture[:, :10, 2] = picture[:, 10:30, 1] = picture[:, 30:, 0] = 255
    Image.fromarray(picture).save(tmp_path / "bands.png")
    image = real_images("folder", tmp_path, split="all", size=16)[0]
    assert image.shape == (3, 16, 16)
    assert image[1, :, 2:-2].min() > 0.99 and image[1].mean() > 0.9


def test_image_folder_splits_are_subfolders(tmp_path):
    _save_image(tmp_path / "train" / "one.png")
    _save_image(tmp_path / "train" / "two.png")
    _save_image(tmp_path / "test" / "three.png")
    assert len(real_images("folder", tmp_path)) == 2
    assert len(real_images("folder", tmp_path, split="test")) == 1
    assert len(real_images("folder", tmp_path, split="all")) == 3
    with pytest.raises(FileNotFoundError, match="split='all'"):
        real_images("folder", tmp_path, split="val")


def test_dtd_layout_is_read(tmp_path):
    base = tmp_path / "dtd" / "dtd"
    for name in ("banded/banded_0001.jpg", "dotted/dotted_0002.jpg", "dotted/dotted_0003.jpg"):
        _save_image(base / "images" / name, size=(30, 24))
    (base / "labels").mkdir()
    (base / "labels" / "train1.txt").write_text("banded/banded_0001.jpg\ndotted/dotted_0002.jpg\n")
    (base / "labels" / "test1.txt").write_text("dotted/dotted_0003.jpg\n")
    train = real_images("dtd", tmp_path, split="train", size=16)
    assert len(train) == 2 and train[1].shape == (3, 16, 16)
    assert len(real_images("dtd", tmp_path, split="test", size=16)) == 1


def _write_cifar(root, rows_per_batch=2):
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{number}" for number in range(1, 6)] + ["test_batch"]
    for name in names:
        batch = {
            "data": rng.integers(0, 256, size=(rows_per_batch, 3 * 32 * 32), dtype=np.uint8),
            "labels": [0] * rows_per_batch,
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": ["airplane"]}))


def test_cifar10_layout_is_read(tmp_path, monkeypatch):
    _write_cifar(tmp_path)
    # torchvision compares the md5 of every file with the real CIFAR-10 release; our tiny
    # stand-ins cannot match, so the checks are switched off for this test only.
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args: True)
    train = real_images("cifar10", tmp_path, split="train", size=64)
    assert len(train) == 10 and len(real_images("cifar10", tmp_path, split="test")) == 2
    image = train[0]
    assert image.shape == (3, 64, 64) and image.dtype == torch.float32
    assert 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize(
    ("name", "split", "hint"),
    [
        ("cifar10", "train", "https://www.cs.toronto.edu/~kriz/cifar.html"),
        ("places365", "val", "256x256"),
        ("dtd", "train", "https://www.robots.ox.ac.uk/~vgg/data/dtd/"),
        ("celeba", "train", "quota"),
        ("folder", "all", "holds no image files"),
        ("folder", "train", "there is no folder"),
    ],
)
def test_missing_files_say_what_to_put_where(tmp_path, name, split, hint):
    with pytest.raises(FileNotFoundError) as error:
        real_images(name, tmp_path, split=split)
    message = str(error.value)
    assert name in message and str(tmp_path) in message and hint in message


def test_failed_download_offline_is_a_missing_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(FileNotFoundError, match="no network.*cifar-10-batches-py"):
        real_images("cifar10", tmp_path, download=True)


@pytest.mark.parametrize(
    ("name", "split", "message"),
    [
        ("imagenet", "train", r"unknown data set 'imagenet'.*'cifar10'.*'folder'"),
        ("cifar10", "val", r"unknown split 'val' for cifar10.*'train', 'test'"),
    ],
)
def test_unknown_data_sets_and_splits_list_the_choices(tmp_path, name, split, message):
    with pytest.raises(ValueError, match=message):
        real_images(name, tmp_path, split=split)
