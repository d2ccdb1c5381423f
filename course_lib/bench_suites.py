"""The benchmark suites, one function per ``python -m course_lib.bench NAME``.

Each suite yields dicts; :mod:`course_lib.bench` prints them as JSON lines.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch
from torch import nn

from course_lib.bench import benchmark, median_seconds, paired_medians


@benchmark("data")
def data_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Seconds to generate a batch of 64 procedural scenes / photo patches at 64x64."""
    from course_lib.data import PhotoPatches, ProceduralScenes

    scenes = ProceduralScenes(size=64, length=64, seed=0)
    seconds = median_seconds(lambda: scenes.batch(0, 64), repeats=args.repeats)
    yield {"what": "ProceduralScenes.batch", "batch": 64, "size": 64, "seconds": round(seconds, 4)}
    photos = PhotoPatches(patch_size=64, split="train", length=64, seed=0)
    seconds = median_seconds(lambda: photos.batch(0, 64), repeats=args.repeats)
    yield {"what": "PhotoPatches.batch", "batch": 64, "size": 64, "seconds": round(seconds, 4)}


def opencv_strokes_reference(
    rng: np.random.Generator, batch: int, height: int, width: int, preset: str
) -> torch.Tensor:
    """The plain OpenCV brush-stroke generator the "masks" suite compares ``irregular`` with.

    The straightforward way, as found in many repositories: loop over strokes, draw every
    segment with ``cv2.line`` and a ``cv2.circle`` at each vertex for the round joints, with
    the same parameter distributions as ``preset`` and one shared numpy generator.
    """
    from course_lib.mask_shapes import STROKE_PRESETS

    style = STROKE_PRESETS[preset]
    scale = min(height, width) / 256
    log_lengths = np.log(np.maximum(1, np.round(np.array(style.length) * scale)))
    log_widths = np.log(np.maximum(1, np.round(np.array(style.width) * scale)))
    holes = np.zeros((batch, height, width), dtype=np.uint8)
    for hole in holes:
        for _ in range(rng.integers(style.strokes[0], style.strokes[1] + 1)):
            brush = round(float(np.exp(rng.uniform(*log_widths))))
            x, y = rng.random() * width, rng.random() * height
            direction = rng.uniform(0, 2 * np.pi)
            for _ in range(rng.integers(4, 12) - 1):
                direction += rng.uniform(-style.max_turn, style.max_turn)
                length = np.exp(rng.uniform(*log_lengths))
                x_next, y_next = x + length * np.cos(direction), y + length * np.sin(direction)
                if not 0 <= x_next <= width - 1:  # bounce off the edges, like course_lib
                    x_next = -x_next if x_next < 0 else 2 * (width - 1) - x_next
                    direction = np.pi - direction
                if not 0 <= y_next <= height - 1:
                    y_next = -y_next if y_next < 0 else 2 * (height - 1) - y_next
                    direction = -direction
                start, end = (round(x), round(y)), (round(x_next), round(y_next))
                cv2.line(hole, start, end, 1, brush)
                cv2.circle(hole, start, brush // 2, 1, -1)
                cv2.circle(hole, end, brush // 2, 1, -1)
                x, y = x_next, y_next
    return torch.from_numpy(holes.astype(np.float32)).unsqueeze(1)  # (B, 1, H, W)


@benchmark("masks")
def masks_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Masks per second of every kind at 256x256 (batch 64, CPU), irregular strokes against
    a plain OpenCV generator (target ratio >= 1), and coverage error at targets 0.1 .. 0.6."""
    from course_lib import masks

    batch, size = 64, 256
    for kind in masks.KINDS:
        seconds = median_seconds(
            lambda kind=kind: masks.generate(kind, batch, size, size, seed=0),
            repeats=args.repeats,
        )
        yield {
            "what": "generate",
            "kind": kind,
            "size": size,
            "batch": batch,
            "masks_per_second": round(batch / seconds, 1),
        }
    for preset in masks.STROKE_PRESETS:
        rng = np.random.default_rng(0)
        reference = median_seconds(
            lambda preset=preset, rng=rng: opencv_strokes_reference(rng, batch, size, size, preset),
            repeats=args.repeats,
        )
        ours = median_seconds(
            lambda preset=preset: masks.generate(
                "irregular", batch, size, size, seed=0, preset=preset
            ),
            repeats=args.repeats,
        )
        controlled = median_seconds(
            lambda preset=preset: masks.generate(
                "irregular", batch, size, size, coverage=0.3, seed=0, preset=preset
            ),
            repeats=args.repeats,
        )
        yield {
            "what": "irregular_vs_opencv",
            "preset": preset,
            "size": size,
            "batch": batch,
            "ours_masks_per_second": round(batch / ours, 1),
            "opencv_masks_per_second": round(batch / reference, 1),
            "ratio": round(reference / ours, 2),
            "target_ratio": 1.0,
            "ours_at_coverage_0.3_masks_per_second": round(batch / controlled, 1),
        }
    targets = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    for kind in masks.KINDS:
        errors = torch.cat(
            [
                (masks.coverage(masks.generate(kind, batch, size, size, target, seed=1)) - target)
                .abs()
                .double()
                for target in targets
            ]
        )
        yield {
            "what": "coverage_error",
            "kind": kind,
            "size": size,
            "targets": targets,
            "masks_per_target": batch,
            "mean_abs_error": round(errors.mean().item(), 5),
            "max_abs_error": round(errors.max().item(), 5),
        }
    # What a training step pays for its masks: one quick-profile batch of LaMa's mixed masks.
    from course_lib.config import PROFILES

    quick = PROFILES["quick"]
    seconds = median_seconds(
        lambda: masks.generate("mixed", quick.batch_size, quick.image_size, quick.image_size),
        repeats=args.repeats,
    )
    yield {
        "what": "training_batch",
        "kind": "mixed",
        "size": quick.image_size,
        "batch": quick.batch_size,
        "milliseconds": round(1000 * seconds, 2),
    }


@benchmark("baselines")
def baselines_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Seconds per image of every classical fill (lesson 02) on test photo patches with LaMa's
    mixed masks at coverage 0.25, at 64x64 and 256x256 (one image per call, CPU)."""
    from course_lib.baselines import METHODS
    from course_lib.data import PhotoPatches
    from course_lib.masks import generate

    for size in (64, 256):
        images = PhotoPatches(patch_size=size, split="test", seed=0).batch(0, 4)
        holes = generate("mixed", 4, size, size, coverage=0.25, seed=0)
        # One image per call, the fills' unit of work: (1, 3, H, W) and (1, 1, H, W) each.
        pairs = list(zip(images.split(1), holes.split(1), strict=True))
        for name, fill in METHODS.items():
            seconds = [
                median_seconds(lambda f=fill, x=x, h=h: f(x, h), repeats=args.repeats)
                for x, h in pairs
            ]
            yield {
                "what": "fill",
                "method": name,
                "size": size,
                "mask": "mixed",
                "coverage": 0.25,
                "images": len(pairs),
                # The median over images of each image's median over repeats.
                "seconds_per_image": round(float(np.median(seconds)), 4),
            }


def training_speed(
    model_class: type, lr: float, repeats: int, what: str, config: str = "small"
) -> dict:
    """Training steps per second of ``model_class.from_config(config)``: batch 16 at 64x64
    with LaMa's mixed masks at coverage 0.25; forward, L1 loss, backward, Adam step."""
    from course_lib import masks
    from course_lib.config import device
    from course_lib.train import predict

    where, batch, size = device(), 16, 64
    images = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0)).to(where)
    holes = masks.generate("mixed", batch, size, size, 0.25, seed=0).to(where)
    torch.manual_seed(0)
    model = model_class.from_config(config).to(where).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        (predict(model, images, holes) - images).abs().mean().backward()
        optimizer.step()

    seconds = median_seconds(train_step, repeats=repeats, warmup=2)
    return {
        "what": what,
        "model": model_class.__name__,
        "config": config,
        "parameters": model.parameter_count(),
        "device": where.type,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "size": size,
        "steps_per_second": round(1 / seconds, 2),
    }


def _layer_shape(
    where: torch.device, batch: int, in_channels: int, out_channels: int, size: int
) -> dict:
    """The fields that say what a layer benchmark ran on: device, threads and the shapes."""
    return {
        "device": where.type,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "size": size,
    }


@benchmark("pconv")
def pconv_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 03. Forward + backward time of PartialConv2d against nn.Conv2d of the same
    shape, measured alternately in the same run (target ratio <= 1.15), with LaMa's mixed masks
    at coverage 0.25: the layer as a network uses it (``check_inputs=False``, its mask checked
    once at the network's entry; ``ratio``) and as a layer used on its own, which checks its
    inputs on every call (``ratio_checked``); then training steps per second of the small PConvUNet and ConvUNet
    (batch 16, 64x64: forward, L1 loss, backward, Adam step)."""

    from course_lib import masks
    from course_lib.config import device
    from course_lib.partial_conv import PartialConv2d
    from course_lib.unet import ConvUNet, PConvUNet

    where = device()
    generator = torch.Generator().manual_seed(0)
    shapes = [  # batch, in, out, size, kernel, padding
        (8, 64, 64, 64, 3, 1),
        (8, 4, 64, 128, 7, 3),
        (8, 128, 128, 32, 3, 1),
    ]
    for batch, in_channels, out_channels, size, kernel, padding in shapes:
        conv = nn.Conv2d(in_channels, out_channels, kernel, padding=padding).to(where)
        pconv = PartialConv2d(
            in_channels, out_channels, kernel, padding=padding, check_inputs=False
        ).to(where)
        pconv.load_state_dict(conv.state_dict())
        checked = PartialConv2d(in_channels, out_channels, kernel, padding=padding).to(where)
        checked.load_state_dict(conv.state_dict())
        x = torch.rand(batch, in_channels, size, size, generator=generator).to(where)
        x.requires_grad_(True)
        valid = masks.to_valid(masks.generate("mixed", batch, size, size, 0.25, seed=0))
        valid = valid.to(where)
        grad = torch.randn(batch, out_channels, size, size, generator=generator).to(where)

        # torch.autograd.grad computes the same gradients as .backward() without accumulating
        # them into .grad, so repeated calls do the same work each time.
        def conv_step(conv: nn.Module = conv, x: torch.Tensor = x, grad: torch.Tensor = grad):
            torch.autograd.grad(conv(x), (x, *conv.parameters()), grad)

        def partial_step(
            layer: nn.Module, x: torch.Tensor = x, valid: torch.Tensor = valid, grad=grad
        ) -> Callable[[], object]:
            """One forward + backward of a partial convolution on this shape's tensors."""
            return lambda: torch.autograd.grad(layer(x, valid)[0], (x, *layer.parameters()), grad)

        pconv_step, checked_step = partial_step(pconv), partial_step(checked)
        for step in (conv_step, pconv_step, checked_step):  # warm-up: allocator, kernels
            step()
        conv_seconds, pconv_seconds = paired_medians(conv_step, pconv_step, repeats=args.repeats)
        base_seconds, checked_seconds = paired_medians(
            conv_step, checked_step, repeats=args.repeats
        )
        yield {
            "what": "pconv_vs_conv_forward_backward",
            **_layer_shape(where, batch, in_channels, out_channels, size),
            "kernel": kernel,
            "padding": padding,
            "conv_seconds": round(conv_seconds, 5),
            "pconv_seconds": round(pconv_seconds, 5),
            "ratio": round(pconv_seconds / conv_seconds, 3),
            "ratio_checked": round(checked_seconds / base_seconds, 3),
            "target_ratio": 1.15,
        }

    for model_class in (PConvUNet, ConvUNet):
        yield training_speed(
            model_class, lr=2e-4, repeats=args.repeats, what="unet_train_steps_per_second"
        )


class _LaMaLayoutFourierUnit(nn.Module):
    """The Fourier unit with LaMa's data layout, as a yardstick for ``bench ffc``: the real and
    imaginary parts stacked on a new last axis and moved next to the channels (channel
    ``2c`` is the real part of ``c``, ``2c + 1`` its imaginary part), with a contiguous copy
    on the way in and on the way out. The same arithmetic as :class:`course_lib.ffc.FourierUnit`
    up to the order of the channels; only the memory traffic differs. It takes over the
    ``conv``, ``norm`` and ``activation`` of the unit it replaces."""

    def __init__(self, unit: nn.Module) -> None:
        super().__init__()
        self.conv, self.norm, self.activation = unit.conv, unit.norm, unit.activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        spectrum = torch.fft.rfftn(x, dim=(-2, -1), norm="ortho")  # (B, C, H, W//2+1)
        stacked = torch.stack((spectrum.real, spectrum.imag), dim=-1)  # (B, C, H, W//2+1, 2)
        stacked = stacked.permute(0, 1, 4, 2, 3).contiguous().view(batch, 2 * channels, height, -1)
        stacked = self.activation(self.norm(self.conv(stacked)))  # (B, 2C_out, H, W//2+1)
        stacked = stacked.view(batch, -1, 2, height, stacked.shape[-1]).permute(0, 1, 3, 4, 2)
        stacked = stacked.contiguous()  # (B, C_out, H, W//2+1, 2)
        spectrum = torch.complex(stacked[..., 0], stacked[..., 1])
        return torch.fft.irfftn(spectrum, s=(height, width), dim=(-2, -1), norm="ortho")


@benchmark("ffc")
def ffc_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 05. Forward + backward time of FFCResnetBlock against ConvResnetBlock with the
    same channels (batch 8, training mode), and the target: the same ratio for LaMa's own
    block, i.e. the course's block with LaMa's data layout in its Fourier units
    (:class:`_LaMaLayoutFourierUnit`), all three timed in turn in the same run. Then training
    steps per second of TinyLaMa and its same-size ConvLaMa twin in the "small" and
    "shallow" layouts (batch 16, 64x64)."""

    import copy

    from course_lib.config import device
    from course_lib.ffc import ConvLaMa, ConvResnetBlock, FFCResnetBlock, FourierUnit, TinyLaMa

    where = device()
    generator = torch.Generator().manual_seed(0)
    batch = 8
    shapes = [  # channels, size
        (64, 64),
        (64, 128),
        (128, 32),
        (64, 32),  # the bottleneck of the "shallow" TinyLaMa at 64x64 (lesson 05)
        (64, 256),
    ]
    for channels, size in shapes:
        torch.manual_seed(0)
        conv_block = ConvResnetBlock(channels).to(where).train()
        ffc_block = FFCResnetBlock(channels, ratio=0.75).to(where).train()
        lama_block = copy.deepcopy(ffc_block)  # the same weights, LaMa's layout
        for parent in list(lama_block.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, FourierUnit):
                    setattr(parent, name, _LaMaLayoutFourierUnit(child))
        n_global = ffc_block.conv1.ffc.in_global

        def features(n: int, size: int = size) -> torch.Tensor:
            return torch.randn(batch, n, size, size, generator=generator).to(where)

        x = features(channels).requires_grad_(True)
        grad = features(channels)
        # The FFC block works on the (local, global) pair as it does inside the network.
        x_local = features(channels - n_global).requires_grad_(True)
        x_global = features(n_global).requires_grad_(True)
        grad_local, grad_global = features(channels - n_global), features(n_global)

        # torch.autograd.grad computes the gradients .backward() would, without accumulating
        # them into .grad, so that every call does the same work.
        def conv_step(block: nn.Module = conv_block, x: torch.Tensor = x, grad=grad) -> None:
            torch.autograd.grad(block(x), (x, *block.parameters()), grad)

        def ffc_step(
            block: nn.Module = ffc_block,
            inputs: tuple = (x_local, x_global),
            grads: tuple = (grad_local, grad_global),
        ) -> None:
            torch.autograd.grad(block(inputs), (*inputs, *block.parameters()), grads)

        def lama_step(block: nn.Module = lama_block, step=ffc_step) -> None:
            step(block)

        for step in (conv_step, ffc_step, lama_step):  # warm-up: allocator, kernel selection
            step()
        conv_seconds, ffc_seconds, lama_seconds = paired_medians(
            conv_step, ffc_step, lama_step, repeats=args.repeats
        )
        yield {
            "what": "ffc_block_vs_conv_block_forward_backward",
            "device": where.type,
            "threads": torch.get_num_threads(),
            "batch": batch,
            "channels": channels,
            "size": size,
            "ratio_global": 0.75,
            "conv_seconds": round(conv_seconds, 5),
            "ffc_seconds": round(ffc_seconds, 5),
            "lama_layout_seconds": round(lama_seconds, 5),
            "ratio": round(ffc_seconds / conv_seconds, 3),
            "target_ratio": round(lama_seconds / conv_seconds, 3),
        }

    for config in ("small", "shallow"):
        for model_class in (TinyLaMa, ConvLaMa):
            yield training_speed(
                model_class, lr=1e-3, repeats=args.repeats, what="lama_train_steps_per_second",
                config=config,
            )  # fmt: skip


@benchmark("losses")
def losses_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 04. What the partial-convolution paper's full loss costs per training step:
    PConvLoss forward + backward (to the prediction) against the small PConvUNet's own
    forward + backward (L1 loss), batch 16 at 64x64 with LaMa's mixed masks at coverage
    0.25, timed alternately in the same run; with the course feature network, and with VGG-16
    when its ImageNet weights are on this machine."""
    import statistics

    from course_lib import masks
    from course_lib.config import device
    from course_lib.feature_nets import course_features, vgg16_features, vgg16_weights_file
    from course_lib.losses import PConvLoss
    from course_lib.unet import PConvUNet

    where = device()
    batch, size = 16, 64
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(batch, 3, size, size, generator=generator).to(where)
    holes = masks.generate("mixed", batch, size, size, 0.25, seed=0).to(where)
    torch.manual_seed(0)
    model = PConvUNet.from_config("small").to(where).train()
    parameters = list(model.parameters())
    with torch.no_grad():
        prediction = model(images * (1 - holes), holes)  # (B, 3, H, W), a fixed prediction
    prediction.requires_grad_(True)

    # torch.autograd.grad computes gradients without accumulating them, so every call does
    # the same work; the network's step is what any loss pays, the loss's step comes on top.
    def network_step() -> None:
        output = model(images * (1 - holes), holes)
        torch.autograd.grad((output - images).abs().mean(), parameters)

    builders = [("course", course_features)]
    if vgg16_weights_file().is_file():
        builders.append(("vgg16", vgg16_features))
    for name, build in builders:
        loss_fn = PConvLoss(build()).to(where)

        def loss_step(loss_fn: PConvLoss = loss_fn) -> None:
            terms = loss_fn.terms(prediction, images, holes)
            torch.autograd.grad(loss_fn.combine(terms), prediction)

        for step in (network_step, loss_step):  # warm-up: allocator, kernel selection
            step()
        network_times, loss_times = [], []
        for _ in range(args.repeats):  # alternate, so that a shared machine's load hits both
            network_times.append(median_seconds(network_step, repeats=1, warmup=0))
            loss_times.append(median_seconds(loss_step, repeats=1, warmup=0))
        network_seconds = statistics.median(network_times)
        loss_seconds = statistics.median(loss_times)
        yield {
            "what": "pconv_loss_vs_network_forward_backward",
            "features": name,
            "model": "PConvUNet",
            "config": "small",
            "device": where.type,
            "threads": torch.get_num_threads(),
            "batch": batch,
            "size": size,
            "loss_seconds": round(loss_seconds, 4),
            "network_seconds": round(network_seconds, 4),
            "ratio": round(loss_seconds / network_seconds, 3),
        }


@benchmark("mae")
def mae_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 06. The masked autoencoder's compute saving: forward time of the encoder alone
    (patch embedding, masking, transformer blocks on the visible tokens) at mask ratio 0.75
    against 0.0 (all patches), batch 64 at 64x64, training mode with autograd recording as in
    pre-training, timed alternately in the same run (target ratio <= 0.35), for the quick and
    full configurations. Then training steps per second of the quick configuration (batch 16,
    64x64: forward, loss on removed patches, backward, AdamW step)."""
    from course_lib.config import device
    from course_lib.mae import MaskedAutoencoder, mae_optimizer

    where = device()
    size = 64
    images = torch.rand(64, 3, size, size, generator=torch.Generator().manual_seed(0)).to(where)
    for config in ("quick", "full"):
        torch.manual_seed(0)
        model = MaskedAutoencoder.from_config(config).to(where).train()
        generator = torch.Generator().manual_seed(0)  # CPU noise, moved to the device

        def encoder(ratio: float, model: MaskedAutoencoder = model, generator=generator) -> None:
            model.encode(images, ratio, generator)

        for ratio in (0.0, 0.75):  # warm-up: allocator, kernel selection
            encoder(ratio)
        all_seconds, masked_seconds = paired_medians(
            lambda encoder=encoder: encoder(0.0),
            lambda encoder=encoder: encoder(0.75),
            repeats=args.repeats,
        )
        yield {
            "what": "mae_encoder_forward_masked_vs_all",
            "config": config,
            "parameters": model.parameter_count(),
            "device": where.type,
            "threads": torch.get_num_threads(),
            "batch": len(images),
            "size": size,
            "patches": model.num_patches,
            "visible_at_0.75": int(model.num_patches * (1 - 0.75)),
            "all_seconds": round(all_seconds, 4),
            "masked_seconds": round(masked_seconds, 4),
            "ratio": round(masked_seconds / all_seconds, 3),
            "target_ratio": 0.35,
        }

    batch = 16  # the quick profile's batch size
    torch.manual_seed(0)
    model = MaskedAutoencoder.from_config("quick").to(where).train()
    optimizer = mae_optimizer(model, batch)
    generator = torch.Generator().manual_seed(0)

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _, _ = model(images[:batch], generator=generator)
        loss.backward()
        optimizer.step()

    seconds = median_seconds(train_step, repeats=args.repeats, warmup=2)
    yield {
        "what": "mae_train_steps_per_second",
        "config": "quick",
        "parameters": model.parameter_count(),
        "device": where.type,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "size": size,
        "mask_ratio": model.mask_ratio,
        "steps_per_second": round(1 / seconds, 2),
    }


@benchmark("train")
def train_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lessons 03-05. Where a training step's time goes, per shipped recipe: waiting for the
    batch (images and masks, made in the background while the step before trains, as in
    :func:`course_lib.train.train`), forward and loss, backward, optimiser step (medians over
    ``--repeats`` steps after one warm-up step). The wait should be under 10% of a step;
    ``batch_serial_seconds`` is what making the batch takes without the overlap."""
    from course_lib import config, recipes
    from course_lib.train import (
        MODELS,
        BatchPrefetcher,
        InpaintingBatches,
        build_loss,
        build_optimiser,
        recipe_data,
    )

    where = config.device()

    def clock() -> float:
        if where.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    for name in ("pconv_unet_small", "ablation_full", "tiny_lama_small"):
        recipe = recipes.load(name)
        data = InpaintingBatches(**recipe_data(recipe), seed=recipe.seed)
        torch.manual_seed(0)
        model = MODELS[recipe.model]().to(where).train()
        loss_fn = build_loss(recipe.loss)
        if isinstance(loss_fn, torch.nn.Module):
            loss_fn.to(where)
        optimizer, _ = build_optimiser(recipe.optimiser, model, recipe.steps, data.batch_size)
        phases: dict[str, list[float]] = {
            "batch": [],
            "forward": [],
            "backward": [],
            "optimiser": [],
        }
        batches = BatchPrefetcher(data, 0, args.repeats + 1)
        for step in range(args.repeats + 1):
            start = clock()
            image, hole = (tensor.to(where) for tensor in batches.take(step))
            prepared = clock()
            loss, _ = loss_fn(model, image, hole)
            forward = clock()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            backward = clock()
            optimizer.step()
            done = clock()
            if step == 0:  # warm-up: first calls allocate and pick kernels
                continue
            for phase, seconds in zip(
                phases,
                (prepared - start, forward - prepared, backward - forward, done - backward),
                strict=True,
            ):
                phases[phase].append(seconds)
        batches.close()
        serial = []
        for step in range(args.repeats):
            start = clock()
            data.batch(args.repeats + 1 + step)
            serial.append(clock() - start)
        medians = {phase: float(np.median(values)) for phase, values in phases.items()}
        total = sum(medians.values())
        yield {
            "what": "training_step_phases",
            "recipe": name,
            "device": where.type,
            "threads": torch.get_num_threads(),
            "batch": data.batch_size,
            "size": data.size,
            **{f"{phase}_seconds": round(value, 4) for phase, value in medians.items()},
            "total_seconds": round(total, 4),
            "batch_share": round(medians["batch"] / total, 3),
            "batch_serial_seconds": round(float(np.median(serial)), 4),
            "target_batch_share": 0.1,
        }


@benchmark("gated")
def gated_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 08. Forward + backward time of a 3x3 GatedConv2d against nn.Conv2d with the
    same channels, and against nn.Conv2d with twice the output channels, all timed in turn in
    the same run. A gated convolution *is* that wider convolution plus an ELU, a sigmoid and a
    product, so ``ratio`` (gated / plain) is about 2 and ``ratio_to_double`` (gated / wide)
    is what the gating's elementwise work adds on top."""
    from course_lib.config import device
    from course_lib.gated_conv import GatedConv2d

    where = device()
    generator = torch.Generator().manual_seed(0)
    for batch, in_channels, out_channels, size in (
        (8, 64, 64, 64),
        (8, 4, 64, 128),
        (8, 128, 128, 32),
    ):
        layers = {
            "conv": nn.Conv2d(in_channels, out_channels, 3, padding=1),
            "gated": GatedConv2d(in_channels, out_channels, 3),
            "double": nn.Conv2d(in_channels, 2 * out_channels, 3, padding=1),
        }
        x = torch.rand(batch, in_channels, size, size, generator=generator).to(where)
        x.requires_grad_(True)

        def forward_backward(layer: nn.Module, x: torch.Tensor = x) -> Callable[[], object]:
            layer.to(where)
            with torch.no_grad():
                grad = torch.randn(layer(x).shape, generator=generator).to(where)
            return lambda: torch.autograd.grad(layer(x), (x, *layer.parameters()), grad)

        steps = [forward_backward(layer) for layer in layers.values()]
        for step in steps:  # warm-up: allocator, kernels
            step()
        conv_seconds, gated_seconds, double_seconds = paired_medians(*steps, repeats=args.repeats)
        yield {
            "what": "gated_vs_conv_forward_backward",
            **_layer_shape(where, batch, in_channels, out_channels, size),
            "conv_seconds": round(conv_seconds, 5),
            "gated_seconds": round(gated_seconds, 5),
            "double_conv_seconds": round(double_seconds, 5),
            "ratio": round(gated_seconds / conv_seconds, 3),
            "ratio_to_double": round(gated_seconds / double_seconds, 3),
        }


@benchmark("attention")
def attention_suite(args: argparse.Namespace) -> Iterator[dict]:
    """Lesson 08. Seconds of one contextual_attention call (forward, one sample of 32
    channels, 3x3 patches, propagation 3) on 32x32 and 64x64 feature maps with a centred
    square hole of 10%, 25% and 50% of the map. Every location is scored against every
    patch, so the cost grows with the square of the number of locations (16x more work from
    32 to 64); a larger hole leaves fewer patches to copy and a little less work. This is why
    DeepFill matches on downsampled features."""
    from course_lib.config import device
    from course_lib.contextual_attention import contextual_attention
    from course_lib.masks import centred_box

    where = device()
    generator = torch.Generator().manual_seed(0)
    for size in (32, 64):
        maps = torch.randn(1, 32, size, size, generator=generator).to(where)
        for coverage in (0.1, 0.25, 0.5):
            hole = centred_box(size, coverage).to(where)  # (1, 1, size, size)
            with torch.no_grad():
                seconds = median_seconds(
                    lambda maps=maps, hole=hole: contextual_attention(maps, maps, hole),
                    repeats=args.repeats,
                )
            yield {
                "what": "contextual_attention_forward",
                "device": where.type,
                "threads": torch.get_num_threads(),
                "channels": 32,
                "size": size,
                "locations": size * size,
                "hole_coverage": round(float(hole.mean()), 3),
                "seconds": round(seconds, 4),
            }
