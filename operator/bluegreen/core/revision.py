"""Revisions: a stable hash of the user's pod template."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def revision_of(template: dict[str, Any]) -> str:
    """Ten hex digits of the SHA-256 of the template's canonical JSON.

    Key order and whitespace do not matter, so re-applying the same YAML (a rollback by
    ``git revert``) gives the same revision and finds the color that still holds it.
    """
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:10]
