"""Gate replay on a release's page: a GET form that runs a gate (saved or edited) over the
recorded samples of a past period and shows when it would have acted; nothing is written."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.urls import reverse
from django.utils import timezone

from releasecontrol.models import AuditEvent, User
from rollouts.models import Gate, GateEvaluation, MetricSample
from tests.rollouts.pages import live_release

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def breach(release, *, minutes_ago: int, value: float) -> None:
    """error_rate at `value` every 10 s over the last `minutes_ago` minutes."""
    now = timezone.now()
    MetricSample.objects.bulk_create(
        MetricSample(
            environment=release.environment,
            release=release,
            metric="error_rate",
            value=value,
            time=now - dt.timedelta(seconds=10 * k),
            submitted_by=User.system(),
        )
        for k in range(minutes_ago * 6)
    )


def replay(client, release, **params):
    return client.get(reverse("rollouts:replay", args=[release.pk]), params, headers=HX)


def test_release_page__replay_form__offered_with_the_gates(client, developer):
    release = live_release()
    client.force_login(developer)

    html = client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()

    assert 'data-testid="replay"' in html
    assert ">errors</option>" in html and ">latency</option>" in html


def test_replay__saved_gate_over_a_breach__says_when_it_would_have_rolled_back(client, developer):
    release = live_release(samples=0, evaluations=0)
    breach(release, minutes_ago=130, value=9.0)
    errors = release.gates.get(name="errors")
    client.force_login(developer)
    evaluations, events = GateEvaluation.objects.count(), AuditEvent.objects.count()

    response = replay(client, release, gate=errors.pk)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="replay-result"')
    assert 'data-testid="replay-acted-at"' in html and "<strong>rollback</strong>" in html
    assert 'data-testid="replay-acts"' in html
    assert (GateEvaluation.objects.count(), AuditEvent.objects.count()) == (evaluations, events)


def test_replay__edited_threshold_above_the_breach__would_not_act_and_says_it_was_edited(
    client, developer
):
    release = live_release(samples=0, evaluations=0)
    breach(release, minutes_ago=130, value=9.0)
    errors = release.gates.get(name="errors")
    client.force_login(developer)

    html = replay(client, release, gate=errors.pk, threshold=10).content.decode()

    assert "Would not have acted in this period." in html
    assert "threshold 5.0 → 10.0" in html
    assert Gate.objects.get(pk=errors.pk).threshold == 5, "nothing saved"


def test_replay__chart__value_threshold_and_the_would_act_mark(client, developer):
    release = live_release(samples=0, evaluations=0)
    breach(release, minutes_ago=130, value=9.0)
    client.force_login(developer)

    html = replay(client, release, gate=release.gates.get(name="errors").pk).content.decode()

    start = html.index('<script id="replay-figures" type="application/json">')
    figure = json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])["replay"]
    assert [t["name"] for t in figure["data"]] == ["value", "threshold &gt; 5"]
    assert figure["layout"]["annotations"][0]["text"] == "would rollback"


def test_replay__failures_to_act_three__acts_later_than_one(client, developer):
    release = live_release(samples=0, evaluations=0)
    breach(release, minutes_ago=130, value=9.0)
    gate = release.gates.get(name="errors").pk
    client.force_login(developer)

    def acted_at(**edits) -> str:
        html = replay(client, release, gate=gate, **edits).content.decode()
        start = html.index('data-testid="replay-acted-at">') + len('data-testid="replay-acted-at">')
        return html[start : html.index("<", start)]

    assert acted_at(failures_to_act=3) > acted_at(failures_to_act=1)


def test_replay__full_page_without_htmx__the_page_with_form_and_result(client, developer):
    release = live_release()
    client.force_login(developer)

    response = client.get(
        reverse("rollouts:replay", args=[release.pk]), {"gate": release.gates.first().pk}
    )

    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" in html and 'data-testid="replay-summary"' in html


def test_replay__period_end_before_start__400_saying_so(client, developer):
    release = live_release()
    client.force_login(developer)

    response = replay(
        client,
        release,
        gate=release.gates.first().pk,
        start="2026-12-01T10:00",
        end="2026-12-01T09:00",
    )

    assert response.status_code == 400
    assert "must come after its start" in response.content.decode()


def test_replay__gate_of_another_release__400(client, developer):
    release, other = live_release(), live_release()
    client.force_login(developer)

    response = replay(client, release, gate=other.gates.first().pk)

    assert (
        response.status_code == 400 and 'data-testid="replay-errors"' in response.content.decode()
    )


def test_replay__outsider__403(client, outsider):
    release = live_release()
    client.force_login(outsider)

    assert replay(client, release, gate=release.gates.first().pk).status_code == 403


def test_replay__post__405(client, developer):
    release = live_release()
    client.force_login(developer)

    response = client.post(reverse("rollouts:replay", args=[release.pk]), {"gate": 1})

    assert response.status_code == 405


def test_replay__fixed_queries(client, developer, django_assert_max_num_queries):
    release = live_release(samples=0, evaluations=0)
    breach(release, minutes_ago=120, value=9.0)
    client.force_login(developer)

    with django_assert_max_num_queries(12):
        response = replay(client, release, gate=release.gates.get(name="errors").pk)

    assert response.status_code == 200


def test_replay__no_period_given__from_one_window_after_the_start_so_no_blind_no_data(
    client, developer
):
    release = live_release(minutes=30, samples=0, evaluations=0)
    breach(release, minutes_ago=30, value=1.0)
    client.force_login(developer)

    html = replay(client, release, gate=release.gates.get(name="errors").pk).content.decode()

    assert "Would not have acted in this period." in html
    assert "no_data" not in html.split('data-testid="replay-table"')[1]
