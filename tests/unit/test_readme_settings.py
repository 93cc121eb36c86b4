"""Every setting is documented in the README, and the README documents no setting that is gone."""

from __future__ import annotations

import re
from pathlib import Path

from hub.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_in_the_readme_table() -> None:
    documented = set(re.findall(r"^\| `(HUB_[A-Z_]+)`", README.read_text(), flags=re.M))
    expected = {f"HUB_{name.upper()}" for name in Settings.model_fields}
    assert documented == expected
