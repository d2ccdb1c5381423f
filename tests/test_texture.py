"""Texture statistics of fills (course_lib.texture) and their place in the harness."""

import numpy as np
import pytest
import scipy.linalg
import torch

from course_lib import baselines, evaluate, texture


def slow_frechet(first: np.ndarray, second: np.ndarray) -> float:
    """The textbook formula, with scipy's matrix square root."""
    mu1, mu2 = first.mean(axis=0), second.mean(axis=0)
    s1, s2 = np.cov(first, rowvar=False), np.cov(second, rowvar=False)
    root = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root))


def test_gradient_energy_counts_neighbours_inside_the_hole_only():
    image = torch.zeros(1, 1, 4, 6)
    image[..., 1::2] = 1.0  # vertical stripes: every horizontal step is 1, vertical 0
    hole = torch.zeros(1, 1, 4, 6)
    hole[..., :, 1:4] = 1  # columns 1-3: 2 x 4 horizontal pairs (step 1), 3 x 3 vertical (0)
    energy = texture.gradient_energy(image, hole)
    assert energy.item() == pytest.approx(8 / (8 + 9))
    # Steps across the hole's edge do not count: changing pixels outside changes nothing.
    outside = image.clone()
    outside[..., 0] = 7.0
    assert torch.equal(texture.gradient_energy(outside, hole), energy)
    assert texture.gradient_energy(image, torch.zeros_like(hole)).item() == 0


def test_the_energy_ratio_is_one_for_the_truth_and_small_for_a_blur():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=generator)
    hole = torch.zeros(2, 1, 16, 16)
    hole[..., 4:12, 4:12] = 1
    assert torch.allclose(texture.gradient_energy_ratio(image, image, hole), torch.ones(2))
    blurred = torch.where(hole.bool(), image.mean(), image)
    assert (texture.gradient_energy_ratio(blurred, image, hole) < 0.01).all()
    noisier = torch.where(hole.bool(), torch.rand(2, 3, 16, 16, generator=generator) * 2, image)
    assert (texture.gradient_energy_ratio(noisier, image, hole) > 2).all()


def test_frechet_distance_matches_the_textbook_formula():
    generator = np.random.default_rng(0)
    first = generator.normal(size=(50, 6))
    second = generator.normal(size=(50, 6)) * 1.5 + 0.3
    assert texture.frechet_distance(first, second) == pytest.approx(
        slow_frechet(first, second), rel=1e-6
    )
    assert texture.frechet_distance(first, first) == pytest.approx(0, abs=1e-8)
    shifted = first + np.array([1.0, 2.0, 0, 0, 0, 0])
    assert texture.frechet_distance(first, shifted) == pytest.approx(5.0, rel=1e-6)


def test_paired_frechet_tells_a_faithful_method_from_a_collapsed_one():
    generator = np.random.default_rng(1)
    truth = generator.normal(size=(40, 4))
    faithful = truth + generator.normal(scale=0.1, size=truth.shape)
    collapsed = np.repeat(truth.mean(axis=0, keepdims=True), 40, axis=0)  # every fill the mean
    difference = texture.paired_frechet(faithful, collapsed, truth)
    assert difference.verdict == "better" and difference.mean < 0
    assert texture.paired_frechet(collapsed, faithful, truth).verdict == "worse"
    same = texture.paired_frechet(faithful, faithful, truth)
    assert same.mean == 0 and same.low == same.high == 0
    with pytest.raises(ValueError, match="same pairs"):
        texture.paired_frechet(faithful, collapsed[:-1], truth)


def test_the_harness_scores_texture_for_every_pair():
    """Diffusion continues the context's gradients into the hole, the mean fill is flat."""
    images = evaluate.held_out_images("scenes", 64, 4)
    tables = {
        name: evaluate.evaluate(fill, images, "box", per_band=4, method=name, cache=False)
        for name, fill in (("biharmonic", baselines.biharmonic), ("mean", baselines.mean_fill))
    }
    smooth, flat = tables["biharmonic"], tables["mean"]
    assert all(len(pair["features"]) == len(pair["truth_features"]) == 64 for pair in flat.pairs)
    assert all(pair["grad_log_ratio"] < -5 for pair in flat.pairs)  # under 1/32 of the truth's
    assert all(pair["grad_gap"] == abs(pair["grad_log_ratio"]) for pair in smooth.pairs)
    bands = range(6)
    assert evaluate.paired(smooth, flat, "grad_gap", "box", bands).verdict == "better"
    assert evaluate.frechet(smooth, flat, "box", bands).verdict == "better"
    assert evaluate.frechet_to_truth(smooth, "box", bands) < evaluate.frechet_to_truth(
        flat, "box", bands
    )
    with pytest.raises(ValueError, match="grad_gap"):
        evaluate.paired(smooth, flat, "grad_log_ratio", "box", bands)


def test_hole_correlation_is_one_in_step_zero_flat_and_minus_one_out_of_phase():
    from course_lib import data, masks

    stripes = data.Texture("stripes", ((0.0, 0.0, 0.0), (1.0, 0.5, 0.2)), period=8 / 32)
    truth = data.render_texture(stripes, 32, 32)[None]  # (1, 3, 32, 32)
    hole = masks.centred_box(32, 0.3)
    half_period = data.render_texture(
        data.Texture("stripes", stripes.colours, period=8 / 32, phase=(0.5, 0.0)), 32, 32
    )[None]
    flat = torch.full_like(truth, 0.5)
    scores = [
        texture.hole_correlation(masks.composite(truth, hole, fill), truth, hole).item()
        for fill in (0.3 + 0.4 * truth, half_period, flat)  # brightness and contrast changed
    ]
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] == pytest.approx(-1.0, abs=1e-5)
    assert scores[2] == 0.0
    # Per pair, against a loop over pixels and channels.
    generator = torch.Generator().manual_seed(0)
    images, fills = torch.rand(2, 2, 3, 16, 16, generator=generator)
    holes = masks.generate("box", 2, 16, 16, coverage=0.3, seed=1)
    got = texture.hole_correlation(fills, images, holes)
    for k in range(2):
        region = holes[k, 0].bool()
        expected = np.mean(
            [np.corrcoef(fills[k, c][region], images[k, c][region])[0, 1] for c in range(3)]
        )
        assert got[k].item() == pytest.approx(expected, abs=1e-5)


def test_a_centred_box_sits_in_the_middle_at_the_nearest_coverage():
    from course_lib import masks

    hole = masks.centred_box(64, 0.39, batch=2)
    assert hole.shape == (2, 1, 64, 64) and torch.equal(hole[0], hole[1])
    rows = hole[0, 0].any(dim=1).nonzero().flatten()
    assert (rows.min().item(), rows.max().item()) == (12, 51)  # 40 rows: round(64 * 0.624)
    assert masks.coverage(hole)[0].item() == pytest.approx(40 * 40 / 64**2)
    assert torch.equal(hole[0, 0], hole[0, 0].T)
    with pytest.raises(ValueError, match="known pixels around it"):
        masks.centred_box(8, 0.99)
