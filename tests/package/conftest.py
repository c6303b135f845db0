"""Fixtures for tests that run the frozen (PyInstaller) app in ``dist/ctseg-gui``.

Those tests skip, with the reason, when the bundle is not built or is older than the sources, so a
plain ``make test`` stays fast. ``make package-test`` builds (or reuses) the bundle and sets
``CTSEG_REQUIRE_FROZEN=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from _frozen_helpers import frozen_app_or_reason


@pytest.fixture(scope="session")
def frozen_app() -> Path:
    """The frozen executable; skips (or fails under ``make package-test``) when unavailable."""
    app, reason = frozen_app_or_reason()
    if app is None:
        if os.environ.get("CTSEG_REQUIRE_FROZEN") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return app
