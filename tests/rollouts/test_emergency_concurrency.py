"""Ten on-call engineers press at once, each on their own database connection: one rollback,
nine answers naming it, every flag off once, every release stopped once, the chain valid. And
the rollback with Redis and Celery unreachable."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from flags.models import FlagState
from releasecontrol.audit import audit_verify
from releasecontrol.models import AuditEvent, Environment, User
from releasecontrol.services import role_grant, user_create
from rollouts.emergency import RollbackResult, environment_rollback
from rollouts.models import Release, ReleaseEvent, Rollback
from tests.rollouts.helpers import flags_on, live_release

PRESSES = 10


@pytest.mark.django_db(transaction=True)
def test_environment_rollback__ten_concurrent_presses__one_rollback_nine_name_it(
    release_manager, production
):
    flags = flags_on(release_manager, production)
    for n, flag in enumerate(flags):
        live_release(production, flag, name=f"release-{n}")
    people = []
    for n in range(PRESSES):
        person = user_create(actor=User.system(), username=f"oncall-{n}")
        role_grant(actor=User.system(), user=person, role="oncall")
        people.append(person)
    start = threading.Barrier(PRESSES)
    results: list[RollbackResult] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def press(person: User) -> None:
        try:
            env = Environment.objects.get(slug="production")  # this thread's own connection
            start.wait(timeout=10)
            result = environment_rollback(actor=person, environment=env, reason="all at once")
            with lock:
                results.append(result)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=press, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(t.is_alive() for t in threads) and errors == []
    rollback = Rollback.objects.get()
    assert {r.rollback_id for r in results} == {rollback.pk}
    assert sorted(r.already for r in results) == [False] + [True] * (PRESSES - 1)
    first = next(r for r in results if not r.already)
    assert len(first.turned_off) == 3 and len(first.releases_stopped) == 3
    assert set(FlagState.objects.filter(environment=production).values_list("mode", flat=True)) == {
        "off"
    }
    assert FlagState.objects.filter(environment=production, version=3).count() == 3  # once each
    assert set(Release.objects.values_list("status", flat=True)) == {"rolled_back"}
    assert ReleaseEvent.objects.filter(kind="rolled_back").count() == 3
    assert AuditEvent.objects.filter(action="environment.rollback").count() == 1
    assert AuditEvent.objects.filter(action="killswitch.engage").count() == 1
    assert AuditEvent.objects.get(action="environment.rollback").actor == rollback.actor
    report = audit_verify()
    assert report.ok and report.checked == AuditEvent.objects.count()


def test_environment_rollback__redis_and_celery_unreachable__api_rolls_back(
    settings, api_call, oncall, release_manager, production
):
    dead = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.REDIS_URL = settings.CELERY_BROKER_URL = dead
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}
    }
    flags_on(release_manager, production)
    live_release(production, FlagState.objects.get(flag__key="ocr", environment=production).flag)

    response = api_call(
        oncall, "POST", "/api/v1/environments/production/rollback", {"reason": "redis down too"}
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert len(body["turned_off"]) == 3 and len(body["releases_stopped"]) == 1
    assert set(FlagState.objects.filter(environment=production).values_list("mode", flat=True)) == {
        "off"
    }
    assert Release.objects.get().status == "rolled_back"
