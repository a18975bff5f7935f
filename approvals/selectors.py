"""Reads of approvals, with their joins done."""

from __future__ import annotations

from django.db.models import Count, F, Prefetch, Q, QuerySet

from releasecontrol.models import User

from .models import ApprovalRequest, BlackoutWindow, Decision, PostReview, Status


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
