"""The emergency rollback endpoints (a Router on the site's /api/v1/):

- `POST /api/v1/environments/{environment}/rollback` `{"reason"}`: every flag off and every
  live release rolled back, in one transaction (rollouts/emergency.py); idempotent;
- `GET /api/v1/rollbacks/{id}`: the rollback's snapshot and how to restore from it.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.http import Http404, HttpRequest, HttpResponse
from ninja import Path, Router

from flags.models import KillSwitch
from releasecontrol.api import api_response
from releasecontrol.schemas import errors
from releasecontrol.selectors import environment_get

from .emergency import RollbackResult, environment_rollback, rollback_link
from .emergency_schemas import RollbackDetailOut, RollbackIn, RollbackOut
from .models import Rollback
from .restore import rollback_hold

router = Router()

EnvironmentPath = Annotated[str, Path(description="development, staging, production...")]


def kill_switch_json(switch: KillSwitch | None) -> dict[str, Any] | None:
    if switch is None:
        return None
    return {
        "id": switch.pk,
        "scope": switch.scope,
        "subject": switch.subject,
        "engaged_at": switch.engaged_at,
        "engaged_by": switch.engaged_by.username,
        "reason": switch.reason,
    }


def rollback_detail_text(result: RollbackResult, slug: str) -> str:
    rollback = result.rollback
    if result.already:
        return (
            f"{slug} was already rolled back by {rollback.actor.username} at "
            f"{rollback.created_at:%Y-%m-%d %H:%M:%S %Z} (rollback {rollback.pk}: "
            f"{rollback.reason}): nothing more to turn off."
        )
    return (
        f"Rolled back {slug} (rollback {rollback.pk}): turned off "
        f"{len(result.turned_off)} flag state(s), stopped {len(result.releases_stopped)} "
        "release(s). The environment kill switch stays engaged until a rollback.restore "
        "request is executed."
    )


@router.post(
    "/environments/{slug:environment}/rollback",
    url_name="environment_rollback",
    response={200: RollbackOut, **errors(400, 401, 403, 404)},
    tags=["environments"],
    summary="Roll the environment back: every flag off, every live release rolled back",
    description="One transaction, no approval (on-call and release managers; never agents). "
    "A second or concurrent call changes nothing and names the first rollback.",
)
def environment_rollback_post(
    request: HttpRequest, environment: EnvironmentPath, payload: RollbackIn
) -> HttpResponse:
    env = environment_get(environment)
    result = environment_rollback(actor=request.auth, environment=env, reason=payload.reason or "")
    rollback = result.rollback
    switch = (
        KillSwitch.objects.select_related("engaged_by").filter(pk=rollback.kill_switch_id).first()
    )
    answer = RollbackOut.model_validate(
        {
            "rollback": rollback.pk,
            "environment": env.slug,
            "already_rolled_back": result.already,
            "turned_off": [],
            "releases_stopped": result.releases_stopped,
            "kill_switch": kill_switch_json(switch),
            "snapshot_url": rollback_link(rollback),
            "detail": rollback_detail_text(result, env.slug),
        }
    ).model_dump()
    # Built in TurnedOffOut's shape by the kill switch (flags/kill_switches.py): thousands
    # of states go straight to JSON rather than through the schema one by one, so the
    # answer leaves as soon as the rollback commits.
    answer["turned_off"] = result.turned_off
    return api_response(request, answer)


@router.get(
    "/rollbacks/{int:id}",
    url_name="rollback_detail",
    response={200: RollbackDetailOut, **errors(400, 401, 404)},
    tags=["environments"],
    summary="A rollback's snapshot: what it turned off and stopped, and how to restore",
)
def rollback_get(request: HttpRequest, id: int) -> dict:  # the contract's {id}
    rollback = (
        Rollback.objects.select_related("environment", "actor", "kill_switch", "restored_by")
        .filter(pk=id)
        .first()
    )
    if rollback is None:
        raise Http404(f"No rollback {id}")
    return rollback_json(rollback)


def rollback_json(rollback: Rollback) -> dict[str, Any]:
    switch = rollback.kill_switch
    engaged = switch is not None and switch.released_at is None
    hold = rollback_hold(switch) if engaged else None
    state = "restored" if rollback.restored_at else "engaged" if engaged else "released"
    return {
        "id": rollback.pk,
        "environment": rollback.environment.slug,
        "actor": rollback.actor.username,
        "reason": rollback.reason,
        "created_at": rollback.created_at,
        "kill_switch": rollback.kill_switch_id,
        "kill_switch_engaged": engaged,
        "snapshot": {
            "flags": rollback.flag_states,
            "releases": rollback.snapshot.get("releases", []),
        },
        "restore": {
            "restored_at": rollback.restored_at,
            "restored_by": rollback.restored_by.username if rollback.restored_by else None,
            "request": rollback.restore_request_id if rollback.restored_at else None,
        },
        "restore_request": hold.request if hold else {},
        "state": state,
    }
