"""The README's first command runs on SQLite (the embedded default): every page the demo data
fills, and the gate monitor's tick, must work there too, not only on PostgreSQL, where the
rest of the suite runs."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Signed in as the demo release manager, through Django's test client in a real process.
WALK = r"""
import json, re
from django.test import Client
from django.test.utils import setup_test_environment
from releasecontrol.models import User
from rollouts.models import Release
from rollouts.monitor import monitor_tick
setup_test_environment()
tick = monitor_tick()  # the gate monitor's work as beat would queue it there
assert tick.gates_evaluated >= 2 and not tick.failed, tick
client = Client()
client.force_login(User.objects.get(username="rita"))
release = Release.objects.order_by("pk").first()
pages = ["/", f"/releases/{release.pk}/", f"/releases/{release.pk}/replay"]
home = client.get("/").content.decode()
pages += sorted(set(re.findall(r'<a[^>]+href="(/[^"#?]*)"', home)) - {"/accounts/logout/"})
answers = {}
for page in pages:
    response = client.get(page, follow=True)
    answers[page] = response.status_code
    if response.status_code == 200 and b"<!doctype html>" not in response.content[:200].lower():
        answers[page] = "not a page"
print(json.dumps(answers))
"""


def test_demo_on_sqlite__monitor_ticks_and_every_page_the_dashboard_links__answers_200(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DEBUG": "1",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "CELERY_BROKER_URL": "memory://",
    }

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    for step in (("migrate", "--no-input"), ("seed_demo",)):
        done = manage(*step)
        assert done.returncode == 0, done.stderr[-3000:]

    walked = manage("shell", "-c", WALK)
    assert walked.returncode == 0, walked.stderr[-3000:]
    answers = json.loads(walked.stdout.strip().splitlines()[-1])
    assert len(answers) >= 8, answers  # the nav's pages, the demo release and its replay
    assert {page: status for page, status in answers.items() if status != 200} == {}
