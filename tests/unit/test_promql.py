"""Prometheus checks in the pure core: the condition, what an answer means (no data, NaN,
several series, errors), the credentials, the query as sent, and what the planner does
with them before and after the switch. No server, no cluster."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pydantic
import pytest

from bluegreen.api.models import PrometheusCheck
from bluegreen.core import gates, promql
from bluegreen.core.gates import Tally, Verdict
from bluegreen.core.planner import plan

from builders import NOW, R2, T2, checked, key, preview_waiting, spec, verifying

Obj = dict[str, Any]

ERRORS = {
    "name": "errors",
    "prometheus": {
        "address": "http://prometheus:9090",
        "query": 'sum(rate(http_requests_total{app="{{app}}",color="{{color}}",'
        'revision="{{revision}}",namespace="{{namespace}}",code=~"5.."}[30s]))',
        "condition": "< 0.05",
        "successThreshold": 2,
        "failureThreshold": 2,
    },
}


def check(condition: str = "< 0.05", **fields: Any) -> PrometheusCheck:
    return PrometheusCheck(address="http://p:9090", query="up", condition=condition, **fields)


def vector(*series: tuple[Obj, str]) -> str:
    result = [{"metric": m, "value": [1764792000.0, v]} for m, v in series]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


def scalar(value: str) -> str:
    return json.dumps(
        {"status": "success", "data": {"resultType": "scalar", "result": [1764792000.0, value]}}
    )


# ------------------------------------------------------------------ the condition


@pytest.mark.parametrize(
    ("condition", "value", "holds"),
    [
        pytest.param("< 0.01", 0.005, True, id="below"),
        pytest.param("< 0.01", 0.01, False, id="not-below-at-the-bound"),
        pytest.param("<= 0.01", 0.01, True, id="at-most"),
        pytest.param("> 0", 0.0, False, id="not-above"),
        pytest.param(">=0.99", 0.99, True, id="no-space"),
        pytest.param("== 1", 1.0, True, id="equal"),
        pytest.param("!= 0", 0.0, False, id="not-different"),
        pytest.param(">= 0 and < 0.5", 0.25, True, id="in-range"),
        pytest.param(">= 0 and < 0.5", 0.5, False, id="range-upper-bound-excluded"),
        pytest.param(">= 0 and < 0.5", -0.1, False, id="below-range"),
        pytest.param("< 1e-3", 0.0005, True, id="exponent"),
        pytest.param("< +Inf", 1e300, True, id="infinity-bound"),
        pytest.param("< 0.01", math.inf, False, id="infinite-value"),
    ],
)
def test_conditions(condition: str, value: float, holds: bool) -> None:
    assert promql.holds(promql.parse_condition(condition), value) is holds


@pytest.mark.parametrize(
    "condition", ["", "0.01", "< ", "~ 1", "< 1 or > 2", "< 1 and", "< NaN", "< one"]
)
def test_the_spec_refuses_what_is_not_a_condition(condition: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="condition"):
        check(condition)


def test_the_spec_refuses_unknown_placeholders_and_odd_addresses() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"unknown placeholder \{\{pod\}\}"):
        PrometheusCheck(address="http://p:9090", query='up{pod="{{pod}}"}', condition="< 1")
    for address in ("p:9090", "ftp://p", "http://p:9090?x=1", "http://"):
        with pytest.raises(pydantic.ValidationError, match="address"):
            PrometheusCheck(address=address, query="up", condition="< 1")
    assert check(noData="Wait").noData == "Wait"
    assert (check().noData, check().onError) == ("Fail", "Fail")  # never a pass by default


# ------------------------------------------------------------------ an answer, judged


@pytest.mark.parametrize(
    ("body", "ok", "value", "text"),
    [
        pytest.param(vector(({}, "0.01")), True, "0.01", "0.01 < 0.05", id="one-series-passes"),
        pytest.param(vector(({}, "0.2")), False, "0.2", "0.2 is not < 0.05", id="one-fails"),
        pytest.param(scalar("0"), True, "0", "0 < 0.05", id="scalar"),
        pytest.param(
            vector(({"pod": "a"}, "0.01"), ({"pod": "b"}, "0.04")),
            True,
            "0.04",
            "all 2 series < 0.05 (0.01 to 0.04)",
            id="every-series-passes",
        ),
        pytest.param(
            vector(({"pod": "a"}, "0.01"), ({"pod": "b"}, "0.3"), ({"pod": "c"}, "0.02")),
            False,
            "0.3",
            '1 of 3 series not < 0.05: {pod="b"} 0.3',
            id="one-bad-series-fails-the-answer",
        ),
        pytest.param(
            vector(({"pod": "a"}, "NaN"), ({"pod": "b"}, "0.01")),
            True,
            "0.01",
            "0.01 < 0.05",
            id="nan-series-left-out",
        ),
        pytest.param(
            vector(({"__name__": "x", "pod": "a"}, "1"), ({"pod": "b"}, "2")),
            False,
            "1",
            '2 of 2 series not < 0.05: x{pod="a"} 1, {pod="b"} 2',
            id="series-named",
        ),
    ],
)
def test_answers(body: str, ok: bool, value: str, text: str) -> None:
    answer = promql.judge_answer(check(), 200, body)
    assert (answer.ok, answer.counted, answer.value, answer.text) == (ok, True, value, text)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        pytest.param(vector(), "the query returned no series", id="empty-vector"),
        pytest.param(vector(({}, "NaN")), "every value is NaN", id="only-nan"),
        pytest.param(scalar("NaN"), "every value is NaN", id="nan-scalar"),
    ],
)
def test_no_data_is_never_a_success(body: str, why: str) -> None:
    failing = promql.judge_answer(check(), 200, body)
    assert (failing.ok, failing.counted, failing.value) == (False, True, None)
    assert failing.text == f"no data: {why}"
    waiting = promql.judge_answer(check(noData="Wait"), 200, body)
    assert (waiting.ok, waiting.counted) == (False, False)
    assert waiting.text == f"no data: {why} (waiting)"


@pytest.mark.parametrize(
    ("status", "body", "text"),
    [
        pytest.param(
            400,
            json.dumps({"status": "error", "errorType": "bad_data", "error": "parse error"}),
            "Prometheus bad_data (HTTP 400): parse error",
            id="bad-query",
        ),
        pytest.param(
            503,
            json.dumps({"status": "error", "errorType": "timeout", "error": "query timed out"}),
            "Prometheus timeout (HTTP 503): query timed out",
            id="query-timeout",
        ),
        pytest.param(
            502,
            "<html>Bad Gateway</html>",
            "HTTP 502, not a Prometheus answer: <html>Bad",
            id="proxy",
        ),
        pytest.param(
            200,
            json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}),
            "the query returns a matrix, not a scalar or an instant vector",
            id="range-vector",
        ),
        pytest.param(
            200,
            json.dumps({"status": "success", "data": {"resultType": "vector", "result": [{}]}}),
            "the query answered a malformed vector",
            id="malformed",
        ),
        pytest.param(
            200,
            json.dumps({"status": "success", "data": {"resultType": "scalar", "result": [0, "x"]}}),
            "the query answered a malformed scalar",
            id="not-a-number",
        ),
    ],
)
def test_errors_fail_or_wait_as_the_spec_says_and_never_pass(
    status: int, body: str, text: str
) -> None:
    failing = promql.judge_answer(check(), status, body)
    assert (failing.ok, failing.counted) == (False, True)
    assert failing.text.startswith(text), failing.text
    waiting = promql.judge_answer(check(onError="Wait"), status, body)
    assert (waiting.ok, waiting.counted) == (False, False)
    assert promql.unanswered(check(), "refused") == Verdict(False, "refused")
    assert promql.unanswered(check(onError="Wait"), "x") == Verdict(False, "x (waiting)", False)


# ------------------------------------------------------------------ one run: record()


def test_an_answer_not_counted_keeps_the_streaks_and_shows() -> None:
    c = check(successThreshold=2, failureThreshold=2)
    ok = promql.judge_answer(c, 200, vector(({}, "0.01")))
    wait = promql.judge_answer(check(noData="Wait"), 200, vector())
    once = gates.fold(Tally(), ok, c, "preview")
    assert once == Tally("Running", 1, 0, "0.01 < 0.05", "0.01")
    held = gates.fold(once, wait, c, "preview")
    assert held == Tally("Running", 1, 0, "no data: the query returned no series (waiting)")
    assert gates.fold(held, ok, c, "preview").state == "Passed"
    bad = promql.judge_answer(c, 200, vector(({}, "0.3")))
    twice = gates.fold(gates.fold(Tally(), bad, c, "prod"), wait, c, "prod")
    assert (twice.failures, gates.fold(twice, bad, c, "prod").state) == (1, "Failed")


# ------------------------------------------------------------------ credentials


def test_credentials_from_the_secret() -> None:
    bearer = check(auth={"secretName": "prom"})
    assert promql.authorization(bearer, {"token": "abc\n"}) == "Bearer abc"
    basic = check(auth={"secretName": "prom", "type": "Basic"})
    expected = "Basic " + base64.b64encode(b"u:p").decode()
    assert promql.authorization(basic, {"username": "u", "password": "p"}) == expected
    with pytest.raises(ValueError, match="Secret prom not found"):
        promql.authorization(bearer, None)
    with pytest.raises(ValueError, match="Secret prom has no password"):
        promql.authorization(basic, {"username": "u"})


# ------------------------------------------------------------------ the planner


def test_the_preview_is_queried_about_its_own_pods() -> None:
    p = plan(checked(promote=True, checks=[ERRORS]), preview_waiting(), NOW)
    assert not p.switch.planned
    [probe] = p.probes
    assert probe.http is None and probe.query is not None
    assert probe.key == gates.RunKey("errors", "preview", R2, 0)
    assert probe.query.promql == (
        'sum(rate(http_requests_total{app="demo",color="green",'
        f'revision="{R2}",namespace="{probe.namespace}",code=~"5.."}}[30s]))'
    )
    assert probe.check.intervalSeconds == 10


def test_a_failed_query_on_the_preview_blocks_the_switch_and_shows_the_value() -> None:
    tallies = {key(check="errors"): Tally("Failed", 0, 2, "0.2 is not < 0.05", "0.2")}
    obs = preview_waiting()
    p = plan(checked(promote=True, checks=[ERRORS]), replace(obs, check_tallies=tallies), NOW)
    assert not p.switch.planned
    assert (p.status.phase, p.status.reason) == ("Degraded", "CheckFailed")
    [status] = p.status.checks
    assert (status.state, status.value, status.message) == ("Failed", "0.2", "0.2 is not < 0.05")


def test_after_the_switch_the_new_active_color_is_queried_and_a_failure_switches_back() -> None:
    a = checked(promote=True, checks=[ERRORS])
    running = plan(a, verifying(NOW - timedelta(seconds=5)), NOW)
    [probe] = running.probes
    assert probe.key == key(stage="prod", check="errors") and probe.query is not None
    assert 'color="green"' in probe.query.promql and f'revision="{R2}"' in probe.query.promql
    tallies = {key(stage="prod", check="errors"): Tally("Failed", 0, 2, "0.2 is not < 0.05", "0.2")}
    back = plan(a, verifying(NOW - timedelta(seconds=5), check_tallies=tallies), NOW)
    assert back.switch.planned and back.probes == ()
    assert (back.status.phase, back.status.reason) == ("Degraded", "RolledBack")
    assert "check errors failed against prod: 0.2 is not < 0.05" in back.status.message


def test_no_service_no_query() -> None:
    s = spec(T2, checks=[ERRORS])
    gate = gates.evaluate(s, "preview", R2, started=True, tallies={}, jobs={}, recorded=None)
    assert gates.probes(s, gate, "shop", "demo-preview", None) == ()


def test_a_check_is_a_prometheus_check_alone() -> None:
    prom = ERRORS["prometheus"]
    assert spec(T2, checks=[ERRORS]).checks[0].prometheus is not None
    with pytest.raises(pydantic.ValidationError, match="exactly one of http, job and prometheus"):
        spec(T2, checks=[{"name": "x", "http": {}, "prometheus": prom}])
