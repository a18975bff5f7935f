#!/usr/bin/env bash
# Run the dashboard with demo data: Django dev server on http://127.0.0.1:8000/, a Celery
# worker and Celery beat, all under honcho (Procfile.dev). Ctrl-C stops everything.
#
# Needs nothing but python3: the virtualenv is created in .venv and (re)installed only when
# pyproject.toml changes. Without DATABASE_URL / CELERY_BROKER_URL the settings fall back to
# SQLite and Celery's filesystem broker, both under var/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ ! -x .venv/bin/python ]]; then
    echo "run.sh: creating .venv" >&2
    python3 -m venv .venv
fi

stamp=.venv/.installed-run
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
    echo "run.sh: installing the project into .venv (pip install -e .)" >&2
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
    touch "$stamp"
fi

export DEBUG="${DEBUG:-1}"
mkdir -p var

.venv/bin/python manage.py migrate --noinput
.venv/bin/python manage.py seed_demo

export PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/honcho --procfile Procfile.dev --app-root . start
