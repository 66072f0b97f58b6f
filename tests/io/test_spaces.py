import json

import numpy as np
import pytest
from gymnasium import spaces

from tracerl.errors import UnsupportedSpaceError
from tracerl.io.spaces import space_from_json, space_to_json

SPACES = [
    spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32),
    spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 5.0]), dtype=np.float64),
    spaces.Box(0, 255, shape=(2, 2), dtype=np.uint8),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([3, 4]),
    spaces.MultiBinary(4),
    spaces.Tuple([spaces.Discrete(2), spaces.Box(-1, 1, shape=(1,), dtype=np.float32)]),
    spaces.Dict({"b": spaces.Discrete(3), "a": spaces.Dict({"x": spaces.MultiBinary(2)})}),
]


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_spaces_round_trip_through_json_text(space):
    text = json.dumps(space_to_json(space))
    assert space_from_json(json.loads(text)) == space


def test_dict_key_order_survives():
    space = SPACES[-1]
    assert list(space_from_json(space_to_json(space)).spaces) == list(space.spaces)


def test_unsupported_and_unknown_spaces_raise():
    with pytest.raises(UnsupportedSpaceError, match="Text"):
        space_to_json(spaces.Text(4))
    with pytest.raises(ValueError, match="Weird"):
        space_from_json({"type": "Weird"})
