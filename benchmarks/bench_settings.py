"""The site's settings plus the benchmark's trivial views (benchmarks/bench_urls.py).

Only the benchmark sets DJANGO_SETTINGS_MODULE=benchmarks.bench_settings: production never
serves these views.
"""

from releasecontrol.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.bench_urls"
