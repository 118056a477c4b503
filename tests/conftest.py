from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MSC_DATA = REPO.parent / "shared" / "data" / "msc"


@pytest.fixture
def msc_data() -> Path:
    if not (MSC_DATA / "user_profiles.json").exists():
        pytest.skip(f"MultiSessionCollab reference data not found at {MSC_DATA} (it lives beside the repository)")
    return MSC_DATA
