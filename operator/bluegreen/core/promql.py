"""Prometheus checks, judged: the query as sent, and what its answer means for the check.

Pure: :func:`bluegreen.core.gates.probes` renders the query (its placeholders filled), the
runner (:mod:`bluegreen.runtime.checker`) sends it and hands the answer's status and body
here; :func:`judge_answer` turns them into one :class:`~bluegreen.core.gates.Verdict`.

What counts, and why:
- Every value must satisfy the condition: with several series (one per pod, say), one bad
  pod is a failure, as an HTTP check that reaches it would say. A query that should judge
  the whole color aggregates first (``sum``, ``max``, ``histogram_quantile``).
- NaN is not a value: ``rate(errors) / rate(requests)`` over no requests is NaN, and "no
  requests" says nothing of the error rate. NaN series are left out; with nothing left,
  the answer is *no data*.
- No data and errors are never a success: ``noData`` and ``onError`` say whether they count
  as a failure (``Fail``) or as nothing (``Wait``: the streaks stand, the check goes on).
- A range vector (matrix) or a string has no one value to compare: an error of the query.
"""

from __future__ import annotations

import base64
import json
import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bluegreen.api.models import PrometheusCheck
from bluegreen.core.gates import Verdict

Comparison = tuple[str, float]

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_ONE = re.compile(r"\s*(<=|>=|==|!=|<|>)\s*(\S+)\s*")
# Series shown by name in a message at most; the rest are counted.
MAX_SERIES_SHOWN = 3


def parse_condition(text: str) -> tuple[Comparison, ...]:
    """``">= 0 and < 0.5"`` -> ``((">=", 0.0), ("<", 0.5))``. ValueError on anything else
    (the models' pattern refuses it first)."""
    out = []
    for part in re.split(r"\s+and\s+", text.strip()):
        match = _ONE.fullmatch(part)
        if match is None:
            raise ValueError(f"not a comparison: {part!r}")
        out.append((match.group(1), float(match.group(2))))
    return tuple(out)


def holds(condition: Sequence[Comparison], value: float) -> bool:
    """Whether ``value`` satisfies every comparison (NaN satisfies none but ``!=``: the
    caller leaves NaN out before asking)."""
    return all(_OPERATORS[op](value, bound) for op, bound in condition)


@dataclass(frozen=True)
class Sample:
    """One value of the answer: its series' labels (none for a scalar) and the value as
    Prometheus wrote it."""

    labels: Mapping[str, str]
    raw: str

    @property
    def number(self) -> float:
        return float(self.raw)

    def describe(self) -> str:
        name = self.labels.get("__name__", "")
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(self.labels.items()) if k != "__name__")
        return f"{name}{{{inner}}}" if inner or name else "the value"


def authorization(check: PrometheusCheck, secret: Mapping[str, str] | None) -> str:
    """The ``Authorization`` header from the Secret's (decoded) data. ValueError naming
    what is missing: the caller reports it as the query's error."""
    assert check.auth is not None
    name = check.auth.secretName
    if secret is None:
        raise ValueError(f"Secret {name} not found")
    wanted = ("token",) if check.auth.type == "Bearer" else ("username", "password")
    missing = [k for k in wanted if not secret.get(k)]
    if missing:
        raise ValueError(f"Secret {name} has no {' or '.join(missing)}")
    if check.auth.type == "Bearer":
        return f"Bearer {secret['token'].strip()}"
    pair = f"{secret['username']}:{secret['password']}".encode()
    return f"Basic {base64.b64encode(pair).decode()}"


def unanswered(check: PrometheusCheck, text: str) -> Verdict:
    """A query with no usable answer (unreachable, timeout, an error): as ``onError`` says."""
    return _inconclusive(check.onError, text)


def judge_answer(check: PrometheusCheck, status: int, body: str) -> Verdict:
    """One answer of ``/api/v1/query`` (its HTTP status and body), judged."""
    try:
        doc = json.loads(body)
    except ValueError:
        return unanswered(check, f"HTTP {status}, not a Prometheus answer: {_snippet(body)}")
    if not isinstance(doc, dict):
        return unanswered(check, f"HTTP {status}, not a Prometheus answer: {_snippet(body)}")
    if status != 200 or doc.get("status") != "success":
        kind = doc.get("errorType") or "error"
        return unanswered(check, f"Prometheus {kind} (HTTP {status}): {doc.get('error', '')}")
    try:
        samples = samples_of(doc.get("data"))
    except ValueError as err:
        return unanswered(check, f"the query {err}")
    return judge_samples(check, samples)


def samples_of(data: Any) -> list[Sample]:
    """The values of a query's ``data``: a scalar's one, or a vector's, one per series.
    ValueError for another result type or a malformed one."""
    if not isinstance(data, dict):
        raise ValueError("answered without data")
    kind, result = data.get("resultType"), data.get("result")
    try:
        if kind == "scalar":
            return [Sample({}, _raw(result))]
        if kind == "vector" and isinstance(result, list):
            return [Sample(dict(s.get("metric") or {}), _raw(s.get("value"))) for s in result]
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"answered a malformed {kind}") from None
    if kind in ("matrix", "string"):
        raise ValueError(f"returns a {kind}, not a scalar or an instant vector")
    raise ValueError(f"answered an unknown result type {kind!r}")


def _raw(pair: Any) -> str:
    """The value of a ``[timestamp, "value"]`` pair, checked to be a number."""
    raw = str(pair[1])
    float(raw)
    return raw


def judge_samples(check: PrometheusCheck, samples: Sequence[Sample]) -> Verdict:
    """Every non-NaN value against the condition; none at all is no data."""
    condition = parse_condition(check.condition)
    values = [s for s in samples if not math.isnan(s.number)]
    if not values:
        why = "every value is NaN" if samples else "the query returned no series"
        return _inconclusive(check.noData, f"no data: {why}")
    bad = [s for s in values if not holds(condition, s.number)]
    if bad:
        first = bad[0]
        text = f"{first.raw} is not {check.condition.strip()}"
        if len(values) > 1:
            shown = ", ".join(f"{s.describe()} {s.raw}" for s in bad[:MAX_SERIES_SHOWN])
            more = len(bad) - MAX_SERIES_SHOWN
            shown += f" and {more} more" if more > 0 else ""
            text = f"{len(bad)} of {len(values)} series not {check.condition.strip()}: {shown}"
        return Verdict(False, text, value=first.raw)
    top = max(values, key=lambda s: s.number)
    if len(values) == 1:
        return Verdict(True, f"{top.raw} {check.condition.strip()}", value=top.raw)
    low = min(values, key=lambda s: s.number)
    text = f"all {len(values)} series {check.condition.strip()} ({low.raw} to {top.raw})"
    return Verdict(True, text, value=top.raw)


def _inconclusive(policy: str, text: str) -> Verdict:
    if policy == "Wait":
        return Verdict(False, f"{text} (waiting)", counted=False)
    return Verdict(False, text)


def _snippet(body: str) -> str:
    return " ".join(body.split())[:120] or "(empty)"
