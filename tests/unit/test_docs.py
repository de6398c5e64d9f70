"""The API reference in the README is generated from the models and must not go stale."""

from __future__ import annotations

from pathlib import Path

from bluegreen.api import models
from bluegreen.tools import docgen

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_api_reference_is_generated_from_the_models() -> None:
    text = README.read_text()
    assert docgen.rewrite(text) == text, "the API reference is stale: run `make docs`"


def test_every_spec_field_is_documented() -> None:
    reference = docgen.reference()
    for field, info in models.BlueGreenAppSpec.model_fields.items():
        assert f"`spec.{field}`" in reference
        assert info.description, f"spec.{field} has no description"
