"""Fixtures shared by the unit tests."""

import pytest

from appliance.store import Store


@pytest.fixture
def store(tmp_path):
    """An empty store in a temporary folder, with the domain example.org."""
    s = Store.in_folder(tmp_path)
    s.add_domain("example.org")
    yield s
    s.close()
