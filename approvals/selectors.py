"""Reads of approvals, with their joins done."""

from __future__ import annotations

from django.db.models import Count, F, Prefetch, Q, QuerySet
from django.http import Http404

from releasecontrol.models import User

from .models import (
    ApprovalRequest,
    BlackoutWindow,
    ChecklistItem,
    ChecklistTemplate,
    Decision,
    PostReview,
    Status,
)


def approval_requests(
    *, status: str | None = None, environment: str | None = None
) -> QuerySet[ApprovalRequest]:
    """Requests newest first, with environment, requester and the count of valid gos."""
    queryset = ApprovalRequest.objects.select_related(
        "environment", "requested_by", "executed_by"
    ).annotate(
        valid_gos=Count(
            "decisions",
            filter=Q(
                decisions__decision="go",
                decisions__void=False,
                decisions__revision=F("revision"),
            ),
        )
    )
    # Meta.ordering is not applied to aggregating queries: say it.
    queryset = queryset.order_by("-id")
    if status:
        queryset = queryset.filter(status=status)
    if environment:
        queryset = queryset.filter(environment__slug=environment)
    return queryset


def approval_request_detail(pk: int) -> ApprovalRequest:
    """One request with its checklist, decisions (void ones too) and editors."""
    return (
        ApprovalRequest.objects.select_related(
            "environment", "requested_by", "executed_by", "emergency_confirmed_by"
        )
        .prefetch_related(
            "checklist__checked_by",
            Prefetch("decisions", queryset=Decision.objects.select_related("decider")),
            "editors",
        )
        .get(pk=pk)
    )


def approval_requests_awaiting_decision_for_user(user: User) -> QuerySet[ApprovalRequest]:
    """Pending requests this person may still decide: not theirs, not edited by them, no go
    of theirs on the current revision. (Whether they hold approve_changes is the policy's.)"""
    return (
        approval_requests(status=Status.PENDING)
        .exclude(requested_by=user)
        .exclude(editors=user)
        .exclude(
            pk__in=Decision.objects.filter(decider=user, void=False, decision="go").values(
                "request"
            )
        )
    )


def post_reviews_open() -> QuerySet[PostReview]:
    return PostReview.objects.filter(closed_at__isnull=True).select_related(
        "request__environment", "request__executed_by"
    )


def blackout_windows(*, environment: str | None = None) -> QuerySet[BlackoutWindow]:
    queryset = BlackoutWindow.objects.active().select_related("environment", "created_by")
    if environment:
        queryset = queryset.filter(environment__slug=environment)
    return queryset


def approval_requests_in_full(
    *, status: str | None = None, environment: str | None = None
) -> QuerySet[ApprovalRequest]:
    """Requests as the API shows them: everything each one's answer reads, in a fixed number
    of queries whatever the number of requests."""
    return (
        approval_requests(status=status, environment=environment)
        .select_related("emergency_confirmed_by", "checklist_template", "post_review__closed_by")
        .prefetch_related(
            Prefetch("checklist", queryset=ChecklistItem.objects.select_related("checked_by")),
            Prefetch(
                "decisions", queryset=Decision.objects.select_related("decider").order_by("id")
            ),
        )
    )


def approval_request_get(pk: int) -> ApprovalRequest:
    request = approval_requests_in_full().filter(pk=pk).first()
    if request is None:
        raise Http404(f"No approval request #{pk}.")
    return request


def checklist_item_get(request_pk: int, item_pk: int) -> ChecklistItem:
    item = (
        ChecklistItem.objects.select_related("request__environment", "request__requested_by")
        .filter(pk=item_pk, request_id=request_pk)
        .first()
    )
    if item is None:
        raise Http404(f"Request #{request_pk} has no checklist item {item_pk}.")
    return item


def blackout_window_get(pk: int) -> BlackoutWindow:
    window = blackout_windows().filter(pk=pk).first()
    if window is None:
        raise Http404(f"No blackout window {pk}.")
    return window


def checklist_templates() -> QuerySet[ChecklistTemplate]:
    return ChecklistTemplate.objects.prefetch_related("items").order_by("slug")
