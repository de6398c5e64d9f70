"""The spec fuzzed against the pure core: every spec either works or is refused with a
clear answer, never a crash.

Two layers, as in the cluster: specs in the shape the CRD schema admits (free-form where it
preserves unknown fields, bounded where it bounds) must plan without an exception, against
every state of the lifecycle; anything at all (wrong types, huge or hostile values, as an
object stored under an older CRD could hold) must either validate or raise a pydantic
ValidationError, which the reconciler reports as InvalidSpec.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bluegreen.api import models
from bluegreen.api.models import BlueGreenAppSpec, BlueGreenAppStatus, CheckStatus
from bluegreen.core import planner, status
from bluegreen.core.planner import App, Observed

from builders import (
    NOW,
    OWNER,
    T1,
    after_switch,
    preview_waiting,
    steady_blue,
)

Obj = dict[str, Any]

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Text as users and attackers write it: unicode of every category, control characters,
# and now and then something very long.
text = st.one_of(
    st.text(max_size=40),
    st.integers(2_000, 200_000).map(lambda n: "\u00e9" * n),  # cheap to draw, large to copy
)
keys = st.text(min_size=1, max_size=30)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64),
    st.floats(allow_nan=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=30,
)
string_maps = st.dictionaries(keys, text, max_size=20)


@st.composite
def admitted_templates(draw: st.DrawFn) -> Obj:
    """Pod templates the CRD schema admits: free-form but for the fields it types."""
    containers = draw(
        st.lists(
            st.builds(
                lambda name, extra: {**extra, "name": name},
                text,
                st.dictionaries(keys, json_values, max_size=4),
            ),
            min_size=1,
            max_size=4,
        )
    )
    metadata = {
        **draw(st.dictionaries(keys, json_values, max_size=3)),
        "labels": draw(string_maps),
        "annotations": draw(string_maps),
    }
    extra_spec = draw(st.dictionaries(keys, json_values, max_size=4))
    template = {
        **draw(st.dictionaries(keys, json_values, max_size=3)),
        "metadata": metadata,
        "spec": {**extra_spec, "containers": containers},
    }
    return template


ports = st.builds(
    lambda port, name, target: {"port": port, "name": name, "targetPort": target},
    st.integers(1, 65535),
    st.text(min_size=1, max_size=15),
    st.one_of(st.integers(1, 65535), st.text(min_size=1, max_size=15)),
)


http_checks = st.builds(
    lambda path, codes, body, numbers: {
        "path": "/" + path,
        "expectStatus": codes,
        **({"bodyContains": body} if body is not None else {}),
        **dict(
            zip(
                ("timeoutSeconds", "intervalSeconds", "successThreshold", "failureThreshold"),
                numbers,
                strict=True,
            )
        ),
    },
    st.text(max_size=20),
    st.lists(st.integers(100, 599), min_size=1, max_size=3),
    st.one_of(st.none(), text),
    st.tuples(st.integers(1, 60), st.integers(1, 300), st.integers(1, 100), st.integers(1, 100)),
)
checks = st.lists(
    st.one_of(
        st.builds(
            lambda name, http: {"name": name, "http": http},
            st.from_regex(r"[a-z]{1,12}", fullmatch=True),
            http_checks,
        ),
        st.builds(
            lambda name, template: {"name": name, "job": {"template": template}},
            st.from_regex(r"[a-z]{1,12}", fullmatch=True),
            admitted_templates(),
        ),
    ),
    max_size=3,
    unique_by=lambda c: c["name"],
)


@st.composite
def admitted_specs(draw: st.DrawFn) -> Obj:
    replicas = draw(st.integers(0, models.MAX_REPLICAS))
    spec: Obj = {
        "replicas": replicas,
        "template": draw(admitted_templates()),
        "service": {
            "ports": draw(st.lists(ports, min_size=1, max_size=3, unique_by=lambda p: p["name"])),
            "type": draw(st.sampled_from(["ClusterIP", "NodePort", "LoadBalancer"])),
        },
        "promote": draw(st.booleans()),
        "scaleDownDelaySeconds": draw(st.integers(0, models.MAX_SCALE_DOWN_DELAY_SECONDS)),
    }
    if draw(st.booleans()):
        spec["previewReplicas"] = draw(st.integers(0, models.MAX_REPLICAS))
    if draw(st.booleans()):
        spec["checks"] = draw(checks)
        spec["retryChecks"] = draw(st.integers(0, 2**63))
    if draw(st.booleans()):
        spec["ingress"] = {
            "host": draw(st.text(min_size=1, max_size=50)),
            "previewHost": draw(st.text(min_size=1, max_size=50)),
            "annotations": draw(string_maps),
            "path": "/" + draw(st.text(max_size=20)),
        }
    return spec


def without_prod(observed: Observed) -> Observed:
    services = {k: v for k, v in observed.services.items() if k != "prod"}
    return Observed(observed.deployments, services, {}, (), observed.replicasets)


STATES = {
    "nothing yet": lambda: Observed(),
    "steady": steady_blue,
    "preview waiting": preview_waiting,
    "just switched": lambda: after_switch(NOW - timedelta(seconds=5)),
    "long after a switch": lambda: after_switch(NOW - timedelta(days=40)),
    "prod Service deleted after a switch": lambda: without_prod(after_switch(NOW)),
}

recorded_statuses = st.one_of(
    st.none(),
    st.builds(
        BlueGreenAppStatus,
        activeColor=st.sampled_from(["blue", "green", None]),
        activeRevision=st.one_of(st.none(), st.text(max_size=12)),
        previousRevision=st.one_of(st.none(), st.text(max_size=12)),
        rolledBackRevision=st.one_of(st.none(), st.text(max_size=12)),
        rolledBackRetry=st.one_of(st.none(), st.integers(-1, 2**63)),
        checks=st.lists(
            st.builds(
                CheckStatus,
                name=st.text(max_size=12),
                stage=st.sampled_from(["preview", "prod"]),
                revision=st.text(max_size=12),
                retry=st.integers(-1, 2**63),
                state=st.sampled_from(["Pending", "Running", "Passed", "Failed"]),
                successes=st.integers(0, 2**31),
                failures=st.integers(0, 2**31),
                message=text,
            ),
            max_size=3,
        ),
        lastSwitchTime=st.one_of(
            st.none(),
            st.text(max_size=30),
            st.sampled_from(
                ["9999-12-31T23:59:59Z", "2026-11-26T11:00:00", "0001-01-01T00:00:00Z"]
            ),
        ),
    ),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
)


@FUZZ
@given(
    raw=admitted_specs(),
    state=st.sampled_from(sorted(STATES)),
    recorded=recorded_statuses,
    now=st.one_of(st.just(NOW), instants),
)
def test_every_admitted_spec_plans_without_an_exception(
    raw: Obj, state: str, recorded: BlueGreenAppStatus | None, now: datetime
) -> None:
    try:
        spec = BlueGreenAppSpec.model_validate(raw)
    except pydantic.ValidationError:
        return  # refused with a clear message: InvalidSpec (the CEL rules are not here)
    app = App(owner=OWNER, generation=3, spec=spec, recorded=recorded)
    the_plan = planner.plan(app, STATES[state](), now)
    for action in the_plan.actions:
        json.dumps(action.body)  # what is written is JSON
    built = status.after_pass(
        the_plan, the_plan.actions, [], generation=3, previous=BlueGreenAppStatus(), now=now
    )
    json.dumps(status.as_patch(built))


@FUZZ
@given(raw=st.dictionaries(keys, json_values, max_size=8), spec_shaped=admitted_specs())
def test_any_json_at_all_validates_or_is_refused_cleanly(raw: Obj, spec_shaped: Obj) -> None:
    for candidate in (raw, {**spec_shaped, **raw}):
        try:
            BlueGreenAppSpec.model_validate(candidate)
        except pydantic.ValidationError as error:
            assert error.errors()  # says what is wrong


@pytest.mark.parametrize(
    "field, value",
    [
        pytest.param("template", {**T1, "metadata": {"labels": "app=web"}}, id="labels string"),
        pytest.param(
            "template", {**T1, "metadata": {"labels": {"a": {"b": "c"}}}}, id="labels nested"
        ),
        pytest.param("template", {**T1, "metadata": ["x"]}, id="metadata list"),
        pytest.param("template", {"spec": {"containers": [{"image": "x"}]}}, id="no name"),
        pytest.param("template", {"spec": {"containers": []}}, id="no containers"),
        pytest.param("template", {"spec": "x"}, id="spec string"),
        pytest.param("replicas", 2**31, id="replicas over int32"),
        pytest.param("previewReplicas", 2**31, id="previewReplicas over int32"),
        pytest.param("scaleDownDelaySeconds", 300_000_000_000, id="delay overflowing"),
    ],
)
def test_known_bad_values_are_refused_by_the_model(field: str, value: Any) -> None:
    raw = {"template": T1, "service": {"ports": [{"port": 80}]}, field: value}
    with pytest.raises(pydantic.ValidationError):
        BlueGreenAppSpec.model_validate(raw)


def test_depth_is_measured_without_recursion() -> None:
    nested: Any = 1
    for _ in range(200_000):
        nested = [nested]
    assert models.nesting_depth(nested, limit=64) == 65  # stops counting past the limit
    assert models.nesting_depth({"a": [1, {"b": 2}]}, limit=64) == 3
