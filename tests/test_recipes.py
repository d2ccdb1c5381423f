"""Recipes as data (course_lib.recipes) and the training command's --recipe path."""

import json
from pathlib import Path

import pytest
import torch

from course_lib import checkpoints, losses, recipes
from course_lib import train as training

TINY_RECIPE = """
description = "a test recipe: a tiny network, a few steps"
model = "tiny"
steps = 3
seed = 5

[data]
sources = ["scenes"]
size = 32
batch_size = 4
mask_kind = "irregular"
mask_options = { preset = "thick" }

[loss]
terms = "l1"

[optimiser]
name = "adam"
lr = 1e-3
"""


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU())
        self.head = torch.nn.Conv2d(6, 3, 3, padding=1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(torch.cat([image, hole], dim=1))))


@pytest.fixture
def tiny_recipe(tmp_path, monkeypatch):
    monkeypatch.setitem(training.MODELS, "tiny", Tiny)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_RECIPE)
    return path


def test_every_shipped_weight_file_has_a_recipe_that_matches_its_record():
    shipped = sorted(p.stem for p in checkpoints.WEIGHTS_DIR.glob("*.json"))
    trained_elsewhere = {"course_features"}  # made by python -m course_lib.feature_nets train
    assert set(recipes.names()) == set(shipped) - trained_elsewhere
    loss_names = {
        ("l1", None): "l1",
        ("pconv", 0.1, False): "pconv_course",
        ("pconv", 0.0, False): "perceptual_style_course",
        ("pconv", 0.1, True): "pconv_course_adversarial",
        ("mae", None): "mae",
    }
    for name in recipes.names():
        recipe = recipes.load(name)
        record = json.loads(checkpoints.weights_files(name)[1].read_text())
        assert recipe.model in training.MODELS
        assert (recipe.steps, recipe.seed, recipe.init) == (
            record["steps"],
            record["seed"],
            record.get("init"),
        ), name
        assert recipe.optimiser["lr"] == record["lr"], name
        data = {key: record["data"][key] for key in ("sources", "size", "batch_size", "mask_kind")}
        assert {key: recipe.data[key] for key in data} == data, name
        loss = recipe.loss
        key = (
            (loss["terms"], loss["weights"]["tv"], "adversarial" in loss)
            if loss["terms"] == "pconv"
            else (loss["terms"], None)
        )
        if isinstance(record["loss"], dict):  # made by --recipe: the record holds the table
            assert record["loss"] == recipe.loss, name
        else:  # made before recipes existed, by the --loss flag the table stands for
            assert loss_names[key] == record["loss"], name
        if "recipe" in record:  # made by --recipe: by this very file
            assert (record["recipe"], record["recipe_sha256"]) == (name, recipe.sha256), name
        if record.get("init_sha256"):  # a later stage: from the file shipped under that name
            init_file = checkpoints.weights_files(record["init"])[0]
            assert record["init_sha256"] == checkpoints.file_sha256(init_file), name
        if loss["terms"] == "pconv":  # the course's weights, and style lowered from 120 to 6
            assert loss["weights"] | {"tv": 0.1} == dict(losses.COURSE_WEIGHTS), name


def test_the_library_reads_its_defaults_from_the_recipes():
    assert training.DEFAULT_LR == recipes.load("pconv_unet_small_stage1").optimiser["lr"]
    assert training.MAE_BASE_LR == recipes.load("mae_quick").optimiser["lr"]
    assert dict(losses.COURSE_WEIGHTS) == recipes.load("ablation_full").loss["weights"]
    assert losses.COURSE_WEIGHTS["style"] == 6.0 and losses.PAPER_WEIGHTS["style"] == 120.0


def test_a_recipe_trains_twice_to_identical_weights(tiny_recipe, tmp_path):
    for rerun in ("a", "b"):
        arguments = ["--recipe", str(tiny_recipe), "--run-dir", str(tmp_path / f"run_{rerun}")]
        assert training.main([*arguments, "--quiet", "--export", str(tmp_path / rerun)]) == 0
    first = checkpoints.file_sha256(tmp_path / "a.pt")
    assert first == checkpoints.file_sha256(tmp_path / "b.pt")
    record = json.loads((tmp_path / "a.json").read_text())
    assert (
        record["recipe"] == "tiny" and record["recipe_sha256"] == recipes.load(tiny_recipe).sha256
    )
    assert record["steps"] == 3 and record["seed"] == 5 and record["data"]["size"] == 32
    assert record["data"]["mask_options"] == {"preset": "thick"}
    assert record["seconds"] >= 0 and "threads" in record["machine"]


def test_a_recipe_resumes_exactly(tiny_recipe, tmp_path):
    whole = ["--recipe", str(tiny_recipe), "--run-dir", str(tmp_path / "whole"), "--quiet"]
    assert training.main([*whole, "--export", str(tmp_path / "whole")]) == 0
    # The same recipe cut after one step, then resumed from its checkpoint.
    short = tmp_path / "short.toml"
    short.write_text(TINY_RECIPE.replace("steps = 3", "steps = 1"))
    folder = str(tmp_path / "cut")
    assert training.main(["--recipe", str(short), "--run-dir", folder, "--quiet"]) == 0
    resumed = tmp_path / "tiny.toml"  # same file name: the recipe is the same run
    arguments = ["--recipe", str(resumed), "--run-dir", folder, "--quiet"]
    assert (
        training.main(
            [*arguments, "--export", str(tmp_path / "resumed"), "--checkpoint-every", "1"]
        )
        == 0
    )
    assert checkpoints.file_sha256(tmp_path / "whole.pt") == checkpoints.file_sha256(
        tmp_path / "resumed.pt"
    )


def test_a_recipe_refuses_flags_it_sets_and_existing_weights(tiny_recipe, tmp_path, capsys):
    base = ["--recipe", str(tiny_recipe), "--run-dir", str(tmp_path / "run")]
    with pytest.raises(SystemExit):
        training.main([*base, "--lr", "0.1"])
    assert "copy the recipe file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a shipped recipe would replace the shipped weights
        training.main(["--recipe", "pconv_unet_small", "--run-dir", str(tmp_path / "r")])
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        training.main(["--recipe", "no_such_recipe", "--run-dir", str(tmp_path / "r")])
    assert "no recipe 'no_such_recipe'" in capsys.readouterr().err


HOLE_L2_ADVERSARY = 'terms = "hole_l2"\nweights = { hole = 1.0 }\n[loss.adversarial]\n'
GLOBAL_LOCAL = (
    'kind = "global_local"\nweight = 0.1\n'
    "discriminator = { image_size = 64, crop_size = 32, width = 4, local = true }"
)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("steps = 3", "steps = 0"), "steps must be a whole number"),
        (('terms = "l1"', 'terms = "l2"'), "terms must be one of"),
        (('name = "adam"', 'name = "sgd"'), "name must be one of"),
        (("lr = 1e-3", "lr = 5"), r"lr must be a number in \(0, 1\)"),
        (("seed = 5", "seed = 5\nepochs = 3"), r"unknown key\(s\) \['epochs'\]"),
        (('mask_kind = "irregular"\n', ""), r"missing key\(s\) \['mask_kind'\]"),
        (('terms = "l1"', 'terms = "pconv"'), r"missing key\(s\) \['features', 'weights'\]"),
        (("lr = 1e-3", "lr = 1e-3\nwarmup_fraction = 0.1"), "warmup_fraction belongs"),
        (("[loss]", "[loss"), "not a valid TOML file"),
        (('terms = "l1"', 'terms = "lama"'), r"missing key\(s\) \['discriminator', 'normalise"),
        (("lr = 1e-3", "lr = 1e-3\ndiscriminator_betas = [0.9, 0.999]"), "needs an adversarial"),
        (('terms = "l1"', 'terms = "mae"\nblocks = 4'), r"unknown key\(s\) \['blocks'\]"),
        (('terms = "l1"', 'terms = "l1"\nmasking = "block"'), r"takes no \['masking'\]"),
        (('terms = "l1"', 'terms = "hole_l2"'), r"missing key\(s\) \['weights'\]"),
        (('terms = "l1"', 'terms = "hole_l2"\nweights = { valid = 1.0 }'), r"\['valid'\]"),
        (('terms = "l1"', HOLE_L2_ADVERSARY + 'kind = "deep"\nweight = 0.1'), "kind must be one"),
        (
            (
                'terms = "l1"',
                'terms = "edges"\nweights = { adversarial = 1.0 }\n'
                "discriminator = { width = 4, layers = 2 }",
            ),
            r"missing key\(s\) \['feature_matching'\]",
        ),
        (
            ('terms = "l1"', HOLE_L2_ADVERSARY + GLOBAL_LOCAL.replace(", local = true", "")),
            r"missing key\(s\) \['local'\]",
        ),
        (
            ('terms = "l1"', HOLE_L2_ADVERSARY + GLOBAL_LOCAL + "\nr1_weight = 0.0"),
            r"unknown key\(s\) \['r1_weight'\]",
        ),
    ],
)
def test_a_bad_recipe_is_explained(tmp_path, change, message):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_RECIPE.replace(*change))
    with pytest.raises(ValueError, match=message):
        recipes.load(path)


def test_recipes_build_their_losses_and_optimisers():
    full = training.build_loss(recipes.load("ablation_full").loss)
    assert isinstance(full, losses.PConvLoss) and full.weights == dict(losses.COURSE_WEIGHTS)
    adversarial = training.build_loss(recipes.load("ablation_adversarial").loss)
    assert isinstance(adversarial, losses.AdversarialLoss)
    assert (adversarial.weight, adversarial.r1_weight) == (0.1, 0.001)
    assert training.build_loss(recipes.load("pconv_unet_small").loss) is training.hole_valid_l1
    from course_lib import mae

    assert training.build_loss(recipes.load("mae_quick").loss) is mae.mae_loss
    block = training.build_loss(recipes.load("mae_quick_norm_pix_block").loss)
    assert isinstance(block, mae.MAELoss) and (block.masking, block.ratio) == ("block", 0.75)
    ranged = training.build_loss({"terms": "mae", "ratio": [0.2, 0.9]})  # a TOML list
    assert ranged.masking == "random" and ranged.ratio == (0.2, 0.9)
    lama = training.build_loss(recipes.load("tiny_lama_shallow").loss)
    assert isinstance(lama, losses.LaMaLoss) and lama.weights == dict(losses.LAMA_WEIGHTS)
    assert lama.r1_weight == 0.001 and lama.perceptual.normalise
    assert lama.perceptual.network.name == "course_dilated"
    # Each logit sees patches, not the whole 64x64 image.
    assert lama.discriminator.receptive_field < 64 <= recipes.load("tiny_lama_shallow").data["size"]
    model = Tiny()
    optimizer, scheduler = training.build_optimiser(
        recipes.load("mae_quick").optimiser, model, steps=6000, batch_size=16
    )
    assert type(optimizer).__name__ == "AdamW" and scheduler is not None
    # 5% of 6,000 steps warm up: the rate grows for 300 steps, then decays.
    rates = []
    for _ in range(302):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[298] < rates[299] == max(rates) and rates[301] < rates[299]
    assert Path(recipes.path_of("mae_quick")).name == "mae_quick.toml"


MATCHED_RECIPE = TINY_RECIPE.replace(
    'mask_kind = "irregular"\nmask_options = { preset = "thick" }',
    'mask_kind = [{ kind = "box" }, { kind = "irregular", preset = "medium" }]\n'
    "coverage = [0.05, 0.55]\nflip = true\nphoto_short_sides = [64, 96]",
).replace('sources = ["scenes"]', 'sources = ["photos", "scenes"]') + (
    "\n[validation]\nevery = 2\npairs = 4\n"
)


def test_a_recipe_matches_its_masks_to_the_evaluation_and_records_a_learning_curve(
    tmp_path, monkeypatch
):
    monkeypatch.setitem(training.MODELS, "tiny", Tiny)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    path = tmp_path / "matched.toml"
    path.write_text(MATCHED_RECIPE)
    recipe = recipes.load(path)
    assert recipe.validation == {"every": 2, "pairs": 4}
    arguments = ["--recipe", str(path), "--run-dir", str(tmp_path / "run"), "--quiet"]
    assert training.main([*arguments, "--export", str(tmp_path / "matched")]) == 0
    history = json.loads((tmp_path / "run" / "history.json").read_text())["history"]
    curve = [row.get("val_hole_psnr") for row in history]
    assert curve[0] is None and curve[1] is not None and curve[2] is not None  # steps 2 and 3
    assert all(0 < value <= 60 for value in curve[1:])
    record = json.loads((tmp_path / "matched.json").read_text())
    assert record["data"]["coverage"] == [0.05, 0.55] and record["data"]["flip"] is True
    assert record["data"]["mask_kind"][1] == {"kind": "irregular", "preset": "medium"}
    # The exported record keeps the learning curve for lessons to plot.
    assert record["validation_curve"] == [[2, curve[1]], [3, curve[2]]]


def test_matched_masks_spread_over_the_bands_and_the_kinds():
    from course_lib import masks

    data = training.InpaintingBatches(
        sources="scenes",
        size=64,
        batch_size=32,
        mask_kind=[{"kind": "box"}, {"kind": "irregular", "preset": "medium"}],
        coverage=(0.02, 0.58),
    )
    _, hole = data.batch(0)
    coverage = masks.coverage(hole)
    assert coverage.min() < 0.15 and coverage.max() > 0.45  # the bands, not one size
    bands = {masks.band_of(hole[i : i + 1])[0] for i in range(len(hole))}
    assert len(bands) >= 5
    assert torch.equal(data.batch(3)[1], data.batch(3)[1])  # a batch depends on its step only
    with pytest.raises(ValueError, match="coverage range"):
        training.InpaintingBatches(sources="scenes", coverage=(0.5, 0.2))
    with pytest.raises(ValueError, match="needs a 'kind'"):
        training.InpaintingBatches(sources="scenes", mask_kind=[{"preset": "thick"}])


def test_validation_pairs_are_neither_training_nor_test_images():
    from course_lib import evaluate
    from course_lib.data import PhotoPatches, photo_names

    images, holes = training.validation_pairs(64, 8)
    assert images.shape == (8, 3, 64, 64) and holes.shape == (8, 1, 64, 64)
    assert not set(photo_names("validation")) & set(photo_names("train"))
    assert not set(photo_names("validation")) & set(photo_names("test"))
    assert PhotoPatches(64, split="validation").photos == ("grace_hopper",)
    test_scenes = evaluate.held_out_images("scenes", 64, 4)
    assert not any(torch.equal(image, scene) for image in images[4:] for scene in test_scenes)
    assert torch.equal(images, training.validation_pairs(64, 8)[0])  # fixed


def test_the_fine_tuning_stage_freezes_the_encoder_batch_norms(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    stage = TINY_RECIPE.replace(
        'model = "tiny"', 'model = "pconv_unet_small"\nfreeze_encoder_bn = true'
    )
    stage = stage.replace("size = 32", "size = 64").replace("steps = 3", "steps = 1")
    path = tmp_path / "stage2.toml"
    path.write_text(stage)
    arguments = ["--recipe", str(path), "--run-dir", str(tmp_path / "run"), "--quiet"]
    assert training.main([*arguments, "--export", str(tmp_path / "stage2")]) == 0
    from course_lib.unet import PConvUNet

    trained = PConvUNet.from_config("small")
    training.load_weights(trained, tmp_path / "stage2")
    # A fresh network's running means are 0; a training step moves the unfrozen ones only.
    encoder_means = [n.running_mean for n in trained.encoder_norms()]
    assert all(torch.equal(mean, torch.zeros_like(mean)) for mean in encoder_means)  # never updated
    decoder_norms = [m for m in trained.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert any(
        not torch.equal(n.running_mean, torch.zeros_like(n.running_mean)) for n in decoder_norms
    )
    path.write_text(stage.replace('model = "pconv_unet_small"', 'model = "tiny"'))
    monkeypatch.setitem(training.MODELS, "tiny", Tiny)
    with pytest.raises(SystemExit):
        training.main(["--recipe", str(path), "--run-dir", str(tmp_path / "r2"), "--quiet"])
    assert "fine-tuning stage" in capsys.readouterr().err


def test_the_train_bench_splits_a_step_into_its_phases():
    import argparse

    from course_lib.bench_suites import train_suite

    records = list(train_suite(argparse.Namespace(repeats=1)))
    assert [record["recipe"] for record in records] == [
        "pconv_unet_small",
        "ablation_full",
        "tiny_lama_small",
    ]
    for record in records:
        phases = [
            record[f"{phase}_seconds"] for phase in ("batch", "forward", "backward", "optimiser")
        ]
        # The batch was made in the background: waiting for it can round to 0.0000 s.
        assert phases[0] >= 0 and all(value > 0 for value in phases[1:])
        assert record["total_seconds"] == pytest.approx(sum(phases), abs=1e-3)
        assert 0 <= record["batch_share"] < 1 and record["batch_serial_seconds"] > 0


def test_a_stage_records_the_weights_it_started_from(tiny_recipe, tmp_path):
    first = ["--recipe", str(tiny_recipe), "--run-dir", str(tmp_path / "one"), "--quiet"]
    assert training.main([*first, "--export", str(tmp_path / "stage1")]) == 0
    stage2 = tmp_path / "stage2.toml"
    stage2.write_text(
        TINY_RECIPE.replace("steps = 3", f'init = "{tmp_path / "stage1"}"\nsteps = 2')
    )
    second = ["--recipe", str(stage2), "--run-dir", str(tmp_path / "two"), "--quiet"]
    assert training.main([*second, "--export", str(tmp_path / "stage2")]) == 0
    record = json.loads((tmp_path / "stage2.json").read_text())
    assert record["init"] == str(tmp_path / "stage1")
    assert record["init_sha256"] == checkpoints.file_sha256(tmp_path / "stage1.pt")


LAMA_TABLES = """
[loss]
terms = "lama"
weights = { known = 10.0, adversarial = 10.0, feature_matching = 100.0, perceptual = 30.0 }
r1_weight = 0.001
discriminator = { width = 4, layers = 2 }
normalise_perceptual = true

[optimiser]
name = "adam"
lr = 1e-3
discriminator_lr = 1e-4
discriminator_betas = [0.9, 0.999]
clip_grad_norm = 1.0
"""


def test_lesson_05s_recipes_follow_lamas_config_and_differ_only_where_they_should():
    lama, twin, l1 = (
        recipes.load(name)
        for name in ("tiny_lama_shallow", "conv_lama_shallow", "tiny_lama_shallow_l1")
    )
    # LaMa's optimisers (big-lama config): Adam 1e-3 for the generator, 1e-4 for the
    # discriminator with torch's default betas; gradients clipped at 1.
    assert lama.optimiser == {
        "name": "adam",
        "lr": 1e-3,
        "discriminator_lr": 1e-4,
        "discriminator_betas": [0.9, 0.999],
        "clip_grad_norm": 1.0,
    }
    assert lama.data["mask_kind"] == "mixed" and "textures" in lama.data["sources"]
    # The twin: another network, nothing else.
    assert (twin.model, lama.model) == ("conv_lama_shallow", "tiny_lama_shallow")
    assert (twin.data, twin.loss, twin.optimiser, twin.steps) == (
        lama.data, lama.loss, lama.optimiser, lama.steps,
    )  # fmt: skip
    # The L1 recipe's twin: the other network, the same recipe.
    l1_twin = recipes.load("conv_lama_shallow_l1")
    assert l1_twin.model == "conv_lama_shallow"
    assert (l1_twin.data, l1_twin.loss, l1_twin.optimiser, l1_twin.steps) == (
        l1.data, l1.loss, l1.optimiser, l1.steps,
    )  # fmt: skip
    # The loss ablation: another loss on the same network, data, rate, clipping and steps.
    assert l1.model == lama.model and l1.loss == {"terms": "l1"}
    assert (l1.data, l1.steps, l1.optimiser["lr"], l1.optimiser["clip_grad_norm"]) == (
        lama.data, lama.steps, lama.optimiser["lr"], lama.optimiser["clip_grad_norm"],
    )  # fmt: skip


def test_a_lama_recipe_trains_both_networks_with_its_own_optimisers(tmp_path, monkeypatch):
    monkeypatch.setitem(training.MODELS, "tiny", Tiny)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    text = TINY_RECIPE.replace('[loss]\nterms = "l1"\n', "").replace(
        '[optimiser]\nname = "adam"\nlr = 1e-3\n', LAMA_TABLES
    )
    path = tmp_path / "lama.toml"
    path.write_text(text)
    run = tmp_path / "run"
    assert training.main(["--recipe", str(path), "--run-dir", str(run), "--quiet"]) == 0
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    groups = checkpoint["discriminator_optimizer"]["param_groups"][0]
    assert (groups["lr"], groups["betas"]) == (1e-4, (0.9, 0.999))
    assert checkpoint["optimizer"]["param_groups"][0]["lr"] == 1e-3
    history = json.loads((run / "history.json").read_text())["history"]
    assert {"known", "adversarial", "feature_matching", "perceptual", "d_loss", "r1"} <= set(
        history[-1]
    )


def test_the_context_encoders_arms_differ_only_by_the_adversary():
    l2, joint = recipes.load("context_encoder_l2"), recipes.load("context_encoder_joint")
    assert (l2.model, l2.data, l2.steps, l2.seed) == (
        joint.model,
        joint.data,
        joint.steps,
        joint.seed,
    )
    assert l2.loss == {"terms": "hole_l2", "weights": {"hole": 0.999}}
    assert joint.loss == {**l2.loss, "adversarial": joint.loss["adversarial"]}
    assert (joint.loss["adversarial"]["weight"], joint.loss["adversarial"]["r1_weight"]) == (
        0.001,
        0,
    )
    adversary = training.build_loss(joint.loss)
    assert isinstance(adversary.base, losses.HoleL2Loss) and adversary.base.weight == 0.999
    # The discriminator's logits each see the whole 64x64 image, as the paper's judged the fill.
    assert adversary.discriminator.receptive_field >= joint.data["size"]
    # Every training hole is the central quarter, the validation's hole too.
    from course_lib import masks

    data = training.InpaintingBatches(seed=0, **training.recipe_data(joint))
    _, hole = data.batch(0)
    assert torch.equal(hole, masks.centred_box(64, 0.25, len(hole)))
    _, validation = training.validation_pairs(64, 4, centred_box=joint.validation["centred_box"])
    assert torch.equal(validation, masks.centred_box(64, 0.25, 4))


def test_the_adversarial_arm_is_the_joint_recipe_with_the_reconstruction_weight_zero():
    joint = recipes.load("context_encoder_joint")
    alone = recipes.load("context_encoder_adversarial")
    assert (alone.model, alone.data, alone.steps, alone.seed, alone.optimiser) == (
        joint.model,
        joint.data,
        joint.steps,
        joint.seed,
        joint.optimiser,
    )
    assert alone.validation == joint.validation
    assert alone.loss["weights"] == {"hole": 0.0}
    assert alone.loss["adversarial"] == {**joint.loss["adversarial"], "weight": 1.0}
    # Weight 0 keeps the L2 in the logged parts but out of the gradient.
    adversary = training.build_loss(alone.loss)
    assert adversary.base.weight == 0.0 and adversary.weight == 1.0


def test_a_context_encoder_recipe_trains_its_adversary_without_r1(tmp_path, monkeypatch):
    monkeypatch.setitem(training.MODELS, "tiny", Tiny)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    text = TINY_RECIPE.replace(
        '[loss]\nterms = "l1"\n',
        '[loss]\nterms = "hole_l2"\nweights = { hole = 0.999 }\n[loss.adversarial]\n'
        "weight = 0.001\nr1_weight = 0.0\ndiscriminator = { width = 4, layers = 2 }\n",
    ).replace("lr = 1e-3\n", "lr = 1e-3\ndiscriminator_lr = 3e-4\n")
    path = tmp_path / "context.toml"
    path.write_text(text)
    run = tmp_path / "run"
    assert training.main(["--recipe", str(path), "--run-dir", str(run), "--quiet"]) == 0
    checkpoint = torch.load(run / "checkpoint.pt", weights_only=False)
    assert checkpoint["discriminator_optimizer"]["param_groups"][0]["lr"] == 3e-4
    history = json.loads((run / "history.json").read_text())["history"]
    assert {"hole_l2", "adversarial", "d_loss"} <= set(history[-1]) and "r1" not in history[-1]


def test_glcics_arms_differ_only_by_the_adversary_and_its_local_discriminator():
    stage1 = recipes.load("glcic_small_stage1")
    both, alone = recipes.load("glcic_small"), recipes.load("glcic_small_global")
    assert (both.init, alone.init) == ("glcic_small_stage1", "glcic_small_stage1")
    for arm in (both, alone):  # phase 3 continues phase 1's training, with an adversary added
        assert (arm.model, arm.data, arm.validation) == (
            stage1.model,
            stage1.data,
            stage1.validation,
        )
        assert arm.loss == {**stage1.loss, "adversarial": arm.loss["adversarial"]}
    assert (both.steps, both.seed, both.optimiser) == (alone.steps, alone.seed, alone.optimiser)
    # The control: as many steps from the same weights and seed, without the adversary.
    control = recipes.load("glcic_small_l2")
    assert (control.init, control.steps, control.seed, control.loss) == (
        both.init,
        both.steps,
        both.seed,
        stage1.loss,
    )
    assert (control.model, control.data, control.validation) == (
        both.model,
        both.data,
        both.validation,
    )
    assert control.optimiser == {"name": "adam", "lr": both.optimiser["lr"]}
    assert alone.loss["adversarial"] == {
        **both.loss["adversarial"],
        "discriminator": {**both.loss["adversarial"]["discriminator"], "local": False},
    }
    assert both.loss["adversarial"]["weight"] == 0.0004  # the paper's alpha
    adversary = training.build_loss(both.loss)
    assert isinstance(adversary, losses.GlobalLocalAdversarialLoss)
    assert adversary.discriminator.local and not training.build_loss(alone.loss).discriminator.local
    # Every training hole is one box of 24-32 px, and the local crop (32 px) holds it whole.
    data = training.InpaintingBatches(seed=0, **training.recipe_data(both))
    for step in range(3):
        _, hole = data.batch(step)
        for sample in hole[:, 0]:
            rows, columns = sample.nonzero(as_tuple=True)
            sides = (rows.max() - rows.min() + 1, columns.max() - columns.min() + 1)
            assert all(24 <= side <= 32 for side in sides)
            assert sample.sum() == sides[0] * sides[1]  # one full box


def test_lesson_09s_edge_arms_differ_only_by_the_edges():
    guided, plain = recipes.load("edge_guided_small"), recipes.load("edge_guided_small_no_edges")
    fields = ("data", "loss", "optimiser", "steps", "seed", "validation", "init")
    assert [getattr(guided, f) for f in fields] == [getattr(plain, f) for f in fields]
    assert (guided.model, plain.model) == ("edge_guided_small", "edge_guided_small_no_edges")
    assert training.MODELS[guided.model]().uses_edges
    assert not training.MODELS[plain.model]().uses_edges
    # The edge generator: the same data, EdgeConnect's loss weights and optimisers.
    edge = recipes.load("edge_generator_small")
    assert (edge.data, edge.steps, edge.seed) == (guided.data, guided.steps, guided.seed)
    assert edge.loss["weights"] == {"adversarial": 1.0, "feature_matching": 10.0}
    assert edge.optimiser == {
        "name": "adam",
        "lr": 1e-4,
        "discriminator_lr": 1e-5,
        "discriminator_betas": [0.0, 0.9],
    }
    adversary = training.build_loss(edge.loss)
    assert isinstance(adversary, losses.EdgeAdversarialLoss)
    # Each logit of the PatchGAN sees the whole training image, as the paper's 70x70 one does.
    assert adversary.discriminator.receptive_field >= edge.data["size"]


def test_lesson_09s_positional_encoding_arm_is_convunets_first_stage_but_for_the_model():
    positioned = recipes.load("positioned_conv_unet_small")
    control = recipes.load("conv_unet_small_stage1")  # its shipped weights are the other arm
    fields = ("data", "loss", "optimiser", "steps", "seed", "validation", "init")
    assert [getattr(positioned, f) for f in fields] == [getattr(control, f) for f in fields]
    assert not positioned.freeze_encoder_bn and not control.freeze_encoder_bn
    from course_lib.mpe import PositionedConvUNet
    from course_lib.unet import ConvUNet

    network, twin = training.MODELS[positioned.model](), training.MODELS[control.model]()
    assert type(network) is PositionedConvUNet and type(twin) is ConvUNet
    assert network.channels == twin.channels and network.kernels == twin.kernels
