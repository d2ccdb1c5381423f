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


def test_results_are_cached_and_the_key_follows_the_code(photos, tmp_path, monkeypatch):
    calls = []
    composite = evaluate._composite

    def counting_composite(*arguments):  # counts the method's runs without being its state
        calls.append(1)
        return composite(*arguments)

    monkeypatch.setattr(evaluate, "_composite", counting_composite)

    def counted(image, hole):
        return grey_fill(image, hole)

    first = evaluate.evaluate(counted, photos, "box", per_band=3, cache_dir=tmp_path)
    made = len(calls)
    second = evaluate.evaluate(counted, photos, "box", per_band=3, cache_dir=tmp_path)
    assert len(calls) == made and second.rows == first.rows  # served from the cache
    assert second.pairs == first.pairs
    evaluate.evaluate(counted, photos[:4], "box", per_band=3, cache_dir=tmp_path)
    assert len(calls) > made  # other images, other key

    def counted_differently(image, hole):
        return torch.zeros_like(image)

    assert evaluate.method_fingerprint(counted) != evaluate.method_fingerprint(counted_differently)


def test_another_environment_does_not_read_this_ones_scores(photos, tmp_path, monkeypatch):
    calls = []

    def counted(image, hole):
        calls.append(1)
        return grey_fill(image, hole)

    evaluate.evaluate(counted, photos, "box", per_band=2, cache_dir=tmp_path)
    made = len(calls)
    versions = evaluate.scoring_versions()
    assert f"torch {torch.__version__}" in versions and "scikit-image" in versions
    assert "opencv" in versions
    # The same clone, another torch: the cached scores of this one must not be served.
    other = versions.replace(f"torch {torch.__version__}", "torch 2.4.0")
    monkeypatch.setattr(evaluate, "scoring_versions", lambda: other)
    evaluate.evaluate(counted, photos, "box", per_band=2, cache_dir=tmp_path)
    assert len(calls) == 2 * made
    assert len(list(tmp_path.glob("*.json"))) == 2


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
    assert "grey_fill" in table and "black" in table and len(table.splitlines()) == 2 + 6 + 1
    assert table.splitlines()[-1].startswith("* fewer than 8 pairs")  # per_band=4 < 8
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


def test_held_out_periodic_scenes_and_their_textures():
    from course_lib.data import PERIODIC_BACKGROUNDS, ProceduralScenes, render_texture

    scenes = ProceduralScenes(size=32, seed=evaluate.TEST_SCENE_SEED)
    periodic = [i for i in range(12) if scenes.background_of(i) in PERIODIC_BACKGROUNDS][:7]
    assert periodic[-1] > 6, "scene 6 has a smooth background: it is skipped"
    with_objects = evaluate.held_out_images("periodic_scenes", 32, 7)
    textures = evaluate.held_out_images("textures", 32, 7)
    for k, index in enumerate(periodic):
        assert torch.equal(with_objects[k], scenes[index][0])
        assert torch.equal(textures[k], render_texture(scenes.scene(index).background, 32, 32))
    assert not torch.equal(with_objects, textures)  # the objects are left out of the textures


# --- the averaging rule, intervals and paired comparisons (trusted tables) -------------------


def test_a_method_exact_on_half_the_pairs_scores_higher_than_one_exact_on_none(photos):
    own = masks.generate("box", 8, 64, 64, coverage=0.25, seed=0)  # (8, 1, 64, 64), band 20-30%
    truth = photos

    def exact_on_even(image, hole):
        index = [int(i) for i in range(len(image))]
        answer = torch.full_like(image, 0.5)
        for i in index[::2]:
            answer[i] = truth[i]  # the true pixels: a perfect fill
        return answer

    half = evaluate.evaluate(exact_on_even, photos, {"own": own}, per_band=8, cache=False)
    none = evaluate.evaluate(grey_fill, photos, {"own": own}, per_band=8, cache=False)
    row = half.row("own", 2)
    assert row["perfect"] == 4 and none.row("own", 2)["perfect"] == 0
    assert max(pair["psnr"] for pair in half.pairs) == evaluate.PSNR_CEILING  # capped, not inf
    assert half.value("own", 2, "psnr") > none.value("own", 2, "psnr")
    assert math.isfinite(half.value("own", 2, "hole_psnr"))
    difference = evaluate.paired(half, none, "psnr", "own", 2)
    assert difference.verdict == "better" and difference.count == 8


def test_every_row_carries_its_interval_and_hole_only_scores(photos, tmp_path):
    table = evaluate.evaluate(grey_fill, photos, "irregular", per_band=6, cache_dir=tmp_path)
    for row in table.rows:
        if row["count"] == 0:
            assert row["psnr_ci"] is None
            continue
        for name in evaluate.METRICS:
            low, high = row[f"{name}_ci"]
            assert low <= row[name] + 1e-9 and row[name] <= high + 1e-9
    # Coverage dilution: the whole-image PSNR is the hole's plus -10 log10(coverage).
    for pair in table.pairs:
        hole = masks.load_eval_set("irregular", 64)[pair["mask"]]
        fraction = hole.mean().item()
        assert pair["psnr"] == pytest.approx(
            pair["hole_psnr"] - 10 * math.log10(fraction), abs=1e-3
        )
        assert pair["l1"] == pytest.approx(pair["hole_l1"] * fraction, abs=1e-6)
    assert "[" in table.format("psnr") and "95% interval" in table.format("psnr")


def test_bootstrap_interval_of_a_constant_column_has_zero_width_and_is_seeded():
    from course_lib.statistics import bootstrap_interval

    assert bootstrap_interval([3.25] * 12) == (3.25, 3.25)
    values = torch.linspace(0, 1, 20)
    assert bootstrap_interval(values) == bootstrap_interval(values)
    low, high = bootstrap_interval(values)
    assert low < 0.5 < high and high - low < 0.5
    with pytest.raises(ValueError, match="cap PSNR"):
        bootstrap_interval([1.0, math.inf])


def test_a_paired_comparison_of_a_method_with_itself_is_exactly_zero(photos, tmp_path):
    table = evaluate.evaluate(grey_fill, photos, "box", per_band=6, cache_dir=tmp_path)
    for band in range(6):
        difference = evaluate.paired(table, table, "psnr", "box", band)
        assert (difference.mean, difference.low, difference.high) == (0.0, 0.0, 0.0)
        assert difference.verdict == "tie"
    assert "tie" in evaluate.verdicts([table], table, "psnr", "box")
    assert "=" in evaluate.compare_paired([table], table, "psnr", "box")


def test_lower_is_better_metrics_read_the_interval_the_other_way(photos):
    own = masks.generate("box", 6, 64, 64, coverage=0.25, seed=0)
    grey = evaluate.evaluate(grey_fill, photos, {"own": own}, per_band=6, cache=False)
    black = evaluate.evaluate(
        lambda i, h: torch.zeros_like(i), photos, {"own": own}, per_band=6, cache=False
    )
    assert evaluate.paired(grey, black, "l1", "own", 2).verdict == "better"
    assert evaluate.paired(grey, black, "psnr", "own", 2).verdict == "better"
    assert evaluate.paired(black, grey, "hole_l1", "own", 2).verdict == "worse"


def test_cells_on_few_pairs_are_marked(photos):
    table = evaluate.evaluate(grey_fill, photos, "irregular", per_band=4, cache=False)
    assert "fewer than 8 pairs" in table.format("psnr")
    assert "*" in evaluate.compare([table], "psnr", "irregular", border="no border")


# --- a cache that cannot go stale ------------------------------------------------------------


def test_partials_with_other_arguments_get_their_own_tables(photos, tmp_path):
    import functools

    def flat(image, hole, level=0.5):
        return torch.full_like(image, level)

    dark = evaluate.evaluate(
        functools.partial(flat, level=0.2),
        photos,
        "box",
        per_band=3,
        method="flat",
        cache_dir=tmp_path,
    )
    light = evaluate.evaluate(
        functools.partial(flat, level=0.8),
        photos,
        "box",
        per_band=3,
        method="flat",
        cache_dir=tmp_path,
    )
    assert dark.value("box", 3, "l1") != light.value("box", 3, "l1")


def test_a_changed_global_or_closure_value_gives_a_fresh_table(photos, tmp_path):
    namespace = {"torch": torch, "LEVEL": 0.2}
    exec("def flat(image, hole):\n    return torch.full_like(image, LEVEL)\n", namespace)
    first = evaluate.evaluate(namespace["flat"], photos, "box", per_band=3, cache_dir=tmp_path)
    namespace["LEVEL"] = 0.9
    second = evaluate.evaluate(namespace["flat"], photos, "box", per_band=3, cache_dir=tmp_path)
    assert first.value("box", 3, "l1") != second.value("box", 3, "l1")

    def make(level):
        return lambda image, hole: torch.full_like(image, level)

    a = evaluate.evaluate(make(0.1), photos, "box", per_band=3, method="c", cache_dir=tmp_path)
    b = evaluate.evaluate(make(0.7), photos, "box", per_band=3, method="c", cache_dir=tmp_path)
    assert a.value("box", 3, "l1") != b.value("box", 3, "l1")


def test_a_lambda_over_a_model_follows_its_weights(photos, tmp_path):
    model = torch.nn.Conv2d(3, 3, 1)
    torch.nn.init.zeros_(model.weight)
    torch.nn.init.constant_(model.bias, 0.3)

    def run(image, hole):
        return model(image).clamp(0, 1)

    before = evaluate.evaluate(run, photos, "box", per_band=3, cache_dir=tmp_path)
    with torch.no_grad():
        model.bias.fill_(0.9)
    after = evaluate.evaluate(run, photos, "box", per_band=3, cache_dir=tmp_path)
    assert before.value("box", 3, "l1") != after.value("box", 3, "l1")


def test_what_cannot_be_fingerprinted_is_scored_afresh_and_said(photos, tmp_path):
    class Opaque:
        def __init__(self):
            self.level = 0.5

    state = Opaque()

    def flat(image, hole):
        return torch.full_like(image, state.level)

    with pytest.warns(UserWarning, match="not cached"):
        first = evaluate.evaluate(flat, photos, "box", per_band=3, cache_dir=tmp_path)
    state.level = 0.1
    with pytest.warns(UserWarning, match="not cached"):
        second = evaluate.evaluate(flat, photos, "box", per_band=3, cache_dir=tmp_path)
    assert first.value("box", 3, "l1") != second.value("box", 3, "l1")
    assert not list(tmp_path.glob("*.json"))


# --- networks in eval mode -------------------------------------------------------------------


def test_a_network_in_training_mode_is_scored_in_eval_mode_and_left_as_it_was(photos, tmp_path):
    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), torch.nn.BatchNorm2d(3))
    network[1].running_mean.fill_(0.2)
    network.train()
    network[0].eval()  # a submodule with its own mode must get it back
    running = network[1].running_mean.clone()

    def run(image, hole):
        return torch.sigmoid(network(image))

    trained_mode = evaluate.evaluate(run, photos, "box", per_band=4, cache=False)
    assert torch.equal(network[1].running_mean, running)  # statistics untouched
    assert network.training and network[1].training and not network[0].training
    network.eval()
    eval_table = evaluate.evaluate(run, photos, "box", per_band=4, cache=False)
    assert trained_mode.rows == eval_table.rows


def test_evaluate_explains_bad_arguments(photos):
    with pytest.raises(ValueError, match="fill must be a function"):
        evaluate.evaluate("telea", photos, "box", cache=False)
    with pytest.raises(ValueError, match="dataset is empty"):
        evaluate.evaluate(grey_fill, [], "box", cache=False)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate.evaluate(grey_fill, photos, "box", batch_size=0, cache=False)
    with pytest.raises(ValueError, match="per_band must be an int"):
        evaluate.evaluate(grey_fill, photos, "box", per_band=True, cache=False)
    with pytest.raises(ValueError, match="empty dict"):
        evaluate.evaluate(grey_fill, photos, {}, cache=False)
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate.evaluate(grey_fill, photos, "box", per_band=2, cache=False).value(
            "box", 0, "lpips"
        )


def test_paired_comparisons_pool_several_bands(photos, tmp_path):
    grey = evaluate.evaluate(grey_fill, photos, "box", per_band=4, cache_dir=tmp_path)
    black = evaluate.evaluate(
        lambda i, h: torch.zeros_like(i),
        photos,
        "box",
        per_band=4,
        method="black",
        cache_dir=tmp_path,
    )
    pooled = evaluate.paired(grey, black, "psnr", "box", (3, 4, 5))
    assert pooled.count == 12
    singles = [evaluate.paired(grey, black, "psnr", "box", band).mean for band in (3, 4, 5)]
    assert pooled.mean == pytest.approx(sum(singles) / 3)


def test_a_class_without_readable_source_is_fingerprinted_by_its_methods():
    namespace = {"torch": torch}
    source = (
        "class Flat(torch.nn.Module):\n"
        "    def forward(self, image):\n"
        "        return image * LEVEL\n"
    )
    exec(source.replace("LEVEL", "0.5"), namespace)
    half = namespace["Flat"]()
    exec(source.replace("LEVEL", "0.25"), namespace)
    quarter = namespace["Flat"]()
    assert evaluate.method_fingerprint(half) != evaluate.method_fingerprint(quarter)


def test_an_oracle_arm_gets_what_the_oracle_makes_of_the_true_images(tmp_path):
    from course_lib import evaluate as harness

    images = torch.rand(4, 3, 64, 64)
    seen = {}

    def fill(image, hole, truth):
        seen["zeroed"] = bool((image * hole).abs().max() == 0)
        return truth  # copies what the oracle passed: the true images here

    table = harness.evaluate(
        fill, images, "box", per_band=1, oracle=lambda x: x.clone(), cache_dir=tmp_path
    )
    assert seen["zeroed"], "the fill itself still gets the images with zeroed holes"
    assert table.pairs and all(pair["l1"] == 0 for pair in table.pairs)
    # Without an oracle the same fill has no third argument to copy from.
    with pytest.raises(TypeError):
        harness.evaluate(fill, images, "box", per_band=1, cache=False)
