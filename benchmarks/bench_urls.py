"""The project's URLs plus two trivial JSON views to measure against, on the same server.

- /bench/trivial: a small constant JSON object (what a single OFREP answer weighs);
- /bench/trivial-large: a list of answer-shaped objects, serialised on every request, about
  BENCH_TRIVIAL_LARGE_BYTES long (the benchmark sets it to the size of its bulk answer).

Both are POST-able like the OFREP endpoints (no CSRF, no sign-in) and do nothing else.
"""

import json
import os

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from releasecontrol.urls import urlpatterns as project_urlpatterns

SMALL = {"key": "trivial", "value": True, "variant": "on", "reason": "STATIC", "metadata": {}}


def _large(target_bytes: int) -> dict:
    def item(i: int) -> dict:
        on = i % 3 == 0
        return {
            "key": f"bench-flag-{i:04d}",
            "value": on,
            "variant": "on" if on else "off",
            "reason": "STATIC" if on else "DISABLED",
            "metadata": {},
        }

    items: list[dict] = []
    size = len('{"flags": []}')
    while size < target_bytes:
        items.append(item(len(items)))
        size += len(json.dumps(items[-1])) + 2  # JsonResponse's separators: ", "
    return {"flags": items}


LARGE = _large(int(os.environ.get("BENCH_TRIVIAL_LARGE_BYTES", "100000")))


@csrf_exempt
@login_not_required
def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse(SMALL)


@csrf_exempt
@login_not_required
def trivial_large(request: HttpRequest) -> JsonResponse:
    return JsonResponse(LARGE)


urlpatterns = [
    path("bench/trivial", trivial),
    path("bench/trivial-large", trivial_large),
    *project_urlpatterns,
]
