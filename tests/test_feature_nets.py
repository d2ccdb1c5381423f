"""Feature networks (course_lib.feature_nets): VGG-16 slicing, the shipped course network."""

import json
import shutil

import pytest
import torch
import torchvision

from course_lib import checkpoints, feature_nets, losses
from course_lib.feature_nets import MissingWeightsError


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """A torch.hub cache without any weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home"


@pytest.fixture(scope="module", params=["legacy", "zip"])
def fake_vgg16_file(tmp_path_factory, request):
    """A file shaped like torchvision's VGG-16 checkpoint (convolutions up to pool3 only),
    with random numbers: enough to check which layers are loaded and how they are cut. In
    both of torch.save's formats: torchvision's older files predate the zip format."""
    with torch.device("meta"):
        layers = torchvision.models.vgg16(weights=None).features
    generator = torch.Generator().manual_seed(0)
    state = {
        f"features.{name}": torch.randn(tensor.shape, generator=generator) * 0.1
        for name, tensor in layers[:17].state_dict().items()
    }
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(state, path, _use_new_zipfile_serialization=request.param == "zip")
    return path, state


def test_vgg16_features_without_weights_says_what_where_and_how(empty_torch_home):
    expected = empty_torch_home / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert feature_nets.vgg16_weights_file() == expected
    with pytest.raises(FileNotFoundError) as caught:
        feature_nets.vgg16_features()
    assert isinstance(caught.value, MissingWeightsError)
    message = str(caught.value)
    for needed in (str(expected), "torchvision.models.vgg16", "TORCH_HOME", "weights_path"):
        assert needed in message
    assert caught.value.missing == (expected,)
    with pytest.raises(MissingWeightsError):
        losses.LOSS_BUILDERS["pconv_vgg16"]()


def test_vgg16_features_are_torchvisions_layers_after_imagenet_normalisation(fake_vgg16_file):
    path, state = fake_vgg16_file
    extractor = feature_nets.vgg16_features(path)
    assert extractor.name == "vgg16" and not extractor.training
    assert not any(p.requires_grad for p in extractor.parameters())
    with torch.device("meta"):
        reference = torchvision.models.vgg16(weights=None).features[:17]
    reference = reference.to_empty(device="cpu")
    reference.load_state_dict({name[len("features.") :]: t for name, t in state.items()})
    image = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = (image - mean) / std
    maps = extractor(image)
    for got, end in zip(maps, (5, 10, 17), strict=True):  # pool1, pool2, pool3
        torch.testing.assert_close(got, reference[:end](x))
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 20), (2, 128, 8, 10), (2, 256, 4, 5)]


def test_vgg16_features_refuse_a_file_of_another_network(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not torchvision's VGG-16"):
        feature_nets.vgg16_features(path)


def test_default_features_offline_pick_the_course_network_and_say_why(empty_torch_home):
    extractor, description = feature_nets.default_features()
    assert extractor.name == "course"
    assert "VGG-16" in description and str(feature_nets.vgg16_weights_file()) in description
    assert "0.05" in description and "120" in description  # the weights tuned for VGG-16


def test_default_features_use_vgg16_when_its_weights_are_there(fake_vgg16_file, empty_torch_home):
    target = feature_nets.vgg16_weights_file()
    target.parent.mkdir(parents=True)
    shutil.copy(fake_vgg16_file[0], target)
    extractor, description = feature_nets.default_features()
    assert extractor.name == "vgg16" and "ImageNet" in description


def test_course_features_are_frozen_but_pass_gradients_to_the_image():
    extractor = feature_nets.course_features()
    extractor.train()  # a frozen network stays in eval mode
    assert not extractor.training
    assert not any(p.requires_grad for p in extractor.parameters())
    image = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    image.requires_grad_(True)
    maps = extractor(image)
    assert [tuple(m.shape) for m in maps] == [(2, 32, 32, 32), (2, 64, 16, 16), (2, 128, 8, 8)]
    sum(m.sum() for m in maps).backward()
    assert image.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="RGB"):
        extractor(torch.rand(1, 1, 64, 64))
    with pytest.raises(ValueError, match="at least 8x8"):
        extractor(torch.rand(1, 3, 4, 4))


def test_shipped_course_features_record_how_they_were_made():
    weights, record_path = checkpoints.weights_files(feature_nets.COURSE_WEIGHTS)
    record = json.loads(record_path.read_text())
    assert record["command"].startswith("python -m course_lib.feature_nets train")
    assert record["model"] == "FeatureExtractor" and record["network"] == "course"
    assert record["bytes"] == weights.stat().st_size < 2_000_000
    assert record["sha256"] == checkpoints.file_sha256(weights)
    assert record["heldout_accuracy"] > 0.5  # 14 classes: chance is 0.07


def test_course_features_check_the_sha256(tmp_path):
    weights, record = checkpoints.weights_files(feature_nets.COURSE_WEIGHTS)
    shutil.copy(weights, tmp_path / "copy.pt")
    shutil.copy(record, tmp_path / "copy.json")
    assert feature_nets.course_features(weights=tmp_path / "copy.pt").name == "course"
    data = bytearray((tmp_path / "copy.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "copy.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        feature_nets.course_features(weights=tmp_path / "copy.pt")


def test_dilated_course_features_equal_the_plain_ones_at_strided_positions():
    plain, dilated = feature_nets.course_features(), feature_nets.course_features(dilated=True)
    assert dilated.name == "course_dilated"
    image = torch.rand(2, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    sparse, dense = plain(image), dilated(image)
    assert [tuple(m.shape[-2:]) for m in dense] == [(32, 24)] * 3
    torch.testing.assert_close(dense[0], sparse[0])
    torch.testing.assert_close(dense[1][..., ::2, ::2], sparse[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dense[2][..., ::4, ::4], sparse[2], atol=1e-5, rtol=1e-5)


def test_training_command_exports_weights_that_load(tmp_path, capsys):
    target = tmp_path / "tiny_features"
    arguments = ["train", "--steps", "2", "--batch-size", "4", "--export", str(target), "--quiet"]
    assert feature_nets.main(arguments) == 0
    record = json.loads((tmp_path / "tiny_features.json").read_text())
    assert record["command"] == "python -m course_lib.feature_nets " + " ".join(arguments)
    assert record["steps"] == 2 and record["classes"] == list(feature_nets.CLASSES)
    assert feature_nets.course_features(weights=target).name == "course"
    with pytest.raises(SystemExit):  # never overwritten without asking
        feature_nets.main(arguments)
    assert "exist" in capsys.readouterr().err
