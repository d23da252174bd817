import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # deterministic and immune to a busy second core


@pytest.fixture
def rng():
    return np.random.default_rng(0)
