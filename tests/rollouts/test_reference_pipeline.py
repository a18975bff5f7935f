"""The reference pipeline (docs/ci/release-control-deploy.sh) against a live server, with an
agent's token: staging goes at once; production waits for people, who approve and execute
through the services while the script polls, honouring Retry-After."""

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import pytest
from django.utils import timezone

from rollouts.models import Deployment

from .deploying import ARTIFACT, approve, complete_checklist, execute

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "ci" / "release-control-deploy.sh"
DEADLINE = 60  # seconds: a live server, generous


def run(live_server, token, environment, *, deploy="true", smoke="echo 12 0", version="2.4.0"):
    env = {
        "PATH": os.environ["PATH"],
        "RELEASE_CONTROL_URL": live_server.url,
        "RELEASE_CONTROL_TOKEN": token,
        "ENVIRONMENT": environment,
        "SERVICE": "checkout-api",
        "VERSION": version,
        "COMMIT": "9f1c2ab",
        "COMMIT_TIME": (timezone.now() - dt.timedelta(hours=3)).isoformat(),
        "ARTIFACT": ARTIFACT,
        "DEPLOY_COMMAND": deploy,
        "SMOKE_COMMAND": smoke,
        "MAX_WAIT_SECONDS": str(DEADLINE),
    }
    return subprocess.Popen(
        ["bash", str(SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process) -> tuple[int, str]:
    _, err = process.communicate(timeout=DEADLINE)
    return process.returncode, err


def wait_for(condition, what: str):
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {DEADLINE}s")


@pytest.fixture
def quick_polls(settings):
    settings.DEPLOYMENT_RETRY_AFTER_SECONDS = 1


def test_reference_pipeline__staging_then_production__deploys_only_after_the_go(
    live_server, people, api_token_for, quick_polls
):
    token = api_token_for(people["ci-bot"])
    code, err = finish(run(live_server, token, "staging"))
    assert code == 0, err
    assert "registered: go" in err

    process = run(live_server, token, "production")
    waiting = wait_for(
        lambda: Deployment.objects.filter(environment__slug="production").first(),
        "production deployment",
    )
    assert waiting.status == "awaiting_approval" and process.poll() is None
    complete_checklist(waiting, people["ci-bot"])
    approve(waiting, people["rita"])
    execute(waiting, people["omar"])
    code, err = finish(process)

    assert code == 0, err
    assert "awaiting approval" in err and "go given by omar" in err
    done = Deployment.objects.get(pk=waiting.pk)
    assert (done.status, done.smoke_passed, done.smoke_failed) == ("succeeded", 12, 0)
    assert list(done.events.values_list("event", flat=True)) == [
        "registered",
        "go",
        "started",
        "succeeded",
    ]


def test_reference_pipeline__smoke_tests_fail__reports_failed_exit_1(
    live_server, people, api_token_for, quick_polls
):
    token = api_token_for(people["ci-bot"])

    code, err = finish(run(live_server, token, "staging", smoke="echo 10 2; exit 1"))

    assert code == 1 and "reported failed" in err
    done = Deployment.objects.get()
    assert (done.status, done.smoke_passed, done.smoke_failed) == ("failed", 10, 2)


def test_reference_pipeline__never_staged_production__refused_exit_2(
    live_server, people, api_token_for
):
    code, err = finish(run(live_server, api_token_for(people["ci-bot"]), "production"))

    assert code == 2 and "never succeeded in staging" in err
    assert not Deployment.objects.exists()
