"""The labelled downstream task and the linear probe (course_lib.downstream)."""

import pytest
import torch

from course_lib import downstream
from course_lib.data import BACKGROUNDS, SHAPES, Scene, Shape, Texture, render_scene
from course_lib.mae import MaskedAutoencoder

FLAT = Texture("flat", ((0.2, 0.2, 0.2), (0.2, 0.2, 0.2)))


def test_the_largest_visible_object_is_found_through_occlusion():
    big_circle = Shape("circle", centre=(0.5, 0.5), radius=0.3)
    small_star = Shape("star", centre=(0.5, 0.5), radius=0.1)
    fill = Texture("flat", ((0.9, 0.1, 0.1), (0.9, 0.1, 0.1)))
    scene = Scene(
        Texture("dots", ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))),
        ((big_circle, fill), (small_star, fill)),
    )
    _, labels = render_scene(scene, 32, 32)
    assert downstream.label_of(scene, labels, "largest_shape") == SHAPES.index("circle")
    assert downstream.label_of(scene, labels, "background") == BACKGROUNDS.index("dots")
    # A rectangle drawn over most of the circle leaves it a crescent smaller than itself.
    cover = Shape("rectangle", centre=(0.45, 0.5), radius=0.35, aspect=1.0)
    covered = Scene(FLAT, ((big_circle, fill), (cover, fill)))
    _, labels = render_scene(covered, 32, 32)
    assert downstream.label_of(covered, labels, "largest_shape") == SHAPES.index("rectangle")


def test_splits_are_deterministic_disjoint_and_labelled_in_range():
    train, train_labels = downstream.labelled_scenes("largest_shape", "train", 20, size=32)
    again, again_labels = downstream.labelled_scenes("largest_shape", "train", 20, size=32)
    test, _ = downstream.labelled_scenes("largest_shape", "test", 20, size=32)
    assert torch.equal(train, again) and torch.equal(train_labels, again_labels)
    assert not any(torch.equal(a, b) for a in train for b in test)
    assert train.shape == (20, 3, 32, 32) and 0 <= train_labels.min() and train_labels.max() < 5
    _, backgrounds = downstream.labelled_scenes("background", "validation", 60, size=16)
    assert len(backgrounds.unique()) == len(BACKGROUNDS)  # every class turns up
    with pytest.raises(ValueError, match="unknown task"):
        downstream.labelled_scenes("colour", "train", 4)
    with pytest.raises(ValueError, match="unknown split"):
        downstream.labelled_scenes("background", "holdout", 4)


def test_the_probe_separates_separable_features_and_not_noise():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(3, (300,), generator=generator)
    centres = torch.randn(3, 8, generator=generator) * 4
    features = centres[labels] + torch.randn(300, 8, generator=generator)
    correct = downstream.linear_probe(features[:200], labels[:200], features[200:], labels[200:], 3)
    assert correct.shape == (100,) and correct.dtype == torch.bool
    assert correct.float().mean() > 0.95
    noise = torch.randn(300, 8, generator=generator)  # features that say nothing of the labels
    chance = downstream.linear_probe(noise[:200], labels[:200], noise[200:], labels[200:], 3)
    assert chance.float().mean() < 0.55


def test_pooled_encoder_features_average_every_token_and_keep_the_mode():
    torch.manual_seed(0)
    model = MaskedAutoencoder.from_config("quick").train()
    images = torch.rand(5, 3, 64, 64)
    features = downstream.pooled_encoder_features(model, images, batch=2)
    assert features.shape == (5, model.encoder_norm.normalized_shape[0]) and model.training
    model.eval()
    with torch.no_grad():
        latent, mask, _ = model.encode(images, ratio=0.0)
    assert mask.sum() == 0 and torch.allclose(features, latent.mean(dim=1), atol=1e-6)


def _bright_and_dark(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy images whose class is their brightness: a task any encoder can learn."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(2, (count,), generator=generator)
    images = (
        0.25
        + 0.5 * labels.view(-1, 1, 1, 1)
        + 0.1 * torch.rand(count, 3, 64, 64, generator=generator)
    )
    return images.clamp(0, 1), labels


def test_fine_tuning_learns_a_separable_task_and_records_its_curve():
    torch.manual_seed(0)
    model = MaskedAutoencoder.from_config("quick")
    before = model.patch_embed.weight.detach().clone()
    result = downstream.fine_tune(
        model, _bright_and_dark(64, 0), _bright_and_dark(32, 1), 2, steps=25, batch_size=16,
        evaluate_every=10,
    )  # fmt: skip
    curve = result.curve
    assert [step for step, _ in curve] == [0, 10, 20, 25]
    assert curve[-1][1] == 1.0 and all(0 <= accuracy <= 1 for _, accuracy in curve)
    assert result.correct.shape == (32,) and bool(result.correct.all())
    assert not torch.equal(model.patch_embed.weight, before)  # the encoder itself was trained
    torch.manual_seed(0)
    again = downstream.fine_tune(
        MaskedAutoencoder.from_config("quick"), _bright_and_dark(64, 0), _bright_and_dark(32, 1),
        2, steps=25, batch_size=16, evaluate_every=10,
    )  # fmt: skip
    assert again.curve == curve  # seeded: the same batches and the same head


def test_fine_tuning_checks_its_counts():
    model = MaskedAutoencoder.from_config("quick")
    data = _bright_and_dark(8, 0)
    with pytest.raises(ValueError, match="steps"):
        downstream.fine_tune(model, data, data, 2, steps=0)
    with pytest.raises(ValueError, match="evaluate_every"):
        downstream.fine_tune(model, data, data, 2, steps=5, evaluate_every=0)
