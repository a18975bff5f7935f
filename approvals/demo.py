"""A demo approval request for the run command's embedded default (seed_demo). Idempotent.

The agent account asks to take the new checkout from 10% to 25% in production and fills part
of the deployment checklist, so the inbox shows a pending request waiting for two gos.
"""

from typing import IO

from releasecontrol.models import Environment, User

from .models import ApprovalRequest
from .services import approval_request_create, checklist_item_set

DEMO_TITLE = "New checkout to 25% in production"
EVIDENCE = {
    "Changes": "Checkout v2.4.0: new payment form, same providers",
    "Tests": "412 of 412 passed, run 81 on ci.example",
}


def seed_approvals(out: IO[str]) -> None:
    agent = User.objects.filter(username="ci-bot").first()
    production = Environment.objects.filter(slug="production").first()
    if agent is None or production is None:
        return
    if not ApprovalRequest.objects.filter(title=DEMO_TITLE).exists():
        request = approval_request_create(
            actor=agent,
            environment=production,
            action="flag.state.set",
            parameters={"flag": "new-checkout", "mode": "percentage", "percentage": 25},
            title=DEMO_TITLE,
            risk="medium",
            impact="A quarter of checkouts use the new payment form.",
            mitigation="Error-rate gate on checkout; on-call watches the rollout.",
            rollback_plan="Set new-checkout back to 10% (under a minute from the board).",
            reason="seed_demo",
        )
        for item in request.checklist.order_by("id"):
            evidence = next((text for key, text in EVIDENCE.items() if key in item.section), None)
            if evidence is not None:
                checklist_item_set(actor=agent, item=item, checked=True, evidence=evidence)
    out.write(f"Demo approval request: {DEMO_TITLE!r} (pending)\n")
