"""The two shapes every layer passes around, defined once."""

from __future__ import annotations

from typing import Any

# A Kubernetes object as the API server sends it (and the store holds it): a plain dict.
Obj = dict[str, Any]
# An app (or any namespaced object) by (namespace, name).
Key = tuple[str, str]
