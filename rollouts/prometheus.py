"""Prometheus as a gate source: one PromQL expression through the HTTP API's instant query
(`PROMETHEUS_URL/api/v1/query`), which must answer exactly one series with a finite value;
for gate replay, its history through one range query (`/api/v1/query_range`).

Nothing here raises: every failure (not configured, refused, timeout, HTTP error, not JSON,
a PromQL error, no series or several, NaN) comes back as a sentence saying what happened,
which the gate records as an `error` outcome. Values from Prometheus count as trusted
evidence in production: Prometheus is not the release's requester.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

MAX_BODY = 1_000_000  # bytes read from an answer
MAX_SHOWN = 200  # characters of an answer quoted back in an error


@dataclass(frozen=True)
class PrometheusAnswer:
    value: float | None = None
    error: str = ""  # empty when `value` is the answer


def _labels(series: dict) -> str:
    metric = series.get("metric") or {}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()))
    return "{" + inner + "}"


def query_value(expression: str, *, at: datetime) -> PrometheusAnswer:
    """The expression's single value at `at`, or why there is none."""
    answered = _get("query", {"query": expression, "time": f"{at.timestamp():.3f}"})
    if isinstance(answered, PrometheusAnswer):
        return answered
    data = _data(*answered)
    if isinstance(data, PrometheusAnswer):
        return data
    kind, series = data.get("resultType"), data.get("result")
    if kind == "scalar":
        raw = series[1] if isinstance(series, list) and len(series) == 2 else None
    elif kind == "vector" and isinstance(series, list):
        if len(series) != 1:
            return PrometheusAnswer(error=_not_one_series(series))
        raw = (series[0].get("value") or [None, None])[1]
    else:
        return PrometheusAnswer(
            error=f"the PromQL must return one instant value; Prometheus returned a {kind}"
        )
    return _number(raw)


def query_range_values(
    expression: str, *, start: datetime, step_seconds: int, count: int
) -> list[PrometheusAnswer]:
    """The expression's value at each of `count` times `step_seconds` apart from `start`
    (one range query: the history a replay evaluates), or, per time, why there is none."""
    end = start.timestamp() + step_seconds * (count - 1)
    answered = _get(
        "query_range",
        {
            "query": expression,
            "start": f"{start.timestamp():.3f}",
            "end": f"{end:.3f}",
            "step": str(step_seconds),
        },
    )
    if isinstance(answered, PrometheusAnswer):
        return [answered] * count
    data = _data(*answered)
    if isinstance(data, PrometheusAnswer):
        return [data] * count
    kind, series = data.get("resultType"), data.get("result")
    if kind != "matrix" or not isinstance(series, list):
        return [PrometheusAnswer(error=f"Prometheus answered a {kind} to a range query")] * count
    if len(series) > 1:
        return [PrometheusAnswer(error=_not_one_series(series))] * count
    points = (series[0].get("values") or []) if series else []
    values = {}  # seconds after start -> the value's text
    for point in points if isinstance(points, list) else []:
        if isinstance(point, list) and len(point) == 2 and isinstance(point[0], int | float):
            values[round(point[0] - start.timestamp())] = point[1]
    missing = PrometheusAnswer(
        error="the PromQL must return exactly one series; Prometheus returned no series"
    )
    return [
        _number(values[k * step_seconds]) if k * step_seconds in values else missing
        for k in range(count)
    ]


def _get(path: str, parameters: dict[str, str]) -> tuple[int, bytes] | PrometheusAnswer:
    """(HTTP status, body) of one GET of the HTTP API, or why there is none."""
    base = settings.PROMETHEUS_URL.rstrip("/")
    if not base:
        return PrometheusAnswer(error="PROMETHEUS_URL is not set, so the PromQL cannot run")
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(parameters)}"
    if not url.startswith(("http://", "https://")):
        return PrometheusAnswer(error=f"PROMETHEUS_URL {base!r} is not an http(s) URL")
    timeout = settings.PROMETHEUS_TIMEOUT
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        # Prometheus answers 400/422 with a JSON error for bad PromQL: show its reason.
        return exc.code, exc.read(MAX_BODY)
    except TimeoutError:
        return PrometheusAnswer(error=f"Prometheus did not answer within {timeout:g} s")
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            return PrometheusAnswer(error=f"Prometheus did not answer within {timeout:g} s")
        return PrometheusAnswer(error=f"Prometheus at {base} could not be reached: {reason}")
    except OSError as exc:
        return PrometheusAnswer(error=f"Prometheus at {base} could not be reached: {exc}")


def _data(status: int, body: bytes) -> dict | PrometheusAnswer:
    """The `data` of a successful answer, or why the answer is not one."""
    text = body.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return PrometheusAnswer(
            error=f"Prometheus answered HTTP {status} with something other than JSON: "
            f"{text[:MAX_SHOWN]!r}"
        )
    if not isinstance(data, dict):
        return PrometheusAnswer(error=f"Prometheus answered HTTP {status} with unexpected JSON")
    if data.get("status") != "success":
        return PrometheusAnswer(
            error=f"Prometheus refused the query (HTTP {status}, {data.get('errorType', '?')}): "
            f"{str(data.get('error', ''))[:MAX_SHOWN]}"
        )
    result = data.get("data")
    return result if isinstance(result, dict) else {}


def _not_one_series(series: list) -> str:
    shown = ", ".join(_labels(s) for s in series[:5]) + (", ..." if len(series) > 5 else "")
    what = "no series" if not series else f"{len(series)} series ({shown})"
    return f"the PromQL must return exactly one series; Prometheus returned {what}"


def _number(raw: object) -> PrometheusAnswer:
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return PrometheusAnswer(error=f"Prometheus returned a value that is not a number: {raw!r}")
    if not math.isfinite(value):
        return PrometheusAnswer(
            error=f"Prometheus returned {raw} (no finite value: a division by zero or no "
            f"increase in the range?)"
        )
    return PrometheusAnswer(value=value)
