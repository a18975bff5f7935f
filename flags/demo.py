"""Demo flags for the run command's embedded default (seed_demo). Idempotent."""

from typing import IO

from releasecontrol.models import Environment, User

from .models import Flag
from .services import flag_create, flag_state_set

# key, name, tags, (development, staging, production) as (mode, percentage, allowlist)
DEMO_FLAGS = [
    (
        "ai-concierge",
        "AI concierge",
        ["concierge"],
        [("full", 0, []), ("percentage", 50, ["tester-1"]), ("allowlist", 0, ["pilot-001"])],
    ),
    (
        "ocr",
        "OCR of uploaded images",
        ["ocr"],
        [("full", 0, []), ("allowlist", 0, ["tester-1", "tester-2"]), ("off", 0, [])],
    ),
    (
        "calling",
        "Outbound calling",
        ["calling"],
        [("shadow", 0, []), ("off", 0, []), ("off", 0, [])],
    ),
    (
        "new-checkout",
        "New checkout",
        ["payments"],
        [("full", 0, []), ("full", 0, []), ("percentage", 10, [])],
    ),
]


def seed_flags(out: IO[str]) -> None:
    system = User.system()
    environments = list(Environment.objects.order_by("position"))
    for key, name, tags, states in DEMO_FLAGS:
        if Flag.objects.filter(key=key).exists():
            continue
        # Demo data is made by the operator at the shell, as a person would: the release
        # manager account stands in, so the trail shows a human turning flags on.
        author = User.objects.filter(username="admin").first() or system
        flag = flag_create(actor=author, key=key, name=name, tags=tags, reason="seed_demo")
        for environment, (mode, percentage, allowlist) in zip(environments, states, strict=False):
            flag_state_set(
                actor=author,
                flag=flag,
                environment=environment,
                mode=mode,
                percentage=percentage,
                allowlist=allowlist,
                reason="seed_demo",
            )
    out.write(f"Demo flags: {', '.join(f[0] for f in DEMO_FLAGS)}\n")
