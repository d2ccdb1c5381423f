"""Bad and edge inputs fail with a clear error (a probe across course_lib and the training CLI).

A clear error is a ``ValueError``, ``TypeError`` or ``FileNotFoundError`` whose message names the
offending argument, says what was expected and how to fix it: never a raw torch/numpy/PIL
message, a traceback from deep inside, a silent wrong result or a run without end.

:data:`CASES` is the table: one row per bad input, each with the error and a regular expression
its message must match. The checkpoint files get their own tests at the end (temporary files
of killed runs, file modes, ``--checkpoint-every``).
"""

import contextlib
import io
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_lib import checkpoints, config, data, lab, masks, metrics
from course_lib import train as training
from course_lib.ffc import TinyLaMa
from course_lib.mae import MaskedAutoencoder
from course_lib.unet import PConvUNet


class TinyInpainter(nn.Module):
    """One convolution on (masked image, hole): the smallest model the loop can train."""

    def __init__(self, width: int = 3) -> None:
        super().__init__()
        self.net = nn.Conv2d(4, width, 3, padding=1)

    def forward(self, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([image, hole], dim=1))


class FixedBatches:
    """The same tiny batch at every step: data for the training loop without drawing any."""

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(step)
        image = torch.rand(2, 3, 8, 8, generator=generator)
        hole = (torch.rand(2, 1, 8, 8, generator=generator) < 0.3).float()
        return image, hole


def train_tiny(steps: int = 1, **options) -> training.TrainResult:
    """``train`` a :class:`TinyInpainter` on :class:`FixedBatches`, quietly, on the CPU."""
    loss_fn = options.pop("loss_fn", training.hole_valid_l1)
    options = {"device": "cpu", "progress": False, "sample_every": None, **options}
    return training.train(TinyInpainter(), loss_fn, FixedBatches(), steps, **options)


def bare_loss(model: nn.Module, image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """A loss that forgets its parts: returns the tensor alone."""
    return training.hole_valid_l1(model, image, hole)[0]


def command_line(*argv: str) -> int:
    """Run the training command; turn its usage error into a ``ValueError`` with its message.

    argparse reports a bad argument on stderr and exits with status 2, which is the clear error
    of a command line; raising it as a ``ValueError`` lets the table check it like the others.
    """
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            return training.main(list(argv))
        except SystemExit as exit_:
            if exit_.code != 2:
                raise
    raise ValueError(stderr.getvalue().strip().splitlines()[-1])


def network(model_class: type, name: str) -> nn.Module:
    torch.manual_seed(0)
    return model_class.from_config(name).eval()


def all_hole_inpaint(model_class: type, name: str) -> torch.Tensor:
    """``inpaint`` of a 64x64 image whose mask is all hole."""
    return network(model_class, name).inpaint(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    """A folder of bad files: a PNG that is not a picture, NPZ files of objects, strings and
    NaN, a good mask, a truncated checkpoint, a broken weights record, weights of another
    configuration, and a plain file where a run folder is expected."""
    folder = tmp_path_factory.mktemp("bad_files")
    (folder / "junk.png").write_bytes(b"this is not a picture")
    np.savez(folder / "object.npz", hole=np.array([[{"a": 1}]], dtype=object))
    np.savez(folder / "strings.npz", hole=np.array([["a", "b"], ["c", "d"]]))
    np.savez(folder / "nan.npz", hole=np.full((1, 4, 4), np.nan, dtype=np.float32))
    masks.save(masks.generate("box", 1, 8, 8, seed=0), folder / "good.npz")
    run = folder / "truncated_run"
    checkpoints.save_atomic(
        {"format": training.CHECKPOINT_FORMAT, "step": 1}, run / "checkpoint.pt"
    )
    cut = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(cut[: len(cut) // 2])
    checkpoints.export_weights(TinyInpainter(), folder / "broken", {"command": "a test"})
    (folder / "broken.json").write_text("{not json")
    checkpoints.export_weights(network(PConvUNet, "small"), folder / "small", {"command": "test"})
    (folder / "a_file").write_text("not a folder")
    return folder


def other_unet() -> PConvUNet:
    return PConvUNet(depth=2, channels=(8, 8), kernels=(3, 3))


@dataclass(frozen=True)
class Case:
    """One bad input: ``call(files)`` must raise ``error`` with a message matching ``match``."""

    id: str
    call: Callable[[Path], object]
    error: type[Exception]
    match: str


ONE_HOLE = masks.generate("box", 1, 64, 64, seed=0)

CASES = [
    # --- masks.generate: the kind, and limits on the work one call does ----------------------
    Case(
        "generate_kind_is_a_list",
        lambda f: masks.generate(["box"], 1, 8, 8),
        ValueError,
        r"mask kind \['box'\] \(a list; pass one name as a str\)",
    ),
    Case(
        "generate_side_too_large",
        lambda f: masks.generate("patches", 1, 10**6, 10**6),
        ValueError,
        r"height must be at most 4096, got 1000000.*MAX_SIDE",
    ),
    Case(
        "generate_batch_too_large",
        lambda f: masks.generate("box", 10**8, 8, 8),
        ValueError,
        r"batch must be at most 65536, got 100000000.*several calls",
    ),
    Case(
        "generate_too_many_pixels",
        lambda f: masks.generate("box", 20_000, 128, 128),
        ValueError,
        r"batch \* height \* width = 20000 \* 128 \* 128.*split the work into calls of at most "
        r"batch=16384",
    ),
    # --- devices -----------------------------------------------------------------------------
    Case(
        "device_unknown_name",
        lambda f: config.device("gpu0"),
        ValueError,
        r"device='gpu0' is not a device name; use cpu, cuda, cuda:N or mps",
    ),
    Case(
        "train_device_unknown_name",
        lambda f: train_tiny(device="gpu0"),
        ValueError,
        r"device='gpu0' is not a device name",
    ),
    # --- masks.load --------------------------------------------------------------------------
    Case(
        "load_png_that_is_not_an_image",
        lambda f: masks.load(f / "junk.png"),
        ValueError,
        r"junk\.png is not a readable PNG image",
    ),
    Case(
        "load_npz_of_objects",
        lambda f: masks.load(f / "object.npz"),
        ValueError,
        r"object\.npz holds Python objects.*numbers 0/1",
    ),
    Case(
        "load_npz_of_strings",
        lambda f: masks.load(f / "strings.npz"),
        ValueError,
        r"strings\.npz holds values of dtype <U1; a mask holds numbers",
    ),
    Case(
        "load_npz_of_nan",
        lambda f: masks.load(f / "nan.npz"),
        ValueError,
        r"nan\.npz holds NaN or infinite values",
    ),
    Case(
        "load_threshold_above_one",
        lambda f: masks.load(f / "good.npz", threshold=1.5),
        ValueError,
        r"threshold must be a finite number in \[0, 1\), got 1\.5",
    ),
    Case(
        "load_threshold_negative",
        lambda f: masks.load(f / "good.npz", threshold=-1),
        ValueError,
        r"threshold must be a finite number in \[0, 1\), got -1",
    ),
    Case(
        "load_threshold_string",
        lambda f: masks.load(f / "good.npz", threshold="x"),
        ValueError,
        r"threshold must be a number, got 'x'",
    ),
    # --- images and masks without pixels ------------------------------------------------------
    Case(
        "coverage_of_a_0x0_mask",
        lambda f: masks.coverage(torch.zeros(1, 1, 0, 0)),
        ValueError,
        r"hole of shape \(1, 1, 0, 0\) has no pixels",
    ),
    Case(
        "psnr_of_0x0_images",
        lambda f: metrics.psnr(torch.zeros(1, 3, 0, 0), torch.zeros(1, 3, 0, 0)),
        ValueError,
        r"prediction of shape \(1, 3, 0, 0\) has no pixels",
    ),
    # --- train and its command line -----------------------------------------------------------
    Case(
        "train_negative_lr",
        lambda f: train_tiny(lr=-1),
        ValueError,
        r"lr must be a finite number of at least 0, got -1\. The learning rate",
    ),
    Case(
        "train_nan_lr",
        lambda f: train_tiny(lr=float("nan")),
        ValueError,
        r"lr must be a finite number of at least 0, got nan",
    ),
    Case(
        "cli_nan_lr",
        lambda f: command_line("pconv_unet_small", "--run-dir", str(f / "run"), "--lr", "nan"),
        ValueError,
        r"argument --lr: expected a finite number of at least 0, got 'nan'",
    ),
    Case(
        "train_loss_returns_a_bare_tensor",
        lambda f: train_tiny(loss_fn=bare_loss),
        ValueError,
        r"loss_fn \(bare_loss\) must return a pair \(loss, parts\).*a bare tensor of shape \(\)",
    ),
    Case(
        "train_empty_run_dir",
        lambda f: train_tiny(run_dir=""),
        ValueError,
        r"run_dir is empty, which would write the run's files into the current folder",
    ),
    Case(
        "cli_empty_run_dir",
        lambda f: command_line("pconv_unet_small", "--run-dir", ""),
        ValueError,
        r"argument --run-dir: --run-dir is empty",
    ),
    Case(
        "train_run_dir_is_a_file",
        lambda f: train_tiny(run_dir=f / "a_file"),
        ValueError,
        r"run_dir .*a_file is a file, not a folder",
    ),
    Case(
        "cli_run_dir_is_a_file",
        lambda f: command_line("pconv_unet_small", "--run-dir", str(f / "a_file")),
        ValueError,
        r"argument --run-dir: --run-dir .*a_file is a file, not a folder",
    ),
    Case(
        "cli_checkpoint_every_zero",
        lambda f: command_line(
            "pconv_unet_small", "--run-dir", str(f / "run"), "--checkpoint-every", "0"
        ),
        ValueError,
        r"argument --checkpoint-every: expected a positive whole number, got '0'",
    ),
    Case(
        "train_truncated_checkpoint",
        lambda f: train_tiny(run_dir=f / "truncated_run"),
        ValueError,
        r"checkpoint\.pt is not a readable checkpoint.*resume=False",
    ),
    Case(
        "weights_record_is_not_json",
        lambda f: checkpoints.load_weights(TinyInpainter(), f / "broken"),
        ValueError,
        r"broken\.json is not a valid JSON weights record",
    ),
    Case(
        "weights_of_another_configuration",
        lambda f: checkpoints.load_weights(other_unet(), f / "small"),
        ValueError,
        r"another PConvUNet configuration.*the file has configuration 'small'.*this model a "
        r"custom configuration.*from_config\('small'\)",
    ),
    # --- the lab and the networks -------------------------------------------------------------
    Case(
        "lab_without_methods",
        lambda f: lab.run_lab(torch.rand(1, 3, 64, 64), ONE_HOLE, methods=[]),
        ValueError,
        r"methods is empty: name at least one method",
    ),
    Case(
        "pconv_unet_all_hole",
        lambda f: all_hole_inpaint(PConvUNet, "small"),
        ValueError,
        r"the mask of sample 0 is all hole: there is nothing to inpaint from",
    ),
    Case(
        "tiny_lama_all_hole",
        lambda f: all_hole_inpaint(TinyLaMa, "small"),
        ValueError,
        r"the mask of sample 0 is all hole: there is nothing to inpaint from",
    ),
    Case(
        "mae_all_hole",
        lambda f: all_hole_inpaint(MaskedAutoencoder, "quick"),
        ValueError,
        r"the mask of sample 0 is all hole: there is nothing to inpaint from",
    ),
    Case(
        "pconv_unet_16px_in_training_mode",
        lambda f: network(PConvUNet, "small").train()(
            torch.rand(1, 3, 16, 16), torch.zeros(1, 1, 16, 16)
        ),
        ValueError,
        r"image of shape \(1, 3, 16, 16\) is too small for PConvUNet in training mode.*at least "
        r"33 pixels on one side",
    ),
    # --- data sets: a length past the seed stride would repeat another seed's items ------------
    Case(
        "scenes_longer_than_the_seed_stride",
        lambda f: data.ProceduralScenes(16, length=data.SEED_STRIDE + 1),
        ValueError,
        r"length must be at least 1 and at most 1000003, got 1000004.*next seed",
    ),
    Case(
        "photos_longer_than_the_seed_stride",
        lambda f: data.PhotoPatches(16, length=data.SEED_STRIDE + 1),
        ValueError,
        r"length must be at least 1 and at most 1000003, got 1000004",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_fails_clearly(case: Case, files: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.chdir(tmp_path)  # a run that wrongly writes into the current folder stays here
    with pytest.raises(case.error, match=case.match):
        case.call(files)
    assert not list(tmp_path.iterdir()), "nothing may be written before the error"


def test_the_table_names_each_case_once() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


# --- checkpoint files -------------------------------------------------------------------------


def test_a_failed_checkpoint_write_leaves_no_temporary_file(tmp_path) -> None:
    target = tmp_path / "checkpoint.pt"
    checkpoints.save_atomic({"step": 1}, target)
    before = target.read_bytes()

    class Unsaveable:
        def __reduce__(self):
            raise KeyboardInterrupt  # interrupted in the middle of torch.save

    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_atomic({"step": 2, "big": torch.zeros(1000), "bad": Unsaveable()}, target)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["checkpoint.pt"]
    assert target.read_bytes() == before  # the previous checkpoint is intact


def test_a_resumed_run_removes_the_temporary_files_of_a_killed_one(tmp_path) -> None:
    train_tiny(1, run_dir=tmp_path, lr=1e-3)
    # What a run killed during a write leaves behind (and files that are not its own).
    stale = [tmp_path / ".checkpoint.pt.0123456789abcdef.tmp", tmp_path / ".history.json.x.tmp"]
    others = [tmp_path / ".notes.txt.0123.tmp", tmp_path / "notes.txt"]
    for path in stale + others:
        path.write_bytes(b"partial")
    result = train_tiny(2, run_dir=tmp_path, lr=1e-3)
    assert [entry["step"] for entry in result.history] == [1, 2]  # resumed, not restarted
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in others)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_checkpoints_and_weights_get_the_usual_file_mode(tmp_path) -> None:
    previous = os.umask(0o022)
    try:
        train_tiny(1, run_dir=tmp_path / "run", lr=1e-3)
        weights = checkpoints.export_weights(TinyInpainter(), tmp_path / "w", {"command": "test"})
        saved = masks.save(torch.zeros(1, 1, 8, 8), tmp_path / "mask.png")
    finally:
        os.umask(previous)
    written = [tmp_path / "run" / "checkpoint.pt", tmp_path / "run" / "history.json"]
    written += [weights, weights.with_suffix(".json"), saved]
    assert {path.name: oct(mode(path)) for path in written} == {
        path.name: oct(0o644) for path in written
    }


def test_the_command_line_checkpoints_every_n_steps(tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(training.MODELS, "tiny", TinyInpainter)
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    written: list[int] = []
    save = training.save_atomic

    def recording_save(state: dict, path: Path) -> Path:
        written.append(state["step"])
        return save(state, path)

    monkeypatch.setattr(training, "save_atomic", recording_save)
    arguments = ["tiny", "--profile", "quick", "--steps", "3", "--quiet"]
    assert (
        training.main([*arguments, "--run-dir", str(tmp_path / "a"), "--checkpoint-every", "1"])
        == 0
    )
    assert written == [1, 2, 3]
    written.clear()
    assert training.main([*arguments, "--run-dir", str(tmp_path / "b")]) == 0
    assert written == [3]  # the default: every 500 steps, and after the last
