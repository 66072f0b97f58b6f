import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))


def pytest_collection_modifyitems(items):
    """Carry each fault scenario's description into the JUnit XML that benchmarks/faults.py reads."""
    for item in items:
        marker = item.get_closest_marker("faults")
        if marker is not None and marker.args:
            item.user_properties.append(("scenario", marker.args[0]))
