"""Plausible wrong answers to every exercise of every lesson, which their checks must reject.

``WRONG_ANSWERS[notebook stem][k]`` lists the wrong answers to exercise ``k`` (the k-th cell
with solution blocks). Each gives the code that replaces the body of each solution block of
that cell (``None`` keeps the solution's body). ``tools/check_exercises.py`` (``make
exercises``) runs them; ``tests/test_exercises.py`` checks that every exercise has some.

Each is a mistake a student could make: an off-by-one, a swapped convention, the hard instead
of the soft update, a forgotten factor, or a call of the library function the exercise asks
the student to write.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WrongAnswer:
    label: str
    blocks: tuple[str | None, ...]


def wrong(label: str, *blocks: str | None) -> WrongAnswer:
    return WrongAnswer(label, blocks)


WRONG_ANSWERS: dict[str, dict[int, list[WrongAnswer]]] = {
    "00_welcome": {
        1: [
            wrong("hole and known swapped", "return (1 - hole) * prediction + hole * image"),
            wrong("the library's composite", "return masks.composite(image, hole, prediction)"),
        ],
        2: [
            wrong(
                "threshold one grey level too high",
                "valid = (pixels > 128).float()[None, None]\nreturn masks.to_hole(valid)",
            ),
            wrong("the valid mask, not the hole", "return (pixels >= 128).float()[None, None]"),
            wrong("no batch and channel axes", "return masks.to_hole((pixels >= 128).float())"),
        ],
    },
    "01_masking": {
        1: [
            wrong("rows only", "return hole[..., [0, -1], :].flatten(1).amax(dim=1) > 0"),
            wrong("the library's test", "return masks.touches_border(hole)"),
        ],
        2: [
            wrong(
                "a cross (four neighbours), not a 3x3 square",
                "cross = torch.tensor([[0.0, 1, 0], [1, 1, 1], [0, 1, 0]])[None, None]\n"
                "return (torch.nn.functional.conv2d(hole, cross, padding=1) > 0).float()",
            ),
            wrong(
                "no padding: the mask shrinks",
                "return torch.nn.functional.max_pool2d(hole, kernel_size=3, stride=1)",
            ),
            wrong("the library's dilation", 'return masks.dilate(hole, 1, shape="square")'),
        ],
        3: [
            wrong(
                "the masks outside every band dropped",
                "counts = {band: 0 for band in [*range(len(masks.COVERAGE_BANDS)), None]}\n"
                "for band in masks.band_of(hole):\n"
                "    if band is not None:\n"
                "        counts[band] += 1\n"
                "return counts",
            ),
            wrong(
                "no None key",
                "counts = {band: 0 for band in range(len(masks.COVERAGE_BANDS))}\n"
                "for band in masks.band_of(hole):\n"
                "    counts[band if band is not None else 5] += 1\n"
                "return counts",
            ),
        ],
    },
    "02_classical_inpainting_and_metrics": {
        1: [
            wrong(
                "divided by hole pixels, not channels x hole pixels",
                "errors = ((prediction - target).abs() * hole).sum(dim=(1, 2, 3))\n"
                "return errors / hole.sum(dim=(1, 2, 3))",
            ),
            wrong(
                "the mean over every pixel",
                "return ((prediction - target).abs() * hole).mean(dim=(1, 2, 3))",
            ),
            wrong(
                "the library's L1",
                'return metrics.l1(prediction, target, hole, region="hole")',
            ),
        ],
        2: [
            wrong(
                "row and column swapped",
                "target = image_a[row : row + patch, col : col + patch]\n"
                "best, best_distance = (0, 0), np.inf\n"
                "for r in range(image_b.shape[0] - patch + 1):\n"
                "    for c in range(image_b.shape[1] - patch + 1):\n"
                "        distance = ((image_b[r : r + patch, c : c + patch] - target) ** 2).sum()\n"
                "        if distance < best_distance:\n"
                "            best, best_distance = (c, r), distance\n"
                "return best",
            ),
            wrong(
                "the library's exact field",
                "field, _ = patchmatch.exact_nearest_neighbour_field(image_a, image_b, patch_size=patch)\n"
                "return tuple(field[row, col])",
            ),
        ],
        3: [
            wrong(
                "noise everywhere, not a composite",
                "noise = 0.1 * torch.randn(target_photo.shape, generator=torch.Generator().manual_seed(0))\n"
                "my_answer = (target_photo + noise).clamp(0, 1)",
            ),
            wrong(
                "a flat grey fill: both metrics agree",
                "my_answer = masks.composite(target_photo, centre, torch.full_like(target_photo, 0.5))",
            ),
        ],
    },
    "03_partial_convolution": {
        1: [
            wrong(
                "the hard update",
                "return F.max_pool2d(valid, kernel_size, stride=1, padding=kernel_size // 2)",
            ),
            wrong(
                "divided by the window's pixels inside the image",
                "return F.avg_pool2d(valid, kernel_size, stride=1, padding=kernel_size // 2,\n"
                "                    count_include_pad=False)",
            ),
        ],
        2: [
            wrong("the ratio upside down", "corner_ratio = 9 / 25"),
            wrong("a 4 x 4 corner window", "corner_ratio = 25 / 16"),
        ],
        3: [
            wrong("one channel's mask counted", "multi_ratio = 27 / 9"),
            wrong("as if every channel were valid", "multi_ratio = 1.0"),
        ],
    },
    "04_loss_terms": {
        1: [
            wrong(
                "the labels the wrong way round",
                "real_term = F.relu(1 - real_logits).mean()\n"
                "fake_term = (\n"
                "    (1 - fake_labels) * F.relu(1 + fake_logits) + fake_labels * F.relu(1 - fake_logits)\n"
                ").mean()\n"
                "return real_term + fake_term",
            ),
            wrong(
                "every patch of the fake counted as fake",
                "return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()",
            ),
            wrong(
                "the library's hinge loss",
                "return losses.hinge_d_loss(real_logits, fake_logits, fake_labels)",
            ),
        ],
        2: [
            wrong(
                "Gram matrices not divided by C x H x W",
                "batch, channels, height, width = out_map.shape\n"
                "out_flat = out_map.reshape(batch, channels, height * width)\n"
                "truth_flat = truth_map.reshape(batch, channels, height * width)\n"
                "out_gram = out_flat @ out_flat.transpose(1, 2)\n"
                "truth_gram = truth_flat @ truth_flat.transpose(1, 2)\n"
                "return (out_gram - truth_gram).abs().mean()",
            ),
            wrong(
                "the library's Gram matrix",
                "return (losses.gram_matrix(out_map) - losses.gram_matrix(truth_map)).abs().mean()",
            ),
        ],
        3: [
            wrong(
                "the hole's weight 6 forgotten",
                "balanced_style_weight = (\n"
                '    loss_terms["hole"].item() / (loss_terms["style_out"] + loss_terms["style_comp"]).item()\n'
                ")",
            ),
            wrong(
                "one of the two style terms",
                'balanced_style_weight = 6 * loss_terms["hole"].item() / loss_terms["style_out"].item()',
            ),
        ],
    },
    "05_fourier_convolution": {
        1: [
            wrong("the period, not the frequency", "return period"),
            wrong("half the frequency", "return width // (2 * period)"),
        ],
        2: [
            wrong(
                "no size for the inverse FFT: odd widths come back even",
                'spectrum = torch.fft.rfft2(x, norm="ortho")\n'
                "mixed = F.conv2d(torch.cat([spectrum.real, spectrum.imag], dim=1), weight)\n"
                "real, imaginary = mixed.chunk(2, dim=1)\n"
                'return torch.fft.irfft2(torch.complex(real, imaginary), norm="ortho")',
            ),
            wrong(
                "imaginary parts stacked first",
                "height, width = x.shape[-2:]\n"
                'spectrum = torch.fft.rfft2(x, norm="ortho")\n'
                "mixed = F.conv2d(torch.cat([spectrum.imag, spectrum.real], dim=1), weight)\n"
                "real, imaginary = mixed.chunk(2, dim=1)\n"
                'return torch.fft.irfft2(torch.complex(real, imaginary), s=(height, width), norm="ortho")',
            ),
            wrong(
                "the library's Fourier unit",
                "unit = ffc.FourierUnit(x.shape[1], weight.shape[0] // 2).eval()\n"
                "unit.conv.weight.data.copy_(weight)\n"
                "unit.norm.running_var.fill_(1 - unit.norm.eps)\n"
                "unit.activation = torch.nn.Identity()\n"
                "return unit(x)",
            ),
        ],
        3: [
            wrong(
                "strides ignored",
                "return 1 + sum(kernel_size - 1 for kernel_size, _ in layers)",
                None,
            ),
            wrong(
                "the jump applied before the layer's own stride is known",
                "field, jump = 1, 1\n"
                "for kernel_size, stride in layers:\n"
                "    jump *= stride\n"
                "    field += (kernel_size - 1) * jump\n"
                "return field",
                None,
            ),
            wrong("as many layers as pixels", None, "layers_to_see_everything = 64"),
            wrong("one layer short", None, "layers_to_see_everything = 31"),
        ],
    },
    "06_masked_autoencoder": {
        1: [
            wrong("rounded, not truncated", "return round(length * (1 - ratio))"),
            wrong("the removed patches, not the kept ones", "return int(length * ratio)"),
            wrong(
                "the library's masking",
                "return mae.random_masking(torch.zeros(1, length, 1), ratio)[0].shape[1]",
            ),
        ],
        2: [
            wrong(
                "the population deviation (n, not n - 1)",
                "mean = x.mean()\n"
                "std = torch.sqrt(((x - mean) ** 2).sum() / x.numel() + mae.NORM_PIX_EPS)\n"
                "return (x - mean) / std, mean.item(), std.item()",
                None,
            ),
            wrong(
                "eps added outside the root",
                "mean = x.mean()\n"
                "std = x.std() + mae.NORM_PIX_EPS\n"
                "return (x - mean) / std, mean.item(), std.item()",
                None,
            ),
            wrong("shift and scale in the wrong order", None, "return (z + mean) * std"),
            wrong(
                "the library's statistics",
                "mean, std = mae.patch_statistics(x[None, None])\n"
                "return mae.normalize_patches(x[None, None], mean, std)[0, 0], mean.item(), std.item()",
                None,
            ),
        ],
        3: [
            wrong(
                "patches read column by column",
                "batch, _, height, width = hole.shape\n"
                "cells = hole.reshape(batch, height // patch, patch, width // patch, patch)\n"
                "return cells.amax(dim=(2, 4)).transpose(1, 2).reshape(batch, -1)",
                None,
            ),
            wrong(
                "the mean, not the maximum: only patches entirely hole",
                "batch, _, height, width = hole.shape\n"
                "cells = hole.reshape(batch, height // patch, patch, width // patch, patch)\n"
                "return (cells.mean(dim=(2, 4)) == 1).float().reshape(batch, -1)",
                None,
            ),
            wrong(
                "max pooling, which the exercise rules out",
                "return torch.nn.functional.max_pool2d(hole, patch).flatten(1)",
                None,
            ),
            wrong(
                "max pooling through torch's own door, also ruled out",
                "return torch.max_pool2d(hole, patch).flatten(1)",
                None,
            ),
            wrong(
                "the mask that costs the least",
                None,
                "costs = touched_patches(strokes_10_20, patch).sum(dim=1)\nworst = int(costs.argmin())",
            ),
        ],
    },
    "07_inpainting_lab": {
        1: [
            wrong(
                "the lowest PSNR",
                "winners = {\n"
                '    band: min(final["scenes"], key=lambda table: table.value("box", band, "psnr")).method\n'
                "    for band in evaluate.band_indices()\n"
                "}",
            ),
            wrong(
                "the photos' table",
                "winners = {\n"
                '    band: max(final["photos"], key=lambda table: table.value("box", band, "psnr")).method\n'
                "    for band in evaluate.band_indices()\n"
                "}",
            ),
        ],
        2: [
            wrong(
                "biharmonic for every hole",
                'threshold = 0.4\nswitch_fill = lab.fill_function("biharmonic")',
            ),
            wrong(
                "the comparison the wrong way round",
                "threshold = 0.4\n"
                'large_hole_method = lab.fill_function("PConvUNet")\n\n\n'
                "def switch_fill(image, hole):\n"
                "    small = masks.coverage(hole) > threshold\n"
                '    small_answer = lab.fill_function("biharmonic")(image, hole)\n'
                "    return torch.where(small.view(-1, 1, 1, 1), small_answer, large_hole_method(image, hole))",
            ),
            wrong(
                "the MAE for large holes, without reading the tables",
                "threshold = 0.4\n\n\n"
                "def switch_fill(image, hole):\n"
                "    small = masks.coverage(hole) < threshold\n"
                '    small_answer = lab.fill_function("biharmonic")(image, hole)\n'
                '    large_answer = lab.fill_function("MAE")(image, hole)\n'
                "    return torch.where(small.view(-1, 1, 1, 1), small_answer, large_answer)",
            ),
        ],
        3: [
            wrong(
                "numbers not from the tables",
                'discussion = """\n'
                "1. Biharmonic wins the small holes, 77.7 dB.\n"
                "2. TinyLaMa beats ConvLaMa by 88.8 dB.\n"
                "3. The MAE loses whole patches, 99.9 dB.\n"
                "4. I would add LPIPS.\n"
                '"""',
            ),
            wrong(
                "three answers",
                'discussion = """\n1. Diffusion wins.\n2. TinyLaMa and ConvLaMa tie.\n3. Patches.\n"""',
            ),
        ],
    },
    "08_gan_inpainting_lineage": {
        1: [
            wrong(
                "the foreground's norm left out (the authors' code, not the paper's cosine)",
                'def attention_by_loops(foreground, background, hole, scale=10.0):\n    _, channels, height, width = foreground.shape\n    padded_f, padded_b = F.pad(foreground, (1, 1, 1, 1)), F.pad(background, (1, 1, 1, 1))\n    padded_hole = F.pad(hole, (1, 1, 1, 1), value=1.0)\n    logits = torch.full((height * width, height, width), float("-inf"))\n    for v in range(height):\n        for u in range(width):\n            if padded_hole[0, 0, v : v + 3, u : u + 3].sum() > 0:\n                continue\n            patch = padded_b[0, :, v : v + 3, u : u + 3].flatten()\n            for y in range(height):\n                for x in range(width):\n                    query = padded_f[0, :, y : y + 3, x : x + 3].flatten()\n                    cosine = query @ patch / patch.norm().clamp(min=1e-4)\n                    logits[v * width + u, y, x] = scale * cosine\n    return torch.softmax(logits, dim=0)',
            ),
            wrong(
                "no softmax scale",
                'def attention_by_loops(foreground, background, hole, scale=10.0):\n    _, channels, height, width = foreground.shape\n    padded_f, padded_b = F.pad(foreground, (1, 1, 1, 1)), F.pad(background, (1, 1, 1, 1))\n    padded_hole = F.pad(hole, (1, 1, 1, 1), value=1.0)\n    logits = torch.full((height * width, height, width), float("-inf"))\n    for v in range(height):\n        for u in range(width):\n            if padded_hole[0, 0, v : v + 3, u : u + 3].sum() > 0:\n                continue\n            patch = padded_b[0, :, v : v + 3, u : u + 3].flatten()\n            for y in range(height):\n                for x in range(width):\n                    query = padded_f[0, :, y : y + 3, x : x + 3].flatten()\n                    cosine = query @ patch / (query.norm().clamp(min=1e-4) * patch.norm().clamp(min=1e-4))\n                    logits[v * width + u, y, x] = 1.0 * cosine\n    return torch.softmax(logits, dim=0)',
            ),
            wrong(
                "only the patch's centre checked against the hole",
                'def attention_by_loops(foreground, background, hole, scale=10.0):\n    _, channels, height, width = foreground.shape\n    padded_f, padded_b = F.pad(foreground, (1, 1, 1, 1)), F.pad(background, (1, 1, 1, 1))\n    padded_hole = F.pad(hole, (1, 1, 1, 1), value=1.0)\n    logits = torch.full((height * width, height, width), float("-inf"))\n    for v in range(height):\n        for u in range(width):\n            if padded_hole[0, 0, v + 1, u + 1] > 0:\n                continue\n            patch = padded_b[0, :, v : v + 3, u : u + 3].flatten()\n            for y in range(height):\n                for x in range(width):\n                    query = padded_f[0, :, y : y + 3, x : x + 3].flatten()\n                    cosine = query @ patch / (query.norm().clamp(min=1e-4) * patch.norm().clamp(min=1e-4))\n                    logits[v * width + u, y, x] = scale * cosine\n    return torch.softmax(logits, dim=0)',
            ),
            wrong(
                "the border's padding counted as known",
                'def attention_by_loops(foreground, background, hole, scale=10.0):\n    _, channels, height, width = foreground.shape\n    padded_f, padded_b = F.pad(foreground, (1, 1, 1, 1)), F.pad(background, (1, 1, 1, 1))\n    padded_hole = F.pad(hole, (1, 1, 1, 1), value=0.0)\n    logits = torch.full((height * width, height, width), float("-inf"))\n    for v in range(height):\n        for u in range(width):\n            if padded_hole[0, 0, v : v + 3, u : u + 3].sum() > 0:\n                continue\n            patch = padded_b[0, :, v : v + 3, u : u + 3].flatten()\n            for y in range(height):\n                for x in range(width):\n                    query = padded_f[0, :, y : y + 3, x : x + 3].flatten()\n                    cosine = query @ patch / (query.norm().clamp(min=1e-4) * patch.norm().clamp(min=1e-4))\n                    logits[v * width + u, y, x] = scale * cosine\n    return torch.softmax(logits, dim=0)',
            ),
            wrong(
                "the library's layer",
                "def attention_by_loops(foreground, background, hole, scale=10.0):\n"
                "    return ca.contextual_attention(foreground, background, hole, propagation=1)[1][0]",
            ),
        ],
        2: [
            wrong(
                "features and gates swapped",
                "def gated_by_formula(layer, x):\n    conv = layer.conv\n    both = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)\n    features, gate = both[:, : layer.out_channels], both[:, layer.out_channels :]\n    return F.elu(gate) * torch.sigmoid(features)",
            ),
            wrong(
                "no sigmoid on the gate",
                "def gated_by_formula(layer, x):\n    conv = layer.conv\n    both = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)\n    features, gate = both[:, : layer.out_channels], both[:, layer.out_channels :]\n    return F.elu(features) * gate",
            ),
            wrong(
                "ReLU instead of ELU",
                "def gated_by_formula(layer, x):\n    conv = layer.conv\n    both = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)\n    features, gate = both[:, : layer.out_channels], both[:, layer.out_channels :]\n    return F.relu(features) * torch.sigmoid(gate)",
            ),
            wrong("the layer itself", "def gated_by_formula(layer, x):\n    return layer(x)"),
        ],
    },
    "09_structure_first": {
        1: [
            wrong(
                "not normalised: the blur of the zeros darkens the border",
                "def smooth_known(grey, known, sigma):\n    return blur(grey * known, sigma)",
            ),
            wrong(
                "the hole's pixels blurred in",
                "def smooth_known(grey, known, sigma):\n    return blur(grey, sigma)",
            ),
            wrong(
                "divided by the mask instead of its blur",
                "def smooth_known(grey, known, sigma):\n"
                "    return blur(grey * known, sigma) / np.maximum(known, 1e-6)",
            ),
            wrong(
                "the known pixels kept unsmoothed",
                "def smooth_known(grey, known, sigma):\n"
                "    smooth = blur(grey * known, sigma) / np.maximum(blur(known, sigma), 1e-6)\n"
                "    return np.where(known == 1, grey, smooth)",
            ),
        ],
        2: [
            wrong(
                "the Euclidean distance",
                "from scipy import ndimage\n\n\ndef hole_distance(hole):\n"
                "    return ndimage.distance_transform_edt(hole)",
            ),
            wrong(
                "the taxicab distance",
                "from scipy import ndimage\n\n\ndef hole_distance(hole):\n"
                '    return ndimage.distance_transform_cdt(hole, metric="taxicab")',
            ),
            wrong(
                "the distance of the known pixels to the hole",
                "from scipy import ndimage\n\n\ndef hole_distance(hole):\n"
                '    return ndimage.distance_transform_cdt(1 - hole, metric="chessboard")',
            ),
            wrong(
                "the library's encoding",
                "def hole_distance(hole):\n"
                "    hole = torch.from_numpy(hole).float()[None, None]\n"
                "    return mpe.masking_positional_encoding(hole)[0][0].numpy()",
            ),
        ],
    },
}
