"""The masked autoencoder (course_lib.mae): patches, masking, positions, loss, model, training."""

import math

import pytest
import torch

from course_lib import masks, viz
from course_lib.mae import (
    CONFIGS,
    MAELoss,
    MaskedAutoencoder,
    block_masking,
    loss_from,
    mae_loss,
    mae_optimizer,
    masking_from,
    normalize_patches,
    patch_mask_to_pixels,
    patch_statistics,
    patchify,
    pixel_mask_to_patches,
    random_masking,
    sincos_2d_positions,
    unnormalize_patches,
    unpatchify,
    warmup_cosine,
)
from course_lib.train import InpaintingBatches, train


def quick_model(seed: int = 0, **overrides: object) -> MaskedAutoencoder:
    torch.manual_seed(seed)
    return MaskedAutoencoder.from_config("quick", **overrides).eval()


def images(batch: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def identity_tokens(batch: int, length: int) -> torch.Tensor:
    """Tokens ``(B, L, 2)`` that carry their own patch index, so gathered ones can be traced."""
    index = torch.arange(length, dtype=torch.float32).expand(batch, length)
    return torch.stack([index, -index], dim=-1)


def encoder_lengths(model: MaskedAutoencoder) -> tuple[list[int], object]:
    """Record the sequence length that reaches the encoder's first block on every call."""
    lengths: list[int] = []
    handle = model.encoder_blocks[0].register_forward_pre_hook(
        lambda module, args: lengths.append(args[0].shape[1])
    )
    return lengths, handle


# -- patchify / unpatchify ----------------------------------------------------------------------


@pytest.mark.parametrize("patch", [4, 8, 16])
@pytest.mark.parametrize(("height", "width", "channels"), [(64, 64, 3), (32, 48, 3), (48, 16, 1)])
def test_patchify_round_trip(patch: int, height: int, width: int, channels: int) -> None:
    x = torch.rand(2, channels, height, width, generator=torch.Generator().manual_seed(patch))
    tokens = patchify(x, patch)
    assert tokens.shape == (2, (height // patch) * (width // patch), patch * patch * channels)
    assert torch.equal(unpatchify(tokens, patch, height, width, channels), x)


def test_patchify_layout_row_by_row_channels_last() -> None:
    x = images(1, size=16)
    tokens = patchify(x, 8)  # a 2x2 grid
    # Patch 1 is grid row 0, column 1; its pixels row by row, channels last.
    assert torch.equal(tokens[0, 1], x[0, :, :8, 8:].permute(1, 2, 0).reshape(-1))
    assert torch.equal(tokens[0, 2], x[0, :, 8:, :8].permute(1, 2, 0).reshape(-1))


def test_bad_sizes_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="image of 64x60 is not divisible by patch 8"):
        patchify(torch.rand(1, 3, 64, 60), 8)
    with pytest.raises(ValueError, match="not divisible by patch 16"):
        unpatchify(torch.rand(1, 4, 768), 16, 40, 32)
    with pytest.raises(ValueError, match=r"expected \(B, 16, 192\)"):
        unpatchify(torch.rand(1, 15, 192), 8, 32, 32)
    with pytest.raises(ValueError, match="patch must be a positive int"):
        patchify(torch.rand(1, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="not divisible by patch 7"):
        MaskedAutoencoder(image_size=64, patch=7)
    with pytest.raises(ValueError, match="built for 64x64 images"):
        quick_model()(torch.rand(1, 3, 32, 32))


def test_patch_mask_conversions() -> None:
    hole = torch.zeros(1, 1, 16, 16)
    hole[0, 0, 3, 12] = 1  # one pixel in patch (row 0, column 1) of a 2x2 grid
    assert pixel_mask_to_patches(hole, 8).tolist() == [[0.0, 1.0, 0.0, 0.0]]
    pixels = patch_mask_to_pixels(torch.tensor([[0.0, 1.0, 0.0, 0.0]]), 8, 16, 16)
    assert pixels.shape == (1, 1, 16, 16)
    assert pixels[0, 0, :8, 8:].eq(1).all() and pixels.sum() == 64


# -- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [4, 16, 49, 64, 196])
@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_random_masking_keeps_exactly_int_l_times_one_minus_ratio(length: int, ratio: float):
    tokens = identity_tokens(3, length)
    visible, mask, restore = random_masking(tokens, ratio, torch.Generator().manual_seed(1))
    keep = int(length * (1 - ratio))
    assert visible.shape == (3, keep, 2)
    assert mask.shape == (3, length) and mask.dtype == torch.float32
    assert mask.sum(dim=1).tolist() == [length - keep] * 3
    assert sorted(restore[0].tolist()) == list(range(length))  # a permutation


def test_random_masking_follows_the_papers_recipe() -> None:
    # The same noise by hand: shuffle = argsort(noise), restore inverts it, the first
    # `keep` of the shuffle are the visible patches, and the mask is 1 exactly elsewhere.
    batch, length, ratio = 4, 64, 0.75
    tokens = identity_tokens(batch, length)
    visible, mask, restore = random_masking(tokens, ratio, torch.Generator().manual_seed(3))
    shuffle = torch.argsort(torch.rand(batch, length, generator=torch.Generator().manual_seed(3)))
    assert torch.equal(torch.gather(shuffle, 1, restore), torch.arange(length).expand(batch, -1))
    keep = int(length * (1 - ratio))
    assert torch.equal(visible[..., 0].long(), shuffle[:, :keep])
    for b in range(batch):
        kept = set(visible[b, :, 0].long().tolist())
        assert [i for i in range(length) if mask[b, i] == 0] == sorted(kept)
        assert all(mask[b, i] == 1 for i in range(length) if i not in kept)
    # Samples get different masks.
    assert not torch.equal(mask[0], mask[1])


def test_random_masking_same_seed_same_mask() -> None:
    tokens = torch.rand(5, 64, 8)
    first = random_masking(tokens, 0.75, torch.Generator().manual_seed(7))
    second = random_masking(tokens, 0.75, torch.Generator().manual_seed(7))
    other = random_masking(tokens, 0.75, torch.Generator().manual_seed(8))
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first[1], other[1])


@pytest.mark.parametrize("ratio", [1.0, -0.1, 1.5, "0.5", True])
def test_bad_ratio_raises(ratio: object) -> None:
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        random_masking(torch.rand(1, 16, 4), ratio)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        quick_model()(images(1), ratio=ratio)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        MaskedAutoencoder(mask_ratio=ratio)


def test_calling_it_like_an_inpainting_network_explains_itself() -> None:
    with pytest.raises(ValueError, match=r"model.inpaint\(image, hole\)"):
        quick_model()(images(1), torch.zeros(1, 1, 64, 64))


def test_masking_from_a_given_mask() -> None:
    tokens = identity_tokens(2, 8)
    mask = torch.tensor([[0, 1, 1, 0, 0, 1, 0, 1], [1, 1, 0, 0, 0, 0, 1, 1]]).float()
    visible, out_mask, restore = masking_from(tokens, mask)
    assert visible[..., 0].long().tolist() == [[0, 3, 4, 6], [2, 3, 4, 5]]  # grid order
    assert torch.equal(out_mask, mask)
    shuffle = torch.argsort(restore, dim=1)
    assert torch.equal(torch.gather(shuffle, 1, restore), torch.arange(8).expand(2, -1))
    with pytest.raises(ValueError, match="same number of patches"):
        masking_from(tokens, torch.tensor([[1.0] + [0] * 7, [0.0] * 8]))


# -- positions ----------------------------------------------------------------------------------


def test_sincos_positions() -> None:
    table = sincos_2d_positions(8, 6, 32)
    assert table.shape == (48, 32) and table.dtype == torch.float32
    assert table.abs().max() <= 1.0
    assert torch.cdist(table, table).add(torch.eye(48) * 10).min() > 1e-3  # distinct rows
    # Patch 13 sits at row 2, column 1; the first half encodes the row, the second the column.
    row, col, quarter = 2, 1, 8
    frequencies = [1 / 10000 ** (2 * i / 16) for i in range(quarter)]
    assert torch.allclose(
        table[13, :quarter], torch.tensor([math.sin(row * w) for w in frequencies])
    )
    assert torch.allclose(
        table[13, quarter:16], torch.tensor([math.cos(row * w) for w in frequencies])
    )
    assert torch.allclose(table[13, 16:24], torch.tensor([math.sin(col * w) for w in frequencies]))
    with pytest.raises(ValueError, match="multiple of 4"):
        sincos_2d_positions(4, 4, 30)


def test_positions_are_fixed_buffers_and_the_mask_token_is_learned() -> None:
    model = quick_model()
    names = {name for name, _ in model.named_parameters()}
    assert "mask_token" in names and model.mask_token.shape == (1, 1, 64)
    assert not any("positions" in name for name in names)
    assert torch.equal(model.encoder_positions[0], sincos_2d_positions(8, 8, 96))
    assert torch.equal(model.decoder_positions[0], sincos_2d_positions(8, 8, 64))


# -- loss ---------------------------------------------------------------------------------------


def test_loss_counts_removed_patches_only() -> None:
    generator = torch.Generator().manual_seed(0)
    prediction = torch.rand(2, 16, 12, generator=generator)
    target = torch.rand(2, 16, 12, generator=generator)
    _, mask, _ = random_masking(target, 0.75, torch.Generator().manual_seed(1))
    loss = loss_from(prediction, target, mask)
    per_patch = ((prediction - target) ** 2).mean(dim=-1)
    assert torch.allclose(loss, per_patch[mask.bool()].mean())
    visible = (1 - mask).bool()
    changed = target.clone()
    changed[visible] = torch.rand(int(visible.sum()), 12, generator=generator)
    assert torch.equal(loss_from(prediction, changed, mask), loss)
    changed[mask.bool()] += 0.1
    assert not torch.allclose(loss_from(prediction, changed, mask), loss)
    assert loss_from(prediction, target, torch.zeros(2, 16)) == 0  # nothing removed


def test_norm_pix_normalisation_round_trip() -> None:
    tokens = patchify(images(2), 8)
    mean, std = patch_statistics(tokens)
    normalised = normalize_patches(tokens, mean, std)
    assert torch.allclose(normalised.mean(dim=-1), torch.zeros(2, 64), atol=1e-5)
    assert torch.allclose(normalised.var(dim=-1), torch.ones(2, 64), atol=1e-3)
    assert torch.allclose(unnormalize_patches(normalised, mean, std), tokens, atol=1e-5)
    flat = torch.full((1, 1, 192), 0.3)  # a flat patch: eps keeps the deviation positive
    assert torch.isfinite(normalize_patches(flat, *patch_statistics(flat))).all()


def test_forward_loss_matches_its_targets() -> None:
    for norm_pix in (False, True):
        model = quick_model(norm_pix_loss=norm_pix)
        x = images(2)
        loss, prediction, mask = model(x, generator=torch.Generator().manual_seed(0))
        assert prediction.shape == (2, 64, 192) and mask.sum(dim=1).tolist() == [48, 48]
        target = patchify(x, 8)
        if norm_pix:
            target = normalize_patches(target, *patch_statistics(target))
        assert torch.allclose(loss, loss_from(prediction, target, mask))


# -- model --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75])
def test_encoder_sees_only_visible_tokens(ratio: float) -> None:
    model = quick_model()
    lengths, handle = encoder_lengths(model)
    model(images(2), ratio=ratio)
    handle.remove()
    assert lengths == [int(64 * (1 - ratio))]


def test_default_ratio_and_configs() -> None:
    assert set(CONFIGS) == {"quick", "full"}
    model = quick_model()
    assert model.mask_ratio == 0.75 and model.num_patches == 64
    _, _, mask = model(images(1))
    assert mask.sum() == 48
    counts = {name: MaskedAutoencoder.from_config(name).parameter_count() for name in CONFIGS}
    assert counts["quick"] < 1_000_000 < counts["full"]
    with pytest.raises(ValueError, match="unknown configuration"):
        MaskedAutoencoder.from_config("huge")


def test_no_visible_patch_still_decodes() -> None:
    torch.manual_seed(0)
    model = MaskedAutoencoder(image_size=16, patch=8, dim=16, depth=1, heads=2, decoder_dim=16)
    loss, prediction, mask = model(images(2, size=16), ratio=0.9)  # int(4 * 0.1) = 0 kept
    assert mask.eq(1).all() and torch.isfinite(loss) and torch.isfinite(prediction).all()


def test_reconstruct_panels() -> None:
    x = images(2)
    model = quick_model()
    panels = model.reconstruct(x, generator=torch.Generator().manual_seed(0))
    assert set(panels) == {"original", "masked", "reconstruction", "pasted", "mask"}
    removed = panels["mask"]
    assert removed.shape == (2, 1, 64, 64) and removed.mean() == 0.75
    with torch.no_grad():  # as in reconstruct: the transformer layers' inference path
        _, prediction, mask = model(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(removed, patch_mask_to_pixels(mask, 8, 64, 64))
    reconstruction = unpatchify(prediction, 8, 64, 64).clamp(0, 1)
    assert torch.equal(panels["reconstruction"], reconstruction)
    keep = removed.expand_as(x) == 0
    assert torch.equal(panels["pasted"][keep], x[keep])
    assert torch.equal(panels["pasted"][~keep], reconstruction[~keep])
    assert torch.equal(panels["masked"], viz.masked_input(x, removed))  # the course's hole picture


def test_reconstruct_with_norm_pix_uses_the_true_patch_statistics() -> None:
    x = images(2)
    model = quick_model(norm_pix_loss=True)
    panels = model.reconstruct(x, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        _, prediction, _ = model(x, generator=torch.Generator().manual_seed(0))
    shown = unnormalize_patches(prediction, *patch_statistics(patchify(x, 8)))
    assert torch.equal(panels["reconstruction"], unpatchify(shown, 8, 64, 64).clamp(0, 1))


# -- inpainting ---------------------------------------------------------------------------------


def test_inpaint_is_a_hole_driven_composite() -> None:
    model = quick_model()
    x = images(3)
    hole = masks.generate("mixed", 3, 64, 64, 0.25, seed=0)
    hole[2] = 0
    hole[2, 0, 20, 33] = 1  # a single hole pixel: its patch alone is removed
    lengths, handle = encoder_lengths(model)
    out = model.inpaint(x, hole)
    handle.remove()
    assert out.shape == x.shape
    known = (1 - hole).expand_as(x).bool()
    assert torch.equal(out[known], x[known])
    # Every patch touched by a hole pixel is removed: per image, the encoder sees the rest.
    untouched = (1 - pixel_mask_to_patches(hole, 8)).sum(dim=1).long().tolist()
    assert lengths == untouched and untouched[2] == 63


def test_inpaint_ignores_hole_pixels_and_touched_patches() -> None:
    model = quick_model()
    x = images(2)
    hole = masks.generate("box", 2, 64, 64, 0.2, seed=1)
    out = model.inpaint(x, hole)
    # Any values in the hole: the same answer.
    noisy = torch.where(hole.bool(), torch.rand(x.shape), x)
    assert torch.allclose(model.inpaint(noisy, hole), out)
    # Known pixels of a touched patch are not seen either: they only come back as themselves.
    touched = patch_mask_to_pixels(pixel_mask_to_patches(hole, 8), 8, 64, 64)
    edge = (touched - hole).bool().expand_as(x)
    assert edge.any()
    changed = torch.where(edge, 1 - x, x)
    again = model.inpaint(changed, hole)
    assert torch.allclose(again[~edge], out[~edge]) and torch.equal(again[edge], changed[edge])


def test_inpaint_refuses_norm_pix_models_and_bad_masks() -> None:
    with pytest.raises(ValueError, match="norm_pix_loss=False"):
        quick_model(norm_pix_loss=True).inpaint(images(1), torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="binary"):
        quick_model().inpaint(images(1), torch.full((1, 1, 64, 64), 0.5))
    full_hole = torch.ones(1, 1, 64, 64)  # nothing visible: refused, as by every other method
    with pytest.raises(ValueError, match="all hole: there is nothing to inpaint from"):
        quick_model().inpaint(images(1), full_hole)


# -- pre-training -------------------------------------------------------------------------------


def test_mae_loss_ignores_the_hole() -> None:
    model = quick_model()
    x = images(2)
    torch.manual_seed(5)
    first, parts = mae_loss(model, x, torch.zeros(2, 1, 64, 64))
    torch.manual_seed(5)
    second, _ = mae_loss(model, x, torch.ones(2, 1, 64, 64))
    assert torch.equal(first, second) and parts == {"mse_removed": first.item()}


def test_optimizer_and_schedule() -> None:
    model = quick_model()
    optimizer = mae_optimizer(model, batch_size=64)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1.5e-4 * 64 / 256)
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.95)
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and plain["weight_decay"] == 0.0
    assert any(p is model.mask_token for p in plain["params"])
    assert all(p.ndim >= 2 for p in decayed["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    scheduler = warmup_cosine(optimizer, warmup_steps=4, total_steps=12)
    factors = []
    for _ in range(12):
        factors.append(scheduler.get_last_lr()[0] / (1.5e-4 * 64 / 256))
        optimizer.step()
        scheduler.step()
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert factors[4] == pytest.approx(1.0) and factors[8] == pytest.approx(0.5)
    assert all(a > b for a, b in zip(factors[4:], factors[5:], strict=False))
    with pytest.raises(ValueError, match="warmup_steps <= total_steps"):
        warmup_cosine(optimizer, 5, 4)


def test_training_with_the_course_loop_lowers_the_loss() -> None:
    model = quick_model()
    steps = 40
    optimizer = mae_optimizer(model, batch_size=8, base_lr=1.5e-2)
    result = train(
        model,
        mae_loss,
        InpaintingBatches(size=64, batch_size=8),
        steps,
        optimizer=optimizer,
        scheduler=warmup_cosine(optimizer, 5, steps),
        device="cpu",
        progress=False,
    )
    losses = [entry["mse_removed"] for entry in result.history]
    assert len(losses) == steps
    assert sum(losses[-8:]) / 8 < 0.5 * sum(losses[:8]) / 8


@pytest.mark.parametrize("norm_pix", [False, True])  # a norm-pix model shows reconstructions
def test_the_training_loop_saves_samples_of_a_masked_autoencoder(tmp_path, norm_pix):
    torch.manual_seed(0)
    model = MaskedAutoencoder.from_config("quick", norm_pix_loss=norm_pix)
    data = InpaintingBatches(size=64, batch_size=4, mask_kind="mae", patch=8, coverage=0.75)
    optimizer = mae_optimizer(model, batch_size=4, base_lr=1.5e-3)
    result = train(model, mae_loss, data, 2, optimizer=optimizer, run_dir=tmp_path, progress=False)
    assert result.steps == 2
    assert (tmp_path / "samples" / "step_000002.png").is_file()


# -- masks that match the use (lesson 06) -----------------------------------------------------


def _neighbour_pairs(mask: torch.Tensor, side: int) -> float:
    """Mean count of removed-removed pairs of grid neighbours per sample: clumpiness."""
    grid = mask.view(-1, side, side)
    across = (grid[:, :, 1:] * grid[:, :, :-1]).sum(dim=(1, 2))
    down = (grid[:, 1:, :] * grid[:, :-1, :]).sum(dim=(1, 2))
    return (across + down).float().mean().item()


@pytest.mark.parametrize("ratio", [0.5, 0.75, 0.9])
def test_block_masking_removes_the_exact_count_in_clumps(ratio: float) -> None:
    tokens = identity_tokens(64, 64)
    generator = torch.Generator().manual_seed(0)
    visible, mask, restore = block_masking(tokens, ratio, (8, 8), generator)
    keep = int(64 * (1 - ratio))
    assert visible.shape == (64, keep, 2) and (mask.sum(dim=1) == 64 - keep).all()
    # the visible tokens are exactly the patches the mask keeps, and restore undoes the shuffle
    kept = visible[..., 0].long().sort(dim=1).values
    assert torch.equal(kept, (mask == 0).nonzero()[:, 1].view(64, keep))
    assert torch.equal(restore.sort(dim=1).values, torch.arange(64).expand(64, 64))
    _, random_mask, _ = random_masking(tokens, ratio, torch.Generator().manual_seed(0))
    assert _neighbour_pairs(mask, 8) > _neighbour_pairs(random_mask, 8) + 3


def test_block_masking_is_seeded_and_checks_its_grid() -> None:
    tokens = identity_tokens(4, 64)
    first = block_masking(tokens, 0.75, (8, 8), torch.Generator().manual_seed(3))[1]
    again = block_masking(tokens, 0.75, (8, 8), torch.Generator().manual_seed(3))[1]
    assert torch.equal(first, again)
    with pytest.raises(ValueError, match="grid"):
        block_masking(tokens, 0.75, (8, 4))


def test_mae_loss_with_random_masks_is_mae_loss() -> None:
    model, batch = quick_model(), images(4)
    hole = torch.zeros(4, 1, 64, 64)
    torch.manual_seed(5)
    expected, _ = mae_loss(model, batch, hole)
    torch.manual_seed(5)
    got, parts = MAELoss()(model, batch, hole)
    assert torch.equal(got, expected) and parts == {"mse_removed": got.item()}
    torch.manual_seed(5)
    lengths, handle = encoder_lengths(model)
    MAELoss(ratio=0.5)(model, batch, hole)
    handle.remove()
    assert lengths == [32]  # half of the 64 patches reach the encoder


def test_a_ratio_range_draws_each_batch_inside_it() -> None:
    loss, model = MAELoss(ratio=(0.2, 0.6)), quick_model()
    torch.manual_seed(0)
    drawn = [loss._batch_ratio(model) for _ in range(200)]
    assert 0.2 <= min(drawn) < 0.25 and 0.55 < max(drawn) <= 0.6


def test_hole_masks_remove_every_patch_a_hole_touches_and_score_only_those() -> None:
    model, batch = quick_model(), images(3)
    hole = torch.zeros(3, 1, 64, 64)
    hole[0, :, 3:5, 3:5] = 1  # one patch
    hole[1, :, 10:30, 0:64] = 1  # three rows of patches
    hole[2] = 1  # every patch: the least covered one stays visible
    hole[2, :, 0:8, 0:4] = 0
    loss, _ = MAELoss("holes")(model, batch, hole)
    # by hand: each image through masking_from with its own patch mask
    totals, counts = [], []
    for index in range(3):
        removed = pixel_mask_to_patches(hole[index : index + 1], 8)
        if index == 2:
            removed[0, 0] = 0
        visible, mask, restore = masking_from(model.embed(batch[index : index + 1]), removed)
        prediction = model.decode(model.encode_visible(visible), restore)
        target = model.targets(batch[index : index + 1])
        totals.append(loss_from(prediction, target, mask) * mask.sum())
        counts.append(mask.sum())
    assert [int(c) for c in counts] == [1, 24, 63]
    assert torch.allclose(loss, sum(totals) / sum(counts), atol=1e-6)


def test_mae_loss_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="masking"):
        MAELoss("stripes")
    with pytest.raises(ValueError, match="low <= high"):
        MAELoss(ratio=(0.8, 0.2))
    with pytest.raises(ValueError, match="ratio"):
        MAELoss("holes", ratio=0.75)
    assert "masking='block'" in repr(MAELoss("block", 0.75))
