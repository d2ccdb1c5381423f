"""ZITS's masking positional encoding (course_lib.mpe) against brute force."""

import itertools

import pytest
import torch

from course_lib import masks
from course_lib.mpe import (
    MaskPositionEmbedding,
    PositionedConvUNet,
    masking_positional_encoding,
    sinusoid_table,
)
from course_lib.unet import ConvUNet

# The neighbours in each quadrant, as (row, column) offsets (the kernels' 1s, centre excluded).
QUADRANT_OFFSETS = [
    [(-1, -1), (-1, 0), (0, -1)],  # up and left
    [(0, -1), (1, -1), (1, 0)],  # down and left
    [(-1, 0), (-1, 1), (0, 1)],  # up and right
    [(0, 1), (1, 0), (1, 1)],  # down and right
]


def brute_force(hole):
    """Chessboard distance to the nearest known pixel, and the quadrants of the neighbours
    that are closer to the known region, by loops over pixels."""
    _, _, height, width = hole.shape
    known = [
        (y, x) for y, x in itertools.product(range(height), range(width)) if hole[0, 0, y, x] == 0
    ]
    distance = torch.zeros(height, width, dtype=torch.long)
    for y, x in itertools.product(range(height), range(width)):
        if hole[0, 0, y, x] == 1:
            distance[y, x] = min(max(abs(y - v), abs(x - u)) for v, u in known)
    direction = torch.zeros(4, height, width)
    for y, x in itertools.product(range(height), range(width)):
        if distance[y, x] == 0:
            continue
        for k, offsets in enumerate(QUADRANT_OFFSETS):
            for dy, dx in offsets:
                v, u = y + dy, x + dx
                if 0 <= v < height and 0 <= u < width and distance[v, u] < distance[y, x]:
                    direction[k, y, x] = 1
    return distance, direction


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_distance_and_direction_equal_brute_force(seed):
    hole = masks.generate("mixed", 1, 13, 11, coverage=0.45, seed=seed)
    distance, index, direction = masking_positional_encoding(hole, bins=8)
    expected_distance, expected_direction = brute_force(hole)
    assert torch.equal(distance[0], expected_distance)
    assert torch.equal(direction[0], expected_direction)
    short = 11
    assert torch.equal(index[0], (expected_distance / (short / 2) * 8).long().clamp(0, 7))
    assert int(distance.max()) > 1, "the example must have pixels deep in the hole"


def test_a_centred_box_is_deeper_in_the_middle_and_reached_from_its_sides():
    hole = masks.centred_box(16, 0.25)  # an 8 x 8 box, rows and columns 4..11
    distance, _, direction = masking_positional_encoding(hole)
    assert distance[0, 4, 4] == 1 and distance[0, 7, 7] == 4 and distance[0, 0, 0] == 0
    # The box's top-left corner is reached from up-left, its bottom-right one from down-right.
    assert direction[0, :, 4, 4].tolist() == [1, 1, 1, 0]
    assert direction[0, :, 11, 11].tolist() == [0, 1, 1, 1]
    assert direction[0, :, 0, 0].sum() == 0  # known pixels carry no direction


def test_the_embedding_starts_at_zero_and_leaves_known_pixels_alone():
    hole = masks.centred_box(16, 0.25)
    embedding = MaskPositionEmbedding(6, bins=16)
    assert embedding(hole).abs().max() == 0  # both scales start at 0
    with torch.no_grad():
        embedding.alpha_distance.fill_(1.0)
        embedding.alpha_direction.fill_(1.0)
    features = embedding(hole)
    assert features.shape == (1, 6, 16, 16)
    assert features[0, :, 0, 0].abs().max() == 0
    _, index, direction = masking_positional_encoding(hole, bins=16)
    expected = (
        sinusoid_table(16, 6)[index[0, 7, 7]] + direction[0, :, 7, 7] @ embedding.direction_vectors
    )
    assert torch.allclose(features[0, :, 7, 7], expected, atol=1e-6)


def test_the_sinusoid_table_and_bad_input():
    # Channels 4: frequencies 1 and 10000^(-1/2) = 0.01, sines first, then cosines.
    angles = torch.tensor([3.0, 0.03])
    assert torch.allclose(sinusoid_table(5, 4)[3], torch.cat([angles.sin(), angles.cos()]))
    with pytest.raises(ValueError, match="all hole"):
        masking_positional_encoding(torch.ones(1, 1, 4, 4))


def test_the_positioned_unet_starts_as_the_convunet_it_extends():
    torch.manual_seed(0)
    plain = ConvUNet.from_config("small").eval()
    positioned = PositionedConvUNet.from_config("small").eval()
    missing, unexpected = positioned.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == [
        "position.alpha_direction",
        "position.alpha_distance",
        "position.direction_vectors",
    ]
    assert not unexpected
    image = torch.rand(2, 3, 45, 37)  # odd sizes: padded to 64 inside, cropped back
    hole = masks.generate("box", 2, 45, 37, coverage=0.4, seed=3)
    assert torch.equal(positioned(image, hole), plain(image, hole))
    with torch.no_grad():
        positioned.position.alpha_distance.fill_(1.0)
    assert not torch.allclose(positioned(image, hole), plain(image, hole))


def test_the_positioned_unet_encodes_only_cells_that_are_all_hole():
    network = PositionedConvUNet.from_config("small")
    with torch.no_grad():
        network.position.alpha_distance.fill_(1.0)
        network.position.alpha_direction.fill_(1.0)
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., 1:7, 1:7] = 1  # a 6x6 hole: feature cells (1..2, 1..2) are all hole
    features = network._first_features(torch.zeros(1, 32, 4, 4), hole)  # (1, 32, 4, 4)
    encoded = features.abs().sum(dim=1)[0] > 0  # (4, 4)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(encoded, expected)


def test_the_positioned_unet_refuses_a_sample_with_no_known_pixel():
    network = PositionedConvUNet.from_config("small").eval()
    hole = torch.zeros(2, 1, 32, 32)
    hole[1] = 1
    with pytest.raises(ValueError, match="sample 1 is all hole"):
        network(torch.rand(2, 3, 32, 32), hole)
