from __future__ import annotations

import pytest
from _data_helpers import make_dataset


@pytest.fixture
def small_dataset():
    return make_dataset()
