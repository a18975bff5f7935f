"""The release pages: who may read them, what they show, what they cost in queries."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from tests.rollouts.pages import live_release

pytestmark = pytest.mark.django_db

LIST_MAX_QUERIES = 12
DETAIL_MAX_QUERIES = 30  # of which 2 per policy question the controls ask (fixed in number)
POLL_UNCHANGED_MAX_QUERIES = 6


def figures_of(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="release-figures" type="application/json">')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


# --- The list -------------------------------------------------------------------------------


def test_release_list__viewer__shows_status_stage_and_gate_dots(client, developer):
    release = live_release()
    client.force_login(developer)

    response = client.get(reverse("rollouts:list"))

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-testid="release-{release.pk}"' in html
    assert "In progress" in html
    assert "2 of 4: canary (percentage 5%)" in html
    assert 'data-outcome="success"' in html and 'data-outcome="failure"' in html


def test_release_list__outsider__403(client, outsider):
    live_release()
    client.force_login(outsider)

    assert client.get(reverse("rollouts:list")).status_code == 403


def test_release_list__anonymous__sent_to_sign_in(client):
    response = client.get(reverse("rollouts:list"))

    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_release_list__production_row__red(client, release_manager):
    release = live_release(environment="production")
    client.force_login(release_manager)

    html = client.get(reverse("rollouts:list")).content.decode()

    row = html[html.index(f'data-testid="release-{release.pk}"') - 80 :]
    assert 'class="tier-production' in row[:200]
    assert "prod-tag" in row


def test_release_list__filters__only_matching_rows(client, release_manager):
    staging = live_release(environment="staging")
    production = live_release(environment="production", status="paused")
    client.force_login(release_manager)

    by_env = client.get(reverse("rollouts:list"), {"environment": "production"}).content.decode()
    by_status = client.get(reverse("rollouts:list"), {"status": "in_progress"}).content.decode()

    def row(release):
        return f'data-testid="release-{release.pk}"'

    assert row(production) in by_env and row(staging) not in by_env
    assert row(staging) in by_status and row(production) not in by_status


def test_release_list__unknown_filter__400_saying_so(client, release_manager):
    client.force_login(release_manager)

    response = client.get(reverse("rollouts:list"), {"status": "burning"})

    assert response.status_code == 400
    assert "No status &#x27;burning&#x27;" in response.content.decode()


def test_release_list__partial__only_the_table(client, developer):
    live_release()
    client.force_login(developer)

    response = client.get(reverse("rollouts:list"), headers={"HX-Request": "true"})

    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="releases"') and "<html" not in html


def test_release_list__many_releases__fixed_queries(
    client, release_manager, django_assert_max_num_queries
):
    for _ in range(3):
        live_release(evaluations=2, samples=2)
    client.force_login(release_manager)
    client.get(reverse("rollouts:list"))  # process-wide caches (content types) warm, as in use
    with django_assert_max_num_queries(LIST_MAX_QUERIES) as few:
        client.get(reverse("rollouts:list"))
    for _ in range(7):
        live_release(evaluations=2, samples=2)

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("rollouts:list"))

    assert response.content.decode().count('data-testid="release-link-') == 10


# --- A release's page ----------------------------------------------------------------------


def test_release_detail__viewer__header_timeline_and_evaluations(client, developer):
    release = live_release()
    client.force_login(developer)

    response = client.get(reverse("rollouts:detail", args=[release.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-testid="release-status">In progress' in html
    assert "2 of 4: canary (percentage 5%)" in html
    assert release.requested_by.username in html
    assert 'data-testid="stage-1" data-state="current"' in html
    assert 'data-testid="stage-0" data-state="done"' in html
    assert 'data-testid="stage-2" data-state="planned"' in html
    assert html.count('data-testid="evaluation-') == 20
    assert 'hx-trigger="every 5s"' in html, "a live release refreshes itself"


def test_release_detail__charts__a_metric_chart_per_gate_metric_with_threshold_and_marks(
    client, developer
):
    release = live_release()
    client.force_login(developer)

    figures = figures_of(client.get(reverse("rollouts:detail", args=[release.pk])))

    assert {f.get("metric") for k, f in figures.items() if k.startswith("metric-")} == {
        "error_rate",
        "latency_p95",
    }
    errors = next(f for f in figures.values() if f.get("metric") == "error_rate")
    names = [trace["name"] for trace in errors["data"]]
    assert "canary samples" in names
    assert "errors threshold: &gt; 5" in names
    threshold = next(t for t in errors["data"] if t["name"] == "errors threshold: &gt; 5")
    assert set(threshold["y"]) == {5}
    marks = [a["text"] for a in errors["layout"]["annotations"]]
    assert "advanced to canary (automatic)" in marks
    traffic = figures["traffic"]["data"][0]
    assert traffic["y"][:2] == [0, 5] and traffic["line"]["shape"] == "hv"


def test_release_detail__baseline_gate__control_line_and_ratio_threshold(client, developer):
    release = live_release(baseline=True)
    client.force_login(developer)

    figures = figures_of(client.get(reverse("rollouts:detail", args=[release.pk])))

    latency = next(f for f in figures.values() if f.get("metric") == "latency_p95")
    by_name = {trace["name"]: trace for trace in latency["data"]}
    assert "control samples" in by_name and "latency: control" in by_name
    assert set(by_name["latency threshold: 1.5x control"]["y"]) == {600.0}


def test_release_detail__outsider__403(client, outsider):
    release = live_release()
    client.force_login(outsider)

    assert client.get(reverse("rollouts:detail", args=[release.pk])).status_code == 403
    evaluations = reverse("rollouts:evaluations", args=[release.pk])
    assert client.get(evaluations, headers={"HX-Request": "true"}).status_code == 403


def test_release_detail__missing__404(client, developer):
    client.force_login(developer)

    assert client.get(reverse("rollouts:detail", args=[999999])).status_code == 404


def test_release_detail__production__red_banner_and_page_class(client, release_manager):
    release = live_release(environment="production")
    client.force_login(release_manager)

    html = client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()

    assert 'class="tier-production-page"' in html
    assert 'data-testid="production-banner"' in html
    assert 'class="release tier-production' in html


def test_release_detail__paused__says_why(client, developer):
    release = live_release(status="paused")
    client.force_login(developer)

    html = client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()

    assert 'data-testid="paused-reason">errors failing' in html


def test_release_detail__ended__does_not_poll(client, developer):
    release = live_release(status="rolled_back")
    client.force_login(developer)

    html = client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()

    assert 'data-live="false"' in html and "every 5s" not in html


def test_release_detail__poll_with_nothing_new__204(client, developer):
    release = live_release()
    client.force_login(developer)
    first = client.get(
        reverse("rollouts:detail", args=[release.pk]), headers={"HX-Request": "true"}
    )
    known = first.content.decode().split("?known=")[1].split('"')[0]

    again = client.get(
        reverse("rollouts:detail", args=[release.pk]),
        {"known": known},
        headers={"HX-Request": "true"},
    )

    assert first.status_code == 200 and again.status_code == 204


def test_release_detail__poll_after_a_new_evaluation__the_live_part(client, developer):
    from tests.rollouts.factories import GateEvaluationFactory

    release = live_release()
    client.force_login(developer)
    first = client.get(
        reverse("rollouts:detail", args=[release.pk]), headers={"HX-Request": "true"}
    )
    known = first.content.decode().split("?known=")[1].split('"')[0]
    GateEvaluationFactory(gate=release.gates.get(name="errors"), outcome="failure", value=9.0)

    again = client.get(
        reverse("rollouts:detail", args=[release.pk]),
        {"known": known},
        headers={"HX-Request": "true"},
    )

    assert again.status_code == 200
    html = again.content.decode()
    assert html.lstrip().startswith('<div id="release-live"')
    assert 'data-testid="gate-errors" data-outcome="failure"' in html


def test_release_detail__fixed_queries(client, developer, django_assert_max_num_queries):
    small = live_release(evaluations=2, samples=4)
    big = live_release(evaluations=60, samples=600, baseline=True)
    client.force_login(developer)
    with django_assert_max_num_queries(DETAIL_MAX_QUERIES) as few:
        client.get(reverse("rollouts:detail", args=[small.pk]))

    with django_assert_max_num_queries(len(few.captured_queries)):
        response = client.get(reverse("rollouts:detail", args=[big.pk]))

    assert response.status_code == 200


def test_release_detail__poll_unchanged__few_queries(
    client, developer, django_assert_max_num_queries
):
    release = live_release()
    client.force_login(developer)
    first = client.get(
        reverse("rollouts:detail", args=[release.pk]), headers={"HX-Request": "true"}
    )
    known = first.content.decode().split("?known=")[1].split('"')[0]

    with django_assert_max_num_queries(POLL_UNCHANGED_MAX_QUERIES):
        response = client.get(
            reverse("rollouts:detail", args=[release.pk]),
            {"known": known},
            headers={"HX-Request": "true"},
        )

    assert response.status_code == 204


def test_release_evaluations__page_two__older_rows_no_poll(client, developer):
    release = live_release(evaluations=20)
    client.force_login(developer)

    response = client.get(
        reverse("rollouts:evaluations", args=[release.pk]),
        {"page": 2},
        headers={"HX-Request": "true"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="evaluations"')
    assert html.count('data-testid="evaluation-') == 15
    assert "every 5s" not in html, "an older page stays where it is"


def test_release_evaluations__plain_link__whole_page(client, developer):
    release = live_release(evaluations=20)
    client.force_login(developer)

    response = client.get(reverse("rollouts:evaluations", args=[release.pk]), {"page": 2})

    assert response.status_code == 200 and "<html" in response.content.decode()


# --- The dashboard -------------------------------------------------------------------------


def test_dashboard__live_releases__listed_per_environment_with_gate_dots(client, developer):
    staging = live_release(environment="staging", name="checkout-v2")
    ended = live_release(environment="staging", status="completed", name="old-one")
    client.force_login(developer)

    html = client.get("/").content.decode()

    section = html[html.index('data-testid="dash-releases-staging"') :]
    section = section[: section.index("</dd>")]
    assert "checkout-v2" in section and f"/releases/{staging.pk}/" in section
    assert 'data-outcome="failure"' in section
    assert ended.name not in section, "only live releases"
    production = html[html.index('data-testid="dash-releases-production"') :]
    assert "none" in production[: production.index("</dd>")]


def test_dashboard__many_live_releases__same_number_of_queries(
    client, developer, django_assert_max_num_queries
):
    live_release(evaluations=1, samples=1)
    client.force_login(developer)
    client.get("/")
    with django_assert_max_num_queries(15) as few:
        client.get("/")
    for environment in ("development", "staging", "production", "staging"):
        live_release(environment=environment, evaluations=1, samples=1)

    with django_assert_max_num_queries(len(few.captured_queries)):
        html = client.get("/").content.decode()

    assert html.count('class="dash-releases"') == 3


def test_nav__releases_link__on_every_page(client, developer):
    client.force_login(developer)

    html = client.get("/flags/").content.decode()

    assert 'data-testid="nav-releases"' in html and 'href="/releases/"' in html


def test_release_detail__markup_in_names__escaped_in_the_page_and_the_charts(client, developer):
    release = live_release()
    release.gates.filter(name="errors").update(name='<img src=x onerror="alert(1)">')
    release.stages.filter(index=1).update(name="<b>canary</b>")
    client.force_login(developer)

    html = client.get(reverse("rollouts:detail", args=[release.pk])).content.decode()

    assert "<img src=x" not in html and "<b>canary</b>" not in html
    figures = figures_of(client.get(reverse("rollouts:detail", args=[release.pk])))
    marks = [a["text"] for f in figures.values() for a in f["layout"]["annotations"]]
    assert "advanced to &lt;b&gt;canary&lt;/b&gt; (automatic)" in marks
    names = [t["name"] for f in figures.values() for t in f["data"]]
    assert not [n for n in names if "<" in n]
