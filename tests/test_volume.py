import numpy as np
import pytest

from ctseg_gui.core.volume import Volume, grid_differences


def make(direction=None, spacing=(0.5, 0.7, 2.0), origin=(10.0, -20.0, 30.0)):
    direction = np.eye(3) if direction is None else direction
    return Volume(np.zeros((4, 5, 6), np.int16), spacing, origin, direction)


def test_size_is_ijk_of_kji_array():
    assert make().size == (6, 5, 4)


def test_index_world_round_trip_oblique():
    angle = np.radians(20)
    rotation = np.array(
        [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    )
    volume = make(direction=rotation)
    points = np.array([[0, 0, 0], [5, 4, 3], [1.5, 2.25, 0.5]])
    world = volume.index_to_world(points)
    np.testing.assert_allclose(world[0], volume.origin)
    np.testing.assert_allclose(volume.world_to_index(world), points, atol=1e-9)
    assert volume.is_oblique


def test_orientation_codes_and_ras_affine():
    lps = make()
    assert lps.orientation_code == "LPS"
    ras = make(direction=np.diag([-1.0, -1.0, 1.0]))
    assert ras.orientation_code == "RAS"
    # RAS affine of an RAS-oriented grid has a positive diagonal
    assert np.all(np.diag(ras.affine_ras)[:3] > 0)


def test_grid_differences_name_what_differs():
    a = make()
    b = make(spacing=(0.5, 0.7, 2.5), origin=(10.0, -20.0, 35.0))
    problems = grid_differences(a, b)
    assert any("spacing" in p for p in problems)
    assert any("origin" in p for p in problems)
    assert not grid_differences(a, make())


def test_rejects_non_3d_and_bad_spacing():
    with pytest.raises(ValueError):
        Volume(np.zeros((3, 3)), (1, 1, 1))
    with pytest.raises(ValueError):
        Volume(np.zeros((3, 3, 3)), (1, 0, 1))
