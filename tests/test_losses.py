"""Losses (course_lib.losses) against their formulas, at their optima, and in training."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib import losses
from course_lib.discriminator import PatchDiscriminator
from course_lib.feature_nets import course_features
from course_lib.train import InpaintingBatches
from course_lib.unet import PConvUNet


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def random_hole(batch: int = 2, size: int = 8, seed: int = 1) -> torch.Tensor:
    hole = (rand(batch, 1, size, size, seed=seed) > 0.6).float()
    assert 0 < hole.mean() < 1
    return hole


class TinyFeatures(nn.Module):
    """Three fixed random convolution + pooling stages: a feature network for hand checks."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.convs = nn.ModuleList(nn.Conv2d(c, c + 1, 3, padding=1) for c in (3, 4, 5))
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        maps, x = [], image
        for conv in self.convs:
            x = F.max_pool2d(torch.relu(conv(x)), 2)
            maps.append(x)
        return maps


class FixedPrediction(nn.Module):
    """A 'model' whose prediction is a given tensor times a trainable scale (1)."""

    def __init__(self, prediction: torch.Tensor) -> None:
        super().__init__()
        self.prediction = prediction
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.prediction * self.scale


@pytest.fixture(scope="module")
def course():
    return course_features()


# ---------------------------------------------------------------------------------------------
# L1 terms
# ---------------------------------------------------------------------------------------------


def test_hole_and_valid_l1_against_numpy():
    output, target, hole = rand(2, 3, 8, 8, seed=2), rand(2, 3, 8, 8, seed=3), random_hole()
    error = np.abs(output.numpy() - target.numpy())  # (B, C, H, W)
    h = hole.numpy()  # (B, 1, H, W), broadcast over channels
    # Means over all B*C*H*W elements, not over the hole's pixels.
    assert losses.hole_l1(output, target, hole).item() == pytest.approx(np.mean(h * error))
    assert losses.valid_l1(output, target, hole).item() == pytest.approx(np.mean((1 - h) * error))


def test_hole_plus_valid_is_the_whole_l1_exactly():
    # Errors in steps of 1/8 and 2*4*8*8 = 512 elements: every sum and division is exact in
    # float32, so the split must add up to the last bit.
    output = torch.randint(0, 9, (2, 4, 8, 8), generator=torch.Generator().manual_seed(0)) / 8
    target = torch.randint(0, 9, (2, 4, 8, 8), generator=torch.Generator().manual_seed(1)) / 8
    hole = random_hole()
    total = (output - target).abs().mean()
    assert losses.hole_l1(output, target, hole) + losses.valid_l1(output, target, hole) == total
    # Arbitrary values: equal up to float rounding.
    output, target = rand(2, 3, 8, 8, seed=4), rand(2, 3, 8, 8, seed=5)
    split = losses.hole_l1(output, target, hole) + losses.valid_l1(output, target, hole)
    assert split.item() == pytest.approx((output - target).abs().mean().item(), rel=1e-6)


def test_losses_are_zero_when_the_output_is_the_target():
    target, hole, features = rand(2, 3, 16, 16), random_hole(size=16), TinyFeatures()
    composite = hole * target + (1 - hole) * target
    assert losses.hole_l1(target, target, hole) == 0
    assert losses.valid_l1(target, target, hole) == 0
    assert losses.perceptual_loss(target, composite, target, features) == 0
    assert all(term == 0 for term in losses.style_loss(target, composite, target, features))
    constant = torch.full((2, 3, 16, 16), 0.3)
    assert losses.total_variation(constant, hole) == 0


def test_inputs_are_checked():
    output, hole = rand(2, 3, 8, 8), random_hole()
    with pytest.raises(ValueError, match="same shape"):
        losses.hole_l1(output, rand(2, 3, 8, 9), hole)
    with pytest.raises(ValueError, match="binary"):
        losses.valid_l1(output, output, hole * 0.5)
    with pytest.raises(ValueError, match="does not match"):
        losses.total_variation(output, random_hole(size=4))
    with pytest.raises(ValueError, match="float"):
        losses.gram_matrix(torch.ones(1, 2, 3, 3, dtype=torch.long))


# ---------------------------------------------------------------------------------------------
# Perceptual, style, total variation
# ---------------------------------------------------------------------------------------------


def test_perceptual_loss_against_the_formula():
    features = TinyFeatures()
    output, target, hole = (
        rand(2, 3, 16, 16, seed=2),
        rand(2, 3, 16, 16, seed=3),
        random_hole(size=16),
    )
    composite = hole * output + (1 - hole) * target
    expected = 0.0
    for out, comp, truth in zip(
        features(output), features(composite), features(target), strict=True
    ):
        out, comp, truth = out.numpy(), comp.numpy(), truth.numpy()
        expected += np.abs(out - truth).mean() + np.abs(comp - truth).mean()
    got = losses.perceptual_loss(output, composite, target, features)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_gram_matrix_against_loops():
    maps = rand(2, 3, 4, 5)
    gram = losses.gram_matrix(maps)
    assert gram.shape == (2, 3, 3)
    b_count, c_count, height, width = maps.shape
    for b in range(b_count):
        for c in range(c_count):
            for d in range(c_count):
                total = sum(
                    maps[b, c, i, j].item() * maps[b, d, i, j].item()
                    for i in range(height)
                    for j in range(width)
                )
                expected = total / (c_count * height * width)
                assert gram[b, c, d].item() == pytest.approx(expected, rel=1e-5)


def test_style_loss_against_the_formula_and_blind_to_positions():
    features = TinyFeatures()
    output, target, hole = (
        rand(2, 3, 16, 16, seed=2),
        rand(2, 3, 16, 16, seed=3),
        random_hole(size=16),
    )
    composite = hole * output + (1 - hole) * target

    def gram(x: np.ndarray) -> np.ndarray:  # (B, C, H, W) -> (B, C, C)
        flat = x.reshape(x.shape[0], x.shape[1], -1).astype(np.float64)
        return flat @ flat.transpose(0, 2, 1) / flat[0].size

    maps = [features(x) for x in (output, composite, target)]
    style_out = sum(
        np.abs(gram(o.numpy()) - gram(t.numpy())).mean()
        for o, t in zip(maps[0], maps[2], strict=True)
    )
    style_comp = sum(
        np.abs(gram(c.numpy()) - gram(t.numpy())).mean()
        for c, t in zip(maps[1], maps[2], strict=True)
    )
    got_out, got_comp = losses.style_loss(output, composite, target, features)
    assert got_out.item() == pytest.approx(style_out, rel=1e-5)
    assert got_comp.item() == pytest.approx(style_comp, rel=1e-5)

    # Moving every feature vector to another position (the same shuffle in every channel)
    # changes nothing: the Gram matrix sums over positions.
    def shuffle(x: torch.Tensor) -> torch.Tensor:
        order = torch.randperm(
            x.shape[-2] * x.shape[-1], generator=torch.Generator().manual_seed(7)
        )
        return x.flatten(2)[..., order].reshape(x.shape)

    for layer in maps[0]:
        torch.testing.assert_close(losses.gram_matrix(shuffle(layer)), losses.gram_matrix(layer))
    shuffled = [[shuffle(m) for m in group] for group in maps]
    torch.testing.assert_close(
        torch.stack(losses.style_distance(*shuffled)), torch.stack(losses.style_distance(*maps))
    )
    # The perceptual loss, by contrast, sees the move.
    assert losses.perceptual_distance(shuffled[0], maps[1], maps[2]) != losses.perceptual_distance(
        *maps
    )


def test_perceptual_and_style_compare_both_the_output_and_the_composite():
    features = TinyFeatures()
    output, target = rand(2, 3, 16, 16, seed=2), rand(2, 3, 16, 16, seed=3)
    # No hole: the composite is the target, so only the output's term remains.
    no_hole = torch.zeros(2, 1, 16, 16)
    composite = no_hole * output + (1 - no_hole) * target
    output_term = sum(
        (o - t).abs().mean() for o, t in zip(features(output), features(target), strict=True)
    )
    torch.testing.assert_close(
        losses.perceptual_loss(output, composite, target, features), output_term
    )
    style_out, style_comp = losses.style_loss(output, composite, target, features)
    assert style_comp == 0 and style_out > 0
    # All hole: the composite is the output, and each term counts twice.
    composite = output.clone()
    torch.testing.assert_close(
        losses.perceptual_loss(output, composite, target, features), 2 * output_term
    )
    style_out, style_comp = losses.style_loss(output, composite, target, features)
    torch.testing.assert_close(style_out, style_comp)


def test_total_variation_against_loops():
    composite, hole = rand(2, 3, 7, 9, seed=4), (rand(2, 1, 7, 9, seed=5) > 0.85).float()
    x, h = composite.numpy(), hole.numpy()[:, 0]
    batch, channels, height, width = x.shape
    # P: pixels with a hole pixel among themselves and their 8 neighbours.
    region = np.zeros_like(h)
    for b in range(batch):
        for i in range(height):
            for j in range(width):
                region[b, i, j] = h[b, max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2].max()
    total = 0.0
    for b in range(batch):
        for c in range(channels):
            for i in range(height):
                for j in range(width):
                    if j + 1 < width and region[b, i, j] and region[b, i, j + 1]:
                        total += abs(x[b, c, i, j + 1] - x[b, c, i, j])
                    if i + 1 < height and region[b, i, j] and region[b, i + 1, j]:
                        total += abs(x[b, c, i + 1, j] - x[b, c, i, j])
    expected = total / x.size
    assert losses.total_variation(composite, hole).item() == pytest.approx(expected, rel=1e-5)


def test_total_variation_looks_only_around_the_hole():
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 1.0  # a sharp edge between columns 7 and 8
    hole = torch.zeros(1, 1, 16, 16)
    hole[..., 1:3, 1:3] = 1  # far from the edge
    assert losses.total_variation(image, hole) == 0
    hole[..., 4, 7] = 1  # next to the edge: the pair across it now lies in P
    assert losses.total_variation(image, hole) > 0


# ---------------------------------------------------------------------------------------------
# The partial-convolution paper's loss
# ---------------------------------------------------------------------------------------------


def test_pconv_loss_combines_its_parts_with_the_paper_weights():
    assert dict(losses.PAPER_WEIGHTS) == {
        "valid": 1.0,
        "hole": 6.0,
        "perceptual": 0.05,
        "style": 120.0,
        "tv": 0.1,
    }
    features = TinyFeatures()
    image, hole, prediction = (
        rand(2, 3, 16, 16, seed=3),
        random_hole(size=16),
        rand(2, 3, 16, 16, seed=2),
    )
    loss, parts = losses.PConvLoss(features)(FixedPrediction(prediction), image, hole)
    assert set(parts) == {"valid", "hole", "perceptual", "style_out", "style_comp", "tv"}
    assert all(isinstance(value, float) for value in parts.values())
    composite = hole * prediction + (1 - hole) * image
    style_out, style_comp = losses.style_loss(prediction, composite, image, features)
    expected_parts = {
        "valid": losses.valid_l1(prediction, image, hole),
        "hole": losses.hole_l1(prediction, image, hole),
        "perceptual": losses.perceptual_loss(prediction, composite, image, features),
        "style_out": style_out,
        "style_comp": style_comp,
        "tv": losses.total_variation(composite, hole),
    }
    for name, value in expected_parts.items():
        assert parts[name] == pytest.approx(value.item(), rel=1e-6), name
    p = expected_parts
    expected = (
        p["valid"]
        + 6 * p["hole"]
        + 0.05 * p["perceptual"]
        + 120 * (p["style_out"] + p["style_comp"])
        + 0.1 * p["tv"]
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Other weights: each part scales its own term.
    weights = {**losses.PAPER_WEIGHTS, "tv": 0.0, "style": 1.0}
    loss, _ = losses.PConvLoss(features, weights)(FixedPrediction(prediction), image, hole)
    expected = (
        p["valid"] + 6 * p["hole"] + 0.05 * p["perceptual"] + p["style_out"] + p["style_comp"]
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_pconv_loss_refuses_incomplete_weights():
    with pytest.raises(ValueError, match="exactly"):
        losses.PConvLoss(TinyFeatures(), {"valid": 1.0, "hole": 6.0})


def test_pconv_loss_trains_the_small_pconv_unet(course):
    torch.manual_seed(0)
    model = PConvUNet.from_config("small").train()
    image, hole = InpaintingBatches(size=64, batch_size=4, seed=0).batch(0)
    loss_fn = losses.LOSS_BUILDERS["pconv_course"]()
    assert isinstance(loss_fn, losses.PConvLoss) and loss_fn.features.name == "course"
    loss, parts = loss_fn(model, image, hole)
    assert loss.dim() == 0 and loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(math.isfinite(value) and value >= 0 for value in parts.values())
    loss.backward()
    gradients = [p.grad for p in model.parameters() if p.grad is not None]
    assert gradients and all(torch.isfinite(g).all() for g in gradients)
    assert any(g.abs().sum() > 0 for g in gradients)
    # The frozen feature network collects no gradient.
    assert all(p.grad is None for p in loss_fn.features.parameters())


def test_every_term_is_a_float32_scalar_under_bfloat16_autocast(course):
    output, target, hole = (
        rand(2, 3, 16, 16, seed=2),
        rand(2, 3, 16, 16, seed=3),
        random_hole(size=16),
    )
    composite = hole * output + (1 - hole) * target
    logits, real_images = rand(2, 1, 3, 3, seed=6) - 0.5, rand(2, 3, 32, 32).requires_grad_(True)
    discriminator = PatchDiscriminator(width=4, layers=2)
    hrf = losses.HighReceptiveFieldPerceptual(course)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        features = course(target)
        assert features[0].dtype == torch.bfloat16  # the network does run in bfloat16 ...
        real_logits = discriminator(real_images)
        values = [
            losses.hole_l1(output, target, hole),
            losses.valid_l1(output, target, hole),
            losses.perceptual_loss(output, composite, target, course),
            *losses.style_loss(output, composite, target, course),
            losses.total_variation(composite, hole),
            losses.nonsaturating_d_loss(logits, -logits, losses.downsample_hole(hole, (3, 3))),
            losses.nonsaturating_g_loss(logits),
            losses.hinge_d_loss(logits, -logits),
            losses.hinge_g_loss(logits, losses.downsample_hole(hole, (3, 3))),
            losses.r1_penalty(real_images, real_logits),
            losses.feature_matching_loss(features, [f * 0.5 for f in features]),
            hrf(output, target),
            losses.PConvLoss(course)(FixedPrediction(output), target, hole)[0],
        ]
        gram = losses.gram_matrix(features[2].float())
    for value in values:  # ... and every loss comes out in float32
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value)
    assert gram.dtype == torch.float32
    torch.testing.assert_close(gram, losses.gram_matrix(features[2].float()))  # autocast is off


# ---------------------------------------------------------------------------------------------
# Adversarial losses
# ---------------------------------------------------------------------------------------------


def test_adversarial_losses_at_known_values():
    zeros = torch.zeros(2, 1, 4, 4)
    # A discriminator that cannot tell: logit 0 everywhere, cross-entropy log 2 per term.
    assert losses.nonsaturating_d_loss(zeros, zeros).item() == pytest.approx(2 * math.log(2))
    assert losses.nonsaturating_g_loss(zeros).item() == pytest.approx(math.log(2))
    # The hinge is zero once real logits are >= 1 and fake ones <= -1.
    real, fake = 1 + rand(2, 1, 4, 4, seed=1), -1 - rand(2, 1, 4, 4, seed=2)
    assert losses.hinge_d_loss(real, fake) == 0
    assert losses.hinge_d_loss(zeros, zeros).item() == pytest.approx(2.0)
    assert losses.hinge_g_loss(fake).item() == pytest.approx(-fake.mean().item())
    # A confident, right discriminator: the non-saturating loss tends to 0.
    assert losses.nonsaturating_d_loss(real * 20, fake * 20) < 1e-8


def test_adversarial_losses_with_a_hole_map_against_formulas():
    real, fake = rand(2, 1, 4, 4, seed=1) * 4 - 2, rand(2, 1, 4, 4, seed=2) * 4 - 2
    m = rand(2, 1, 4, 4, seed=3)
    r, f, w = real.numpy().astype(np.float64), fake.numpy().astype(np.float64), m.numpy()

    def softplus(x: np.ndarray) -> np.ndarray:
        return np.log1p(np.exp(x))

    expected = softplus(-r).mean() + (w * softplus(f) + (1 - w) * softplus(-f)).mean()
    assert losses.nonsaturating_d_loss(real, fake, m).item() == pytest.approx(expected, rel=1e-6)
    expected = (w * softplus(-f)).mean()
    assert losses.nonsaturating_g_loss(fake, m).item() == pytest.approx(expected, rel=1e-6)
    relu = lambda x: np.maximum(x, 0)  # noqa: E731
    expected = relu(1 - r).mean() + (w * relu(1 + f) + (1 - w) * relu(1 - f)).mean()
    assert losses.hinge_d_loss(real, fake, m).item() == pytest.approx(expected, rel=1e-6)
    assert losses.hinge_g_loss(fake, m).item() == pytest.approx(-(w * f).mean(), rel=1e-6)
    with pytest.raises(ValueError, match="shape"):
        losses.hinge_d_loss(real, fake, m[..., :2])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        losses.nonsaturating_g_loss(fake, m + 1)


def test_downsample_hole_gives_the_hole_fraction_of_each_patch():
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., :4, :4] = 1
    hole[..., 4, 4] = 1
    torch.testing.assert_close(
        losses.downsample_hole(hole, 2), torch.tensor([[[[1.0, 0.0], [0.0, 1 / 16]]]])
    )
    assert losses.downsample_hole(hole, (4, 2)).shape == (1, 1, 4, 2)


def test_a_composite_without_hole_has_no_fake_patches():
    torch.manual_seed(0)
    discriminator = PatchDiscriminator(width=8, layers=2)
    real, fake = rand(2, 3, 32, 32, seed=1), rand(2, 3, 32, 32, seed=2)
    real_logits, fake_logits = discriminator(real), discriminator(fake)
    hole_map = losses.downsample_hole(torch.zeros(2, 1, 32, 32), fake_logits.shape[-2:])
    assert hole_map.sum() == 0
    # Every patch of the fake is then labelled real, as in the real term.
    both_real = F.softplus(-real_logits).mean() + F.softplus(-fake_logits).mean()
    torch.testing.assert_close(
        losses.nonsaturating_d_loss(real_logits, fake_logits, hole_map), both_real
    )
    both_real = F.relu(1 - real_logits).mean() + F.relu(1 - fake_logits).mean()
    torch.testing.assert_close(losses.hinge_d_loss(real_logits, fake_logits, hole_map), both_real)
    assert losses.nonsaturating_g_loss(fake_logits, hole_map) == 0


def test_r1_penalty_of_a_linear_and_a_quadratic_discriminator():
    torch.manual_seed(0)
    # D(x) = <w, x> + b: its gradient is w for every image, so the penalty is ||w||^2.
    linear = nn.Conv2d(3, 1, 8)  # one logit per 8x8 image
    images = rand(4, 3, 8, 8).requires_grad_(True)
    penalty = losses.r1_penalty(images, linear(images))
    w = linear.weight.detach()
    assert penalty.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-6)
    # The penalty is differentiable (create_graph): d||w||^2 / dw = 2w.
    penalty.backward()
    torch.testing.assert_close(linear.weight.grad, 2 * w)
    # D(x) = sum over patches of x^2 / 2 (a 2x2 logit map): the gradient is x itself.
    images = rand(3, 3, 8, 8, seed=1).requires_grad_(True)
    logits = F.avg_pool2d((images**2).sum(1, keepdim=True), 4) * 16 / 2  # (B, 1, 2, 2)
    expected = images.detach().pow(2).flatten(1).sum(1).mean()
    assert losses.r1_penalty(images, logits).item() == pytest.approx(expected.item(), rel=1e-5)


def test_r1_penalty_says_what_it_needs():
    images = rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="requires_grad_"):
        losses.r1_penalty(images, nn.Conv2d(3, 1, 8)(images))
    other = rand(2, 3, 8, 8).requires_grad_(True)
    with pytest.raises(ValueError, match="computed from real_images"):
        losses.r1_penalty(other, nn.Conv2d(3, 1, 8)(images))


def test_feature_matching_loss():
    real = [rand(2, 4, 8, 8, seed=1), rand(2, 8, 4, 4, seed=2)]
    fake = [rand(2, 4, 8, 8, seed=3).requires_grad_(True), rand(2, 8, 4, 4, seed=4)]
    assert losses.feature_matching_loss(real, [r.clone() for r in real]) == 0
    expected = np.mean(
        [np.abs(f.detach().numpy() - r.numpy()).mean() for f, r in zip(fake, real, strict=True)]
    )
    got = losses.feature_matching_loss(real, fake)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    # The real features are the target: no gradient flows into them.
    real_leaf = real[0].clone().requires_grad_(True)
    losses.feature_matching_loss([real_leaf, real[1]], fake).backward()
    assert real_leaf.grad is None and fake[0].grad is not None
    with pytest.raises(ValueError, match="same non-empty number"):
        losses.feature_matching_loss(real, fake[:1])


def test_patch_discriminator_shapes_features_and_options():
    discriminator = PatchDiscriminator()
    assert discriminator.receptive_field == 70  # the pix2pix 70x70 PatchGAN
    logits, features = discriminator(rand(2, 3, 64, 64), return_features=True)
    assert logits.shape == (2, 1, 6, 6) and discriminator.output_size(64, 64) == (6, 6)
    assert [f.shape[1] for f in features] == [64, 128, 256, 512]
    assert discriminator.output_size(100, 48) == tuple(
        discriminator(rand(1, 3, 100, 48)).shape[-2:]
    )
    spectral = PatchDiscriminator(in_channels=4, width=8, layers=2, spectral_norm=True)
    assert all(hasattr(block[0], "parametrizations") for block in spectral.blocks)
    assert spectral(rand(1, 4, 32, 32)).shape == (1, 1, 6, 6)
    with pytest.raises(ValueError, match="too small"):
        discriminator(rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="in_channels"):
        spectral(rand(1, 3, 32, 32))
    assert losses.PatchDiscriminator is PatchDiscriminator


def test_high_receptive_field_perceptual_loss(course):
    features = TinyFeatures()
    output, target = rand(2, 3, 16, 16, seed=2), rand(2, 3, 16, 16, seed=3)
    hrf = losses.HighReceptiveFieldPerceptual(features)
    assert hrf(target, target) == 0
    expected = sum(
        ((o - t) ** 2).mean().item()
        for o, t in zip(features(output), features(target), strict=True)
    )
    assert hrf(output, target).item() == pytest.approx(expected, rel=1e-5)
    default = losses.HighReceptiveFieldPerceptual()
    assert default.network.name == "course_dilated"
    output.requires_grad_(True)
    default(output, target).backward()
    assert output.grad.abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_losses_run_on_cuda_under_float16_autocast():
    device = torch.device("cuda")
    torch.manual_seed(0)
    model = PConvUNet.from_config("small").to(device).train()
    image, hole = (t.to(device) for t in InpaintingBatches(size=64, batch_size=4, seed=0).batch(0))
    loss_fn = losses.PConvLoss(course_features())  # on the CPU: it follows the data
    hrf = losses.HighReceptiveFieldPerceptual()
    discriminator = PatchDiscriminator(width=8).to(device)
    with torch.autocast("cuda", dtype=torch.float16):
        loss, parts = loss_fn(model, image, hole)
        output = model(image * (1 - hole), hole)
        real = image.clone().requires_grad_(True)
        real_logits, real_features = discriminator(real, return_features=True)
        fake_logits, fake_features = discriminator(output, return_features=True)
        hole_map = losses.downsample_hole(hole, fake_logits.shape[-2:])
        values = [
            loss,
            losses.nonsaturating_d_loss(real_logits, fake_logits, hole_map),
            losses.hinge_d_loss(real_logits, fake_logits, hole_map),
            losses.nonsaturating_g_loss(fake_logits),
            losses.r1_penalty(real, real_logits),
            losses.feature_matching_loss(real_features, fake_features),
            hrf(output, image),
        ]
    for value in values:
        assert value.device.type == "cuda" and value.dtype == torch.float32
        assert value.dim() == 0 and torch.isfinite(value)
    assert all(math.isfinite(value) for value in parts.values())
    sum(values).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---------------------------------------------------------------------------------------------
# Named training losses and the adversarial training loss
# ---------------------------------------------------------------------------------------------


def test_named_losses_use_the_course_weights(course):
    assert dict(losses.COURSE_WEIGHTS) == {**losses.PAPER_WEIGHTS, "style": 6.0}
    built = {
        name: losses.LOSS_BUILDERS[name]() for name in losses.LOSS_BUILDERS if "vgg" not in name
    }
    assert built["pconv_course"].weights == dict(losses.COURSE_WEIGHTS)
    assert built["perceptual_style_course"].weights == {**losses.COURSE_WEIGHTS, "tv": 0.0}
    adversarial = built["pconv_course_adversarial"]
    assert isinstance(adversarial, losses.AdversarialLoss)
    assert adversarial.base.weights == dict(losses.COURSE_WEIGHTS)


def adversarial_setup(seed: int = 0) -> losses.AdversarialLoss:
    torch.manual_seed(seed)
    discriminator = PatchDiscriminator(width=4, layers=2)
    return losses.AdversarialLoss(losses.PConvLoss(TinyFeatures()), discriminator, weight=0.5)


def adversarial_example() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """image, hole, prediction for the adversarial tests."""
    return rand(2, 3, 16, 16, seed=3), random_hole(size=16), rand(2, 3, 16, 16, seed=2)


def test_adversarial_loss_judges_the_composite_and_trains_nothing_itself():
    image, hole, prediction = adversarial_example()
    loss_fn = adversarial_setup()
    before = [p.detach().clone() for p in loss_fn.discriminator.parameters()]
    loss, parts = loss_fn(FixedPrediction(prediction), image, hole)
    # A loss computes losses: the discriminator's weights are the trainer's to change.
    after = list(loss_fn.discriminator.parameters())
    assert all(torch.equal(old, new) for old, new in zip(before, after, strict=True))
    assert set(parts) == {*losses.WEIGHT_OF, "adversarial"}
    composite = hole * prediction + (1 - hole) * image
    assert torch.allclose(loss_fn.last_fake, composite) and not loss_fn.last_fake.requires_grad
    # The generator's term, on the made-up patches only.
    with torch.no_grad():
        logits = loss_fn.discriminator(composite)
        cost = F.softplus(-logits) * F.adaptive_avg_pool2d(hole, logits.shape[-2:])
        base, _ = loss_fn.base(FixedPrediction(prediction), image, hole)
    assert parts["adversarial"] == pytest.approx(cost.mean().item(), rel=1e-5)
    assert loss.item() == pytest.approx(base.item() + 0.5 * cost.mean().item(), rel=1e-5)


def test_the_discriminator_loss_is_lamas_with_the_r1_penalty():
    image, hole, prediction = adversarial_example()
    loss_fn = adversarial_setup()
    fake = hole * prediction + (1 - hole) * image
    loss, parts = loss_fn.discriminator_loss(image, fake, hole)
    real = image.clone().requires_grad_(True)
    real_logits = loss_fn.discriminator(real)
    fake_logits = loss_fn.discriminator(fake)
    labels = F.adaptive_avg_pool2d(hole, fake_logits.shape[-2:])  # hole fraction per patch
    expected = (
        F.softplus(-real_logits).mean()
        + (labels * F.softplus(fake_logits) + (1 - labels) * F.softplus(-fake_logits)).mean()
    )
    (gradient,) = torch.autograd.grad(real_logits.sum(), real)
    r1 = gradient.pow(2).sum(dim=(1, 2, 3)).mean()
    assert parts["d_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert parts["r1"] == pytest.approx(r1.item(), rel=1e-4)
    assert loss.item() == pytest.approx(expected.item() + 0.001 * r1.item(), rel=1e-5)
    # It trains the discriminator only: no gradient reaches the fake.
    loss.backward()
    assert all(p.grad is not None for p in loss_fn.discriminator.parameters())


def test_the_context_encoders_l2_is_the_mean_squared_error_over_the_hole_by_loops():
    output, target, hole = rand(2, 3, 8, 8, seed=4), rand(2, 3, 8, 8, seed=5), random_hole(size=8)
    total, count = 0.0, 0
    for b in range(2):
        for y in range(8):
            for x in range(8):
                if hole[b, 0, y, x] == 1:
                    for c in range(3):
                        total += (output[b, c, y, x] - target[b, c, y, x]).item() ** 2
                        count += 1
    assert losses.hole_l2(output, target, hole).item() == pytest.approx(total / count, rel=1e-5)
    # Known pixels do not count, however wrong; and the scale is the hole's, not the image's.
    changed = output + 5 * (1 - hole)
    assert losses.hole_l2(changed, target, hole).item() == pytest.approx(total / count, rel=1e-5)
    assert losses.hole_l2(output, target, hole) > (hole * (output - target) ** 2).mean()
    with pytest.raises(ValueError, match="at least one hole pixel"):
        losses.hole_l2(output, target, torch.zeros_like(hole))
    with pytest.raises(ValueError, match="weight must be a finite number"):
        losses.HoleL2Loss(float("nan"))


def test_the_context_encoders_arms_weigh_their_terms_as_told():
    image, hole, prediction = adversarial_example()
    l2 = losses.hole_l2(prediction, image, hole).item()
    loss, parts = losses.HoleL2Loss(0.999)(FixedPrediction(prediction), image, hole)
    assert parts == {"hole_l2": pytest.approx(l2, rel=1e-6)}
    assert loss.item() == pytest.approx(0.999 * l2, rel=1e-6)
    torch.manual_seed(0)
    joint = losses.AdversarialLoss(
        losses.HoleL2Loss(0.0), PatchDiscriminator(width=4, layers=2), weight=0.001, r1_weight=0.0
    )  # the adversarial-only arm: the L2 is reported, not trained
    loss, parts = joint(FixedPrediction(prediction), image, hole)
    assert set(parts) == {"hole_l2", "adversarial"} and parts["hole_l2"] == pytest.approx(l2)
    assert loss.item() == pytest.approx(0.001 * parts["adversarial"], rel=1e-5)
    # Without an R1 weight the discriminator's loss is the plain cross-entropy, no R1 part.
    fake = hole * prediction + (1 - hole) * image
    d_loss, d_parts = joint.discriminator_loss(image, fake, hole)
    real_logits, fake_logits = joint.discriminator(image), joint.discriminator(fake)
    labels = F.adaptive_avg_pool2d(hole, fake_logits.shape[-2:])
    expected = losses.nonsaturating_d_loss(real_logits, fake_logits, labels)
    assert set(d_parts) == {"d_loss"}
    assert d_loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_the_trainer_steps_the_discriminator_after_the_generator(tmp_path):
    from course_lib import train as training

    loss_fn = adversarial_setup()
    before = [p.detach().clone() for p in loss_fn.discriminator.parameters()]
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    model.forward = lambda image, hole, conv=model[0]: conv(image)  # (B, 3, H, W)
    data = InpaintingBatches(size=16, batch_size=4, seed=0)
    result = training.train(
        model, loss_fn, data, 2, lr=1e-2, device="cpu", run_dir=tmp_path, progress=False
    )
    after = list(loss_fn.discriminator.parameters())
    assert all(not torch.equal(old, new) for old, new in zip(before, after, strict=True))
    assert {"d_loss", "r1", "adversarial"} <= set(result.history[-1])
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["discriminator_optimizer"]["state"], "its Adam moments are saved"
    assert checkpoint["discriminator_optimizer"]["param_groups"][0]["betas"] == (0.5, 0.999)


def test_gradient_clipping_bounds_each_update():
    """With plain SGD at rate 1, an update is minus the gradient: clipped to norm 1e-3, no
    step moves the weights further than that."""
    from course_lib import train as training

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
    model.forward = lambda image, hole, conv=model[0]: conv(image) * 10  # large gradients
    data = InpaintingBatches(size=16, batch_size=4, seed=0)
    start = [p.detach().clone() for p in model.parameters()]
    sgd = torch.optim.SGD(model.parameters(), lr=1.0)
    training.train(
        model,
        training.hole_valid_l1,
        data,
        1,
        optimizer=sgd,
        device="cpu",
        clip_grad_norm=1e-3,
        progress=False,
    )
    pairs = zip(model.parameters(), start, strict=True)
    moved = torch.cat([(now.detach() - before).flatten() for now, before in pairs])
    assert 0 < moved.norm().item() <= 1e-3 * (1 + 1e-4)


def assert_resumes_exactly(tmp_path, make_loss, data, **options) -> None:
    """A run of 4 steps equals 2 steps, then 2 more resumed from the checkpoint: the model, the
    adversary and its Adam state all come back from the file (an adversary trained for the
    last 2 steps only would differ). ``make_loss()`` returns the loss and the trainer's
    options that go with it (e.g. its discriminator optimiser)."""
    from course_lib import train as training

    def run(steps: int, folder, seed: int = 0):
        # The adversary's initial weights are part of the run's identity: always seed 0.
        loss_fn, extra = make_loss()
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1))
        model.forward = lambda image, hole, conv=model[0]: torch.sigmoid(conv(image))
        training.train(
            model, loss_fn, data, steps, device="cpu", run_dir=folder, progress=False,
            **options, **extra,
        )  # fmt: skip
        return model, loss_fn

    whole, whole_loss = run(4, tmp_path / "whole")
    run(2, tmp_path / "halves")
    halves, halves_loss = run(4, tmp_path / "halves", seed=9)  # other initial weights
    assert torch.equal(whole[0].weight, halves[0].weight)
    for one, two in zip(
        whole_loss.discriminator.parameters(), halves_loss.discriminator.parameters(), strict=True
    ):
        assert torch.equal(one, two)


def test_an_adversarial_run_resumes_exactly(tmp_path):
    data = InpaintingBatches(size=16, batch_size=4, seed=0)
    assert_resumes_exactly(tmp_path, lambda: (adversarial_setup(0), {}), data, lr=1e-2)


# ---------------------------------------------------------------------------------------------
# LaMa's loss (lesson 05)
# ---------------------------------------------------------------------------------------------


def lama_setup(seed: int = 0, normalise: bool = False) -> losses.LaMaLoss:
    torch.manual_seed(seed)
    discriminator = PatchDiscriminator(width=4, layers=2)
    perceptual = losses.HighReceptiveFieldPerceptual(TinyFeatures(), normalise=normalise)
    return losses.LaMaLoss(discriminator, perceptual)


def test_lama_weights_are_the_papers_config():
    # LaMa's big-lama training config: L1 known x10 (hole x0), adversarial x10, feature
    # matching x100, ResNet perceptual x30; R1 0.001.
    assert dict(losses.LAMA_WEIGHTS) == {
        "known": 10.0,
        "adversarial": 10.0,
        "feature_matching": 100.0,
        "perceptual": 30.0,
    }
    assert losses.LaMaLoss(PatchDiscriminator(width=4, layers=2), TinyFeatures()).r1_weight == 0.001
    with pytest.raises(ValueError, match="must name exactly"):
        losses.LaMaLoss(weights={"known": 1.0})


def test_downsample_hole_nearest_takes_one_pixel_per_cell():
    hole = torch.zeros(1, 1, 4, 4)
    hole[0, 0, 0, 0] = 1  # nearest picks rows and columns 0 and 2 of a 4x4 mask for 2x2
    hole[0, 0, 1, 1] = 1  # not picked: the area mode counts it, nearest does not
    nearest = losses.downsample_hole(hole, 2, mode="nearest")
    assert torch.equal(nearest, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))
    assert torch.equal(losses.downsample_hole(hole, 2), torch.tensor([[[[0.5, 0.0], [0.0, 0.0]]]]))
    assert set(
        losses.downsample_hole(random_hole(size=16), (5, 7), "nearest").unique().tolist()
    ) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="mode must be one of"):
        losses.downsample_hole(hole, 2, mode="bilinear")


def test_squared_feature_matching_is_the_mean_of_layer_mses():
    real = [rand(2, 3, 4, 4, seed=1), rand(2, 5, 2, 2, seed=2)]
    fake = [rand(2, 3, 4, 4, seed=3), rand(2, 5, 2, 2, seed=4)]
    expected = sum(F.mse_loss(f, r).item() for f, r in zip(fake, real, strict=True)) / 2
    got = losses.feature_matching_loss(real, fake, squared=True)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert got.item() != pytest.approx(losses.feature_matching_loss(real, fake).item())


def test_normalised_perceptual_is_a_relative_error_per_layer():
    features = TinyFeatures()
    output, target = rand(2, 3, 16, 16, seed=2), rand(2, 3, 16, 16, seed=3)
    hrf = losses.HighReceptiveFieldPerceptual(features, normalise=True)
    expected = sum(
        (((o - t) ** 2).mean() / (t**2).mean()).item()
        for o, t in zip(features(output), features(target), strict=True)
    )
    assert hrf(output, target).item() == pytest.approx(expected, rel=1e-5)
    # Scale-free: features ten times larger give the same loss.
    scaled = losses.HighReceptiveFieldPerceptual(
        lambda x: [10 * m for m in features(x)], normalise=True
    )
    assert scaled(output, target).item() == pytest.approx(expected, rel=1e-5)

    # An output whose features are all zero scores 1 per layer.
    def zero_but_the_target(x):  # target.float() is target itself: it keeps its features
        return features(x) if x is target else [torch.zeros_like(m) for m in features(x)]

    zero = losses.HighReceptiveFieldPerceptual(zero_but_the_target, normalise=True)
    assert zero(output, target).item() == pytest.approx(3.0, rel=1e-5)


def test_lama_loss_against_its_formula_on_the_raw_prediction():
    image, hole, prediction = adversarial_example()
    loss_fn = lama_setup()
    before = [p.detach().clone() for p in loss_fn.discriminator.parameters()]
    loss, parts = loss_fn(FixedPrediction(prediction), image, hole)
    after = list(loss_fn.discriminator.parameters())
    assert all(torch.equal(old, new) for old, new in zip(before, after, strict=True))
    # The discriminator is shown the raw prediction, not the composite.
    assert torch.equal(loss_fn.last_fake, prediction) and not loss_fn.last_fake.requires_grad
    with torch.no_grad():
        fake_logits, fake_features = loss_fn.discriminator(prediction, return_features=True)
        _, real_features = loss_fn.discriminator(image, return_features=True)
        maps_out, maps_true = TinyFeatures()(prediction), TinyFeatures()(image)
    expected = {
        "known": ((1 - hole) * (prediction - image).abs()).mean().item(),  # no hole L1
        "adversarial": F.softplus(-fake_logits).mean().item(),  # every patch
        "feature_matching": np.mean(
            [F.mse_loss(f, r).item() for f, r in zip(fake_features, real_features, strict=True)]
        ),
        "perceptual": sum(
            F.mse_loss(o, t).item() for o, t in zip(maps_out, maps_true, strict=True)
        ),
    }
    assert parts.keys() == expected.keys()
    for name, value in expected.items():
        assert parts[name] == pytest.approx(value, rel=1e-5), name
    total = sum(losses.LAMA_WEIGHTS[name] * value for name, value in expected.items())
    assert loss.item() == pytest.approx(total, rel=1e-5)
    # Changing the truth inside the hole changes no term but the perceptual and matching
    # ones: the L1 term sees the known pixels only.
    other = image.clone()
    other[hole.expand_as(image) > 0] = 0.5
    _, other_parts = loss_fn(FixedPrediction(prediction), other, hole)
    assert other_parts["known"] == pytest.approx(parts["known"], rel=1e-6)
    assert other_parts["perceptual"] != pytest.approx(parts["perceptual"], rel=1e-3)


def test_lama_discriminator_loss_uses_hard_nearest_labels():
    image, hole, prediction = adversarial_example()
    loss_fn = lama_setup()
    loss, parts = loss_fn.discriminator_loss(image, prediction, hole)
    real = image.clone().requires_grad_(True)
    real_logits = loss_fn.discriminator(real)
    fake_logits = loss_fn.discriminator(prediction)
    labels = F.interpolate(hole, size=fake_logits.shape[-2:], mode="nearest")  # 0 or 1
    expected = (
        F.softplus(-real_logits).mean()
        + (labels * F.softplus(fake_logits) + (1 - labels) * F.softplus(-fake_logits)).mean()
    )
    (gradient,) = torch.autograd.grad(real_logits.sum(), real)
    r1 = gradient.pow(2).sum(dim=(1, 2, 3)).mean()
    assert parts["d_loss"] == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx(expected.item() + 0.001 * r1.item(), rel=1e-4)
    soft = F.adaptive_avg_pool2d(hole, fake_logits.shape[-2:])
    assert not torch.equal(soft, labels), "the example must tell the two label kinds apart"


def test_a_lama_run_resumes_exactly(tmp_path):
    data = InpaintingBatches(size=16, batch_size=4, seed=0, sources=["scenes", "textures"])

    def make_loss():
        loss_fn = lama_setup(0)
        adam = torch.optim.Adam(loss_fn.discriminator.parameters(), lr=1e-4, betas=(0.9, 0.999))
        return loss_fn, {"discriminator_optimizer": adam}

    assert_resumes_exactly(tmp_path, make_loss, data, lr=1e-3, clip_grad_norm=1.0)


def test_spatially_discounted_l1_weighs_each_hole_pixel_by_gamma_to_its_depth():
    from course_lib.masks import centred_box

    hole = centred_box(12, 0.34)  # a 7 x 7 box at rows and columns 2..8
    output, target = rand(1, 3, 12, 12, seed=4), rand(1, 3, 12, 12, seed=5)
    got = losses.spatially_discounted_l1(output, target, hole, gamma=0.5)
    depth = torch.zeros(12, 12)
    for y in range(2, 9):
        for x in range(2, 9):  # the chessboard distance to the nearest known pixel
            depth[y, x] = 1 + min(y - 2, 8 - y, x - 2, 8 - x)
    weight = hole[0, 0] * 0.5**depth
    expected = (weight * (output - target).abs()).mean()
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.spatially_discounted_l1(output, target, hole, gamma=1.0).item() == pytest.approx(
        losses.hole_l1(output, target, hole).item(), rel=1e-6
    )  # no discount: the hole L1
    with pytest.raises(ValueError, match="gamma"):
        losses.spatially_discounted_l1(output, target, hole, gamma=0.0)


def test_the_hinge_losses_follow_their_formulas_element_by_element():
    generator = torch.Generator().manual_seed(3)
    real = torch.randn(2, 1, 3, 4, generator=generator) * 2
    fake = torch.randn(2, 1, 3, 4, generator=generator) * 2
    hole_map = torch.rand(2, 1, 3, 4, generator=generator)
    count = real.numel()
    real_term = sum(max(0.0, 1 - value) for value in real.flatten().tolist()) / count
    fake_term = sum(max(0.0, 1 + value) for value in fake.flatten().tolist()) / count
    assert math.isclose(losses.hinge_d_loss(real, fake).item(), real_term + fake_term, rel_tol=1e-5)
    # With a map, the known patches of a fake count as real.
    mapped = sum(
        m * max(0.0, 1 + f) + (1 - m) * max(0.0, 1 - f)
        for m, f in zip(hole_map.flatten().tolist(), fake.flatten().tolist(), strict=True)
    )
    expected = real_term + mapped / count
    assert math.isclose(losses.hinge_d_loss(real, fake, hole_map).item(), expected, rel_tol=1e-5)
    assert math.isclose(losses.hinge_g_loss(fake).item(), -fake.mean().item(), rel_tol=1e-5)
    weighted = -(hole_map * fake).mean().item()
    assert math.isclose(losses.hinge_g_loss(fake, hole_map).item(), weighted, rel_tol=1e-5)
    # The margin: confident and right costs nothing, unlike the non-saturating loss.
    assert losses.hinge_d_loss(torch.full((1, 1, 2, 2), 1.5), torch.full((1, 1, 2, 2), -2.0)) == 0


def test_spectral_normalisation_brings_every_layer_s_largest_singular_value_to_one():
    torch.manual_seed(0)
    judge = PatchDiscriminator(width=8, layers=2, spectral_norm=True).train()
    images = torch.rand(2, 3, 32, 32)
    for _ in range(30):  # each training-mode call runs one power iteration per layer
        judge(images)
    convs = [module for module in judge.modules() if isinstance(module, nn.Conv2d)]
    assert len(convs) == 4
    for conv in convs:
        sigma = torch.linalg.svdvals(conv.weight.detach().flatten(1))[0].item()
        assert abs(sigma - 1) < 0.02, sigma
    plain = PatchDiscriminator(width=8, layers=2)
    sigmas = [
        torch.linalg.svdvals(m.weight.flatten(1))[0].item()
        for m in plain.modules()
        if isinstance(m, nn.Conv2d)
    ]
    assert max(abs(sigma - 1) for sigma in sigmas) > 0.1, "without it the layers are not normalised"
