"""The README documents every setting the code reads."""

from __future__ import annotations

from pathlib import Path

from mend_core.settings import Settings

README = (Path(__file__).parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [f"MEND_{name.upper()}" for name in Settings.model_fields]
    assert [name for name in missing if name not in README] == []
