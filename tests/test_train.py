"""The training loop (course_lib.train): data by step, loss, resume, checkpoints, export, CLI."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from course_lib import checkpoints
from course_lib import train as training
from course_lib.data import PhotoPatches, ProceduralScenes


class TinyInpainter(nn.Module):
    """Two convolutions on (masked image, hole): small enough to train in a test."""

    def __init__(self, width: int = 8, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Dropout2d(dropout),  # draws random numbers: resume must restore the RNG
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, hole], dim=1))


class SpyInpainter(nn.Module):
    """Returns a fixed prediction and records what it was given."""

    def __init__(self, prediction: torch.Tensor) -> None:
        super().__init__()
        self.prediction = prediction
        self.scale = nn.Parameter(torch.ones(()))
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        self.seen.append((image.clone(), hole.clone()))
        return self.prediction * self.scale


@pytest.fixture(scope="module")
def data():
    return training.InpaintingBatches(size=16, batch_size=4, seed=0)


def tiny(seed: int = 0, **options) -> TinyInpainter:
    torch.manual_seed(seed)
    return TinyInpainter(**options)


def run(model, data, steps, run_dir=None, **options):
    options = {"lr": 1e-2, "device": "cpu", "progress": False, **options}
    return training.train(model, training.hole_valid_l1, data, steps, run_dir=run_dir, **options)


def same_weights(first: nn.Module, second: nn.Module) -> bool:
    one, two = first.state_dict(), second.state_dict()
    return one.keys() == two.keys() and all(torch.equal(one[key], two[key]) for key in one)


# --- data ------------------------------------------------------------------------------------


def test_textures_are_periodic_backgrounds_without_objects():
    from course_lib.data import PERIODIC_BACKGROUNDS, ProceduralScenes, render_texture

    stream = training.InpaintingBatches(
        sources=["scenes", "textures"], size=32, batch_size=4, seed=0
    )
    image, _ = stream.batch(1)  # items 2 and 3 of each source
    assert stream.counts == (2, 2)
    backgrounds = ProceduralScenes(32, seed=0, backgrounds=PERIODIC_BACKGROUNDS)
    for k in (0, 1):
        scene = backgrounds.scene(2 + k)
        assert scene.background.kind in PERIODIC_BACKGROUNDS and scene.objects  # objects left out
        assert torch.equal(image[2 + k], render_texture(scene.background, 32, 32))
    assert torch.equal(image[:2], ProceduralScenes(32, seed=0).batch(2, 2)[0])
    with pytest.raises(ValueError, match="unknown image source"):
        training.InpaintingBatches(sources=["noise"])


def test_a_batch_depends_only_on_its_step(data):
    image, hole = data.batch(3)
    assert image.shape == (4, 3, 16, 16) and image.dtype == torch.float32
    assert hole.shape == (4, 1, 16, 16) and set(hole.unique().tolist()) <= {0.0, 1.0}
    again = training.InpaintingBatches(size=16, batch_size=4, seed=0).batch(3)
    assert torch.equal(again[0], image) and torch.equal(again[1], hole)
    other_image, other_hole = data.batch(4)
    assert not torch.equal(other_image, image) and not torch.equal(other_hole, hole)
    # Step 3 of a 2 + 2 batch: items 6 and 7 of the training photos, then of the scenes.
    photos = PhotoPatches(16, split="train", seed=0).batch(6, 2)
    scenes = ProceduralScenes(16, seed=0).batch(6, 2)[0]
    assert torch.equal(image, torch.cat([photos, scenes]))
    # Another seed changes the holes, never the pictures.
    reseeded = training.InpaintingBatches(size=16, batch_size=4, seed=1).batch(3)
    assert torch.equal(reseeded[0], image) and not torch.equal(reseeded[1], hole)


def test_batches_take_mask_options_and_reject_bad_settings():
    data = training.InpaintingBatches(
        sources=("scenes",), size=16, batch_size=3, mask_kind="box", coverage=0.25
    )
    image, hole = data.batch(0)
    assert image.shape == (3, 3, 16, 16)
    assert torch.allclose(hole.mean(dim=(1, 2, 3)), torch.full((3,), 0.25), atol=0.03)
    with pytest.raises(ValueError, match="unknown image source"):
        training.InpaintingBatches(sources=("faces",))
    with pytest.raises(ValueError, match="batch_size"):
        training.InpaintingBatches(batch_size=1)
    with pytest.raises(ValueError, match="unknown option"):
        training.InpaintingBatches(size=16, mask_kind="box", preset="thick")


# --- loss ------------------------------------------------------------------------------------


def test_hole_valid_l1_by_hand():
    # One 2x2 image of zeros, prediction all ones, one hole pixel: 3 of the 12 elements.
    image = torch.zeros(1, 3, 2, 2)
    hole = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    loss, parts = training.hole_valid_l1(SpyInpainter(torch.ones(1, 3, 2, 2)), image, hole)
    assert parts == pytest.approx({"valid": 9 / 12, "hole": 3 / 12})
    assert loss.item() == pytest.approx(9 / 12 + 6 * 3 / 12)


def test_hole_valid_l1_formula_and_the_model_never_sees_hole_pixels(data):
    image, hole = data.batch(0)
    prediction = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    spy = SpyInpainter(prediction)
    loss, parts = training.hole_valid_l1(spy, image, hole)
    error = (prediction - image).abs()
    elements = error.numel()  # B * C * H * W
    valid = ((1 - hole) * error).sum() / elements
    in_hole = (hole * error).sum() / elements
    assert loss.item() == pytest.approx((valid + 6 * in_hole).item(), rel=1e-6)
    assert parts == pytest.approx({"valid": valid.item(), "hole": in_hole.item()}, rel=1e-6)
    (seen_image, seen_hole), *_ = spy.seen
    assert torch.equal(seen_hole, hole)
    assert torch.all(seen_image[hole.expand_as(image) == 1] == 0)
    assert torch.equal(seen_image * (1 - hole), image * (1 - hole))


# --- training --------------------------------------------------------------------------------


def held_out_loss(model: nn.Module, data) -> float:
    """Mean loss on batches far beyond the steps trained on, model in eval mode."""
    model.eval()
    with torch.no_grad():
        losses = [training.hole_valid_l1(model, *data.batch(step))[0] for step in range(1000, 1008)]
    return torch.stack(losses).mean().item()


def test_training_lowers_the_loss(data):
    model = tiny()
    before = held_out_loss(model, data)
    result = run(model, data, 30)
    assert not model.training  # left ready to inpaint
    assert held_out_loss(model, data) < 0.75 * before  # measured: 1.07 -> 0.54
    assert len(result.history) == 30 and result.steps == 30 and result.run_dir is None
    assert [entry["step"] for entry in result.history] == list(range(1, 31))
    assert set(result.history[0]) == {"step", "loss", "valid", "hole"}
    axis = result.plot().axes[0]
    assert axis.get_title() and axis.get_xlabel() == "step" and axis.get_ylabel()


def checkpoint_seconds(run_dir):
    """The training time a run's checkpoint has recorded so far."""
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["seconds"]


def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    whole = tiny(dropout=0.2)
    uninterrupted = run(whole, data, 8, tmp_path / "whole")

    halves = tiny(dropout=0.2)
    first = run(halves, data, 4, tmp_path / "halves")
    assert len(first.history) == 4
    first_seconds = checkpoint_seconds(tmp_path / "halves")
    later = tiny(seed=123, dropout=0.2)  # other initial weights: all must come from the file
    second = run(later, data, 8, tmp_path / "halves")

    assert same_weights(later, whole)
    assert second.history == uninterrupted.history
    assert [entry["step"] for entry in second.history] == list(range(1, 9))
    # The resumed call reports the whole run's training time, its first half's included.
    assert 0 < first_seconds < checkpoint_seconds(tmp_path / "halves") <= second.seconds
    # Asking again for a finished run trains nothing and returns the same model.
    again = tiny(seed=7, dropout=0.2)
    assert len(run(again, data, 8, tmp_path / "halves").history) == 8
    assert same_weights(again, whole)
    with pytest.raises(ValueError, match="past steps=6"):
        run(tiny(dropout=0.2), data, 6, tmp_path / "halves")


def test_a_learning_rate_schedule_resumes_too(data, tmp_path):
    def schedule(model):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
        warm_up = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1, (step + 1) / 4))
        return {"optimizer": optimizer, "scheduler": warm_up, "lr": None}

    whole = tiny()
    run(whole, data, 6, tmp_path / "whole", **schedule(whole))
    halves = tiny()
    run(halves, data, 3, tmp_path / "halves", **schedule(halves))
    later = tiny(seed=123)
    options = schedule(later)
    run(later, data, 6, tmp_path / "halves", **options)
    assert same_weights(later, whole)
    assert options["scheduler"].last_epoch == 6
    with pytest.raises(ValueError, match="scheduler"):  # a run with a schedule is another run
        run(tiny(), data, 6, tmp_path / "halves")


def test_run_dir_files_and_sample_pictures(data, tmp_path):
    run(tiny(), data, 4, tmp_path, checkpoint_every=2, sample_every=2)
    pictures = sorted(path.name for path in (tmp_path / "samples").iterdir())
    assert pictures == ["step_000002.png", "step_000004.png"]
    assert (tmp_path / "samples" / pictures[0]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((tmp_path / "history.json").read_text())
    assert [entry["step"] for entry in summary["history"]] == [1, 2, 3, 4]
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["step"] == 4 and checkpoint["config"]["model"] == "TinyInpainter"
    assert set(checkpoint) == {
        *("format", "step", "config", "history", "rng", "seconds"),
        *("model", "loss", "optimizer", "discriminator_optimizer", "scheduler", "scaler"),
    }
    # Starting over removes the earlier run's files before writing new ones.
    run(tiny(), data, 1, tmp_path, resume=False, sample_every=None)
    assert sorted(path.name for path in (tmp_path / "samples").iterdir()) == ["step_000001.png"]


def test_a_crash_while_writing_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch):
    run(tiny(), data, 2, tmp_path)
    before = (tmp_path / "checkpoint.pt").read_bytes()

    def full_disk(state, handle):
        handle.write(b"half a checkpoint")  # the temporary file exists and is half written
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        run(tiny(), data, 4, tmp_path, checkpoint_every=1)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert checkpoints.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_a_run_dir_of_another_model_or_setting_is_refused(data, tmp_path):
    run(tiny(), data, 1, tmp_path)
    with pytest.raises(
        ValueError, match="another model.*net.0.weight.*new run_dir, or resume=False"
    ):
        run(tiny(width=4), data, 2, tmp_path)
    with pytest.raises(ValueError, match="another run .*lr"):
        run(tiny(), data, 2, tmp_path, lr=1e-3)
    run(tiny(width=4), data, 1, tmp_path, resume=False)  # asked for explicitly: replaced
    assert checkpoints.load_checkpoint(tmp_path / "checkpoint.pt")["config"]["shapes"][
        "net.0.weight"
    ] == [4, 4, 3, 3]


def test_bad_arguments_are_refused(data):
    with pytest.raises(ValueError, match="amp=True needs a CUDA GPU"):
        run(tiny(), data, 1, amp=True)
    with pytest.raises(ValueError, match="not both"):
        model = tiny()
        run(model, data, 1, optimizer=torch.optim.SGD(model.parameters()), lr=1e-3)
    with pytest.raises(ValueError, match="steps"):
        run(tiny(), data, 0)
    with pytest.raises(ValueError, match="checkpoint_every"):
        run(tiny(), data, 1, checkpoint_every=0)


def test_a_diverging_run_stops_with_a_clear_error(data):
    def nan_loss(model, image, hole):
        return training.predict(model, image, hole).sum() * float("nan"), {}

    with pytest.raises(FloatingPointError, match="diverged"):
        training.train(tiny(), nan_loss, data, 3, device="cpu", progress=False)


# --- exported weights ------------------------------------------------------------------------


def test_export_and_load_weights_with_their_sha256(tmp_path):
    model = tiny(width=4)
    command = "python -m course_lib.train tiny --profile quick --export tiny"
    metadata = {"command": command, "profile": "quick", "steps": 3}
    path = checkpoints.export_weights(model, tmp_path / "tiny", metadata)
    assert path == tmp_path / "tiny.pt"
    record = json.loads((tmp_path / "tiny.json").read_text())
    assert record["sha256"] == checkpoints.file_sha256(path)
    assert record["command"] == command and record["model"] == "TinyInpainter"
    assert record["course_lib_version"] and record["steps"] == 3

    fresh = tiny(seed=5, width=4)
    assert not same_weights(fresh, model)
    assert training.load_weights(fresh, tmp_path / "tiny.pt")["sha256"] == record["sha256"]
    assert same_weights(fresh, model)

    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoints.export_weights(model, tmp_path / "tiny", metadata)
    checkpoints.export_weights(tiny(seed=9, width=4), tmp_path / "tiny", metadata, overwrite=True)

    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ValueError, match="(?s)damaged or was replaced.*--profile quick"):
        training.load_weights(fresh, tmp_path / "tiny")
    path.unlink()
    with pytest.raises(FileNotFoundError, match="(?s)missing.*Recreate it with"):
        training.load_weights(fresh, tmp_path / "tiny")
    with pytest.raises(FileNotFoundError, match="no weights record"):
        training.load_weights(fresh, tmp_path / "other")


def test_export_refuses_incomplete_metadata_and_other_models(tmp_path):
    with pytest.raises(ValueError, match="command"):
        checkpoints.export_weights(tiny(), tmp_path / "w", {"profile": "quick"})
    with pytest.raises(ValueError, match="sha256"):
        checkpoints.export_weights(tiny(), tmp_path / "w", {"command": "x", "sha256": "0"})
    checkpoints.export_weights(tiny(), tmp_path / "w", {"command": "python -m ..."})
    with pytest.raises(ValueError, match="weights of a TinyInpainter"):
        training.load_weights(SpyInpainter(torch.zeros(1)), tmp_path / "w")


def test_bare_names_mean_the_shipped_weights_folder():
    weights, record = checkpoints.weights_files("pconv_unet_small")
    assert weights == checkpoints.WEIGHTS_DIR / "pconv_unet_small.pt"
    assert record == checkpoints.WEIGHTS_DIR / "pconv_unet_small.json"
    assert checkpoints.weights_files("pconv_unet_small.pt") == (weights, record)


# --- command line ----------------------------------------------------------------------------


def test_command_line_trains_and_exports(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(training.MODELS, "tiny", lambda: TinyInpainter(width=4))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    export = tmp_path / "weights" / "tiny"
    arguments = ["tiny", "--profile", "quick", "--steps", "2", "--run-dir", str(tmp_path / "run")]
    arguments += ["--quiet", "--export", str(export)]
    assert training.main(arguments) == 0
    assert "tiny: 2 steps" in capsys.readouterr().out
    record = json.loads(export.with_suffix(".json").read_text())
    assert record["command"] == "python -m course_lib.train " + " ".join(arguments)
    assert record["profile"] == "quick" and record["steps"] == 2
    assert record["data"]["size"] == 64 and record["data"]["batch_size"] == 16
    assert (tmp_path / "run" / "checkpoint.pt").exists()
    training.load_weights(TinyInpainter(width=4), export)

    with pytest.raises(SystemExit):  # the weights exist: refused before training
        training.main(arguments)
    assert "--overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        training.main(["tiny", "--run-dir", str(tmp_path / "r"), "--export", "x"])
    assert "explicit --profile" in capsys.readouterr().err


def test_command_line_says_when_a_model_cannot_be_built(tmp_path, monkeypatch):
    def missing():
        raise ModuleNotFoundError("No module named 'course_lib.unet'")

    monkeypatch.setitem(training.MODELS, "missing", missing)
    with pytest.raises(SystemExit, match="cannot build 'missing'.*course_lib.unet"):
        training.main(["missing", "--run-dir", str(tmp_path)])


def test_the_module_runs_as_a_command():
    finished = subprocess.run(
        [sys.executable, "-m", "course_lib.train", "--help"], capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr
    assert "pconv_unet_small" in finished.stdout and "--run-dir" in finished.stdout


def test_the_loss_plot_shows_a_running_mean():
    history = [{"step": step, "loss": float(step)} for step in range(1, 7)]
    figure = training.TrainResult(history, steps=6, seconds=0.0, run_dir=None).plot(smooth=3)
    running, raw = figure.axes[0].lines
    assert list(running.get_ydata()) == [1.0, 1.5, 2.0, 3.0, 4.0, 5.0]
    assert list(raw.get_ydata()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_the_loss_plot_says_which_curves_are_weighted():
    history = [{"step": step, "loss": 7.0, "valid": 1.0, "hole": 1.0} for step in range(1, 4)]
    result = training.TrainResult(history, steps=3, seconds=0.0, run_dir=None)
    labels = [text.get_text() for text in result.plot().axes[0].get_legend().get_texts()]
    assert labels == ["total loss (weighted sum)", "valid (unweighted)", "hole (unweighted)"]
    weighted = result.plot(weights={"valid": 1.0, "hole": 6.0}).axes[0]
    labels = [text.get_text() for text in weighted.get_legend().get_texts()]
    assert labels == ["total loss (weighted sum)", "1 x valid", "6 x hole"]
    assert list(weighted.lines[4].get_ydata()) == [6.0, 6.0, 6.0]  # the hole part, times 6
    with pytest.raises(ValueError, match="missing \\['hole'\\]"):
        result.plot(weights={"valid": 1.0})
    # A loss of one term: its part is the total, drawn once and named in the legend.
    single = [{"step": step, "loss": 0.5 / step, "mse_removed": 0.5 / step} for step in (1, 2)]
    axis = training.TrainResult(single, steps=2, seconds=0.0, run_dir=None).plot().axes[0]
    assert len(axis.lines) == 2  # the running mean and the raw curve of the total only
    assert [text.get_text() for text in axis.get_legend().get_texts()] == ["loss (= mse_removed)"]


def test_a_run_records_which_loss_module_it_used():
    class Weighted(torch.nn.Module):
        def __init__(self, weight: float):
            super().__init__()
            self.register_buffer("weight", torch.tensor(weight))

        def forward(self, model, image, hole):
            return self.weight * training.hole_valid_l1(model, image, hole)[0], {}

    assert training._loss_identity(training.hole_valid_l1) == "hole_valid_l1"
    first, second = training._loss_identity(Weighted(1.0)), training._loss_identity(Weighted(2.0))
    assert first.startswith("test_a_run_records_which_loss_module_it_used.<locals>.Weighted")
    assert first != second


def test_command_line_trains_the_mae_with_its_own_recipe(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    export = tmp_path / "mae"
    arguments = ["mae_quick", "--profile", "quick", "--steps", "2", "--quiet"]
    arguments += ["--run-dir", str(tmp_path / "run"), "--export", str(export)]
    assert training.main(arguments) == 0
    record = json.loads(export.with_suffix(".json").read_text())
    assert record["loss"] == "mae" and record["lr"] == training.MAE_BASE_LR
    assert record["optimizer"] == "AdamW" and record["scheduler"] == "LambdaLR"
    checkpoint = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert checkpoint["config"]["loss"] == "mae_loss"
    with pytest.raises(SystemExit):  # an MAE does not take an (image, hole) -> image loss
        training.main(["mae_quick", "--loss", "l1", "--run-dir", str(tmp_path / "r")])
    assert "trains with --loss mae, not l1" in capsys.readouterr().err


def test_command_line_starts_from_shipped_weights(tmp_path, monkeypatch):
    monkeypatch.setitem(training.MODELS, "tiny", lambda: TinyInpainter(width=4))
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    start = tmp_path / "start"
    torch.manual_seed(3)
    initial = TinyInpainter(width=4)
    checkpoints.export_weights(initial, start, {"command": "made by a test"})
    arguments = ["tiny", "--profile", "quick", "--steps", "1", "--lr", "0", "--quiet"]
    arguments += ["--init", str(start), "--run-dir", str(tmp_path / "run")]
    arguments += ["--export", str(tmp_path / "tuned")]
    assert training.main(arguments) == 0
    tuned = TinyInpainter(width=4)
    record = training.load_weights(tuned, tmp_path / "tuned")
    assert record["init"] == str(start)
    # A learning rate of 0 changes nothing: the run's weights are the initial ones, except
    # batch-norm statistics, which a training step updates without the optimiser.
    trained = {k: v for k, v in tuned.state_dict().items() if "running" not in k and "num" not in k}
    for name, value in trained.items():
        assert torch.equal(value, initial.state_dict()[name]), name


def test_batches_are_made_ahead_in_order_and_their_errors_surface():
    """The loop prepares batch(step + 1) in a background thread while step trains: every
    step still gets its own batch, once, in order, and an error making one stops the run."""

    class Recording:
        def __init__(self, broken_at: int | None = None) -> None:
            self.inner = training.InpaintingBatches(size=16, batch_size=2, seed=0)
            self.asked, self.broken_at = [], broken_at

        def batch(self, step: int):
            self.asked.append(step)
            if step == self.broken_at:
                raise RuntimeError(f"no batch {step}")
            return self.inner.batch(step)

    data = Recording()
    run(tiny(), data, 5)
    assert data.asked == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="no batch 2"):
        run(tiny(), Recording(broken_at=2), 5)
