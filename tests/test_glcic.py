"""GLCIC's completion network and discriminators (course_lib.glcic)."""

import pytest
import torch
import torch.nn.functional as F

from course_lib.glcic import (
    PLAN,
    CompletionNetwork,
    GlobalLocalDiscriminator,
    hole_crops,
    receptive_field,
)
from course_lib.losses import GlobalLocalAdversarialLoss, HoleL2Loss


def test_the_completion_network_keeps_the_size_and_ignores_hole_pixels():
    torch.manual_seed(0)
    network = CompletionNetwork.from_config("small").eval()
    image = torch.rand(2, 3, 36, 28)
    hole = torch.zeros(2, 1, 36, 28)
    hole[..., 10:20, 8:18] = 1
    out = network(image, hole)
    assert out.shape == (2, 3, 36, 28) and 0 <= out.min() and out.max() <= 1
    scrambled = torch.where(hole.bool(), torch.rand_like(image), image)
    assert torch.equal(network(scrambled, hole), out)
    with pytest.raises(ValueError, match="multiples of 4"):
        network(torch.rand(1, 3, 30, 28), torch.zeros(1, 1, 30, 28))


def test_the_dilations_give_the_receptive_field_the_formula_says():
    torch.manual_seed(0)
    network = CompletionNetwork.from_config("small").eval()
    for module in network.modules():  # positive weights: no accidental cancellation
        if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.uniform_(module.weight, 0.01, 0.1)
    side, fields = 400, []
    for position in range(200, 204):  # the four places on the stride-4 grid
        image = torch.rand(1, 3, side, side, requires_grad=True)
        x = torch.cat([image, torch.zeros(1, 1, side, side)], dim=1)
        network.head(network.body(x))[0, :, position, position].sum().backward()
        rows = image.grad[0].abs().sum(dim=0).gt(0).any(dim=1).nonzero().flatten()
        fields.append(int(rows.max() - rows.min() + 1))
    assert min(fields) < receptive_field() < max(fields) <= receptive_field() + 2
    assert sum(fields) / len(fields) == receptive_field()
    # The dilations add 240 pixels where plain convolutions would add 32.
    plain = receptive_field([(k, kernel, s, 1, w) for k, kernel, s, _, w in PLAN])
    assert receptive_field() - plain == 240 - 32


def test_the_two_discriminators_join_into_one_logit():
    torch.manual_seed(0)
    judge = GlobalLocalDiscriminator(image_size=64, crop_size=32, width=4)
    logits = judge(torch.rand(3, 3, 64, 64), torch.rand(3, 3, 32, 32))
    assert logits.shape == (3, 1)
    with pytest.raises(ValueError, match="built for images of 64"):
        judge(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of 64"):
        GlobalLocalDiscriminator(image_size=100)


def test_hole_crops_centre_on_the_hole_and_stay_inside_the_image():
    images = torch.arange(2 * 3 * 64 * 64, dtype=torch.float32).reshape(2, 3, 64, 64)
    images = images / images.max()
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 20:30, 30:44] = 1  # box centre (25, 37): the crop starts at (25 - 8, 37 - 8)
    hole[1, :, 58:64, 0:4] = 1  # at a corner: the crop is pushed inside
    crops = hole_crops(images, hole, 16)
    assert crops.shape == (2, 3, 16, 16)
    assert torch.equal(crops[0], images[0, :, 17:33, 29:45])
    assert torch.equal(crops[1], images[1, :, 48:64, 0:16])
    no_hole = hole_crops(images, torch.zeros(2, 1, 64, 64), 16)
    assert torch.equal(no_hole[1], images[1, :, 24:40, 24:40])  # the centre
    with pytest.raises(ValueError, match="size must be an int in"):
        hole_crops(images, hole, 65)


def test_without_its_local_branch_the_discriminator_judges_the_whole_image_alone():
    torch.manual_seed(0)
    both = GlobalLocalDiscriminator(image_size=64, crop_size=32, width=4)
    alone = GlobalLocalDiscriminator(image_size=64, crop_size=32, width=4, local=False)
    assert not hasattr(alone, "local_branch") and alone.joined.in_features == 64
    count = sum(p.numel() for p in both.parameters()) - sum(p.numel() for p in alone.parameters())
    local_part = [*both.local_branch.parameters(), *both.local_fc.parameters()]
    assert count == sum(p.numel() for p in local_part) + 64  # and the logit's extra inputs
    assert alone(torch.rand(2, 3, 64, 64)).shape == (2, 1)
    with pytest.raises(ValueError, match="has no local branch"):
        alone(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="needs the hole's crop"):
        both(torch.rand(2, 3, 64, 64))


def test_the_global_local_loss_judges_whole_composites_and_their_hole_crops():
    torch.manual_seed(0)
    judge = GlobalLocalDiscriminator(image_size=64, crop_size=32, width=4).eval()
    loss_fn = GlobalLocalAdversarialLoss(HoleL2Loss(1.0), judge, weight=0.5)
    model = CompletionNetwork(4)
    image = torch.rand(2, 3, 64, 64)
    hole = torch.zeros(2, 1, 64, 64)
    hole[:, :, 8:36, 20:44] = 1
    loss, parts = loss_fn(model, image, hole)
    assert set(parts) == {"hole_l2", "adversarial"}
    assert loss.item() == pytest.approx(parts["hole_l2"] + 0.5 * parts["adversarial"], rel=1e-5)
    fake = loss_fn.last_fake
    crops = [hole_crops(x, hole, 32) for x in (image, fake)]
    real_logits, fake_logits = judge(image, crops[0]), judge(fake, crops[1])  # (B, 1)
    assert parts["adversarial"] == pytest.approx(F.softplus(-fake_logits).mean().item(), rel=1e-5)
    d_loss, d_parts = loss_fn.discriminator_loss(image, fake, hole)
    expected = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    assert set(d_parts) == {"d_loss"} and d_loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()  # the generator gets the adversary's gradient through the composite
    assert all(p.grad is not None for p in model.parameters())


def test_a_plan_without_dilations_builds_the_plain_network_and_keeps_the_strides():
    plain_plan = [(kind, kernel, stride, 1, w) for kind, kernel, stride, _, w in PLAN]
    plain = CompletionNetwork(4, plan=plain_plan)
    convolutions = [m for m in plain.body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.dilation == (1, 1) for m in convolutions)
    dilated = [m for m in CompletionNetwork(4).body.modules() if isinstance(m, torch.nn.Conv2d)]
    assert sorted({m.dilation[0] for m in dilated}) == [1, 2, 4, 8, 16]
    assert plain(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32)).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="keep PLAN's strides"):
        CompletionNetwork(4, plan=[("conv", 3, 1, 1, 1)] * len(PLAN))


def test_the_shipped_adversarial_arms_blur_less_than_their_control_at_its_accuracy():
    """Lesson 08's GLCIC ablation on 16 held-out scenes, one training-kind box each: both
    adversarial arms leave a smaller gradient gap than the L2 control trained as long from
    the same weights, and stay within a few tenths of a dB of its hole PSNR."""
    from course_lib import evaluate, masks, recipes
    from course_lib.checkpoints import load_weights
    from course_lib.train import MODELS

    images = evaluate.held_out_images("scenes", 64, 16)
    hole = masks.generate(
        "box", 16, 64, 64, seed=8, min_boxes=1, max_boxes=1, min_size=24, max_size=32
    )  # (16, 1, 64, 64)
    scores = {}
    for name in ("glcic_small_l2", "glcic_small_global", "glcic_small"):
        model = MODELS[recipes.load(name).model]()
        load_weights(model, name)
        scores[name] = evaluate.pair_scores(model.eval().inpaint(images, hole), images, hole)
    mean = {name: {k: v.mean().item() for k, v in s.items()} for name, s in scores.items()}
    control = mean["glcic_small_l2"]
    for arm in ("glcic_small_global", "glcic_small"):
        assert mean[arm]["grad_gap"] < control["grad_gap"] - 0.1, mean
        assert abs(mean[arm]["hole_psnr"] - control["hole_psnr"]) < 0.4, mean
