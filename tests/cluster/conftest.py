from __future__ import annotations

import pytest

from tests.cluster.onebox_harness import Onebox


@pytest.fixture
def onebox_factory(tmp_path):
    """Start oneboxes on free ports under tmp_path; every process is stopped by pid at teardown."""
    boxes: list[Onebox] = []

    def start(name: str = "box", replicas: int = 3, extra_args: list[str] | None = None) -> Onebox:
        box = Onebox(tmp_path / name, replicas=replicas, extra_args=extra_args)
        boxes.append(box)
        return box.start()

    yield start
    for box in boxes:
        box.stop()


@pytest.fixture(scope="module")
def shared_onebox(tmp_path_factory):
    """One onebox for a module's read/write tests that do not kill anything."""
    box = Onebox(tmp_path_factory.mktemp("shared_onebox") / "box", replicas=3)
    try:
        box.start()
        yield box
    finally:
        box.stop()
