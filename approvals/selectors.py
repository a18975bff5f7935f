"""Reads of approvals, with their joins done."""

from __future__ import annotations

from collections.abc import Collection

from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
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
    return approval_requests(status=Status.PENDING).filter(awaiting_decision_q(user))


def awaiting_decision_q(user: User) -> Q:
    """Pending, not asked for or edited by this person, and no go of theirs on it yet."""
    return (
        Q(status=Status.PENDING)
        & ~Q(requested_by=user)
        & ~Q(
            pk__in=ApprovalRequest.editors.through.objects.filter(user=user).values(
                "approvalrequest_id"
            )
        )
        & ~Q(
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


# --- The inbox ------------------------------------------------------------------------------

INBOX_VIEWS = ("awaiting", "mine", "approved", "decided", "expired", "post_reviews", "all")


def inbox_view_q(view: str, user: User, decide_environment_ids: Collection[int]) -> Q:
    """Which requests one of the inbox's views holds. `awaiting` counts only where the
    person may decide (the environments the policy says so for, passed in)."""
    if view == "awaiting":
        return awaiting_decision_q(user) & Q(environment_id__in=list(decide_environment_ids))
    if view == "mine":
        return Q(requested_by=user)
    if view == "approved":
        return Q(status=Status.APPROVED)
    if view == "decided":
        return Q(status__in=[Status.REJECTED, Status.EXECUTED])
    if view == "expired":
        return Q(status=Status.EXPIRED)
    if view == "post_reviews":
        return Q(post_review__isnull=False, post_review__closed_at__isnull=True)
    return Q()


def approval_inbox_counts(
    user: User, *, decide_environment_ids: Collection[int], environment: str | None = None
) -> dict[str, int]:
    """How many requests each inbox view holds, in one query."""
    queryset = ApprovalRequest.objects.all()
    if environment:
        queryset = queryset.filter(environment__slug=environment)
    return queryset.aggregate(
        **{
            view: Count("pk", filter=inbox_view_q(view, user, decide_environment_ids))
            for view in INBOX_VIEWS
        }
    )


def approval_awaiting_count_for_user(user: User, *, decide_environment_ids: Collection[int]) -> int:
    """The nav badge: pending requests this person may decide, in one query."""
    if not decide_environment_ids:
        return 0
    return ApprovalRequest.objects.filter(
        inbox_view_q("awaiting", user, decide_environment_ids)
    ).count()


def _count_of(queryset: QuerySet) -> Coalesce:
    return Coalesce(
        Subquery(
            queryset.order_by().values("request").annotate(n=Count("pk")).values("n")[:1],
            output_field=IntegerField(),
        ),
        0,
    )


def approval_inbox_page(
    user: User,
    *,
    view: str,
    decide_environment_ids: Collection[int],
    environment: str | None = None,
    status: str | None = None,
    before: int | None = None,
    size: int = 25,
) -> tuple[list[ApprovalRequest], int | None]:
    """One keyset page of a view, newest first, and the id to pass as `before` for the next
    (or None). Each row carries its valid gos and checklist progress (counted per row in the
    same query: a page costs one query however many decisions and items there are)."""
    queryset = (
        ApprovalRequest.objects.select_related("environment", "requested_by")
        .filter(inbox_view_q(view, user, decide_environment_ids))
        .annotate(
            valid_gos=_count_of(
                Decision.objects.filter(
                    request=OuterRef("pk"),
                    decision="go",
                    void=False,
                    revision=OuterRef("revision"),
                )
            ),
            checklist_total=_count_of(ChecklistItem.objects.filter(request=OuterRef("pk"))),
            checklist_done=_count_of(
                ChecklistItem.objects.filter(request=OuterRef("pk"), checked=True)
            ),
        )
        .order_by("-id")
    )
    if environment:
        queryset = queryset.filter(environment__slug=environment)
    if status:
        queryset = queryset.filter(status=status)
    if before is not None:
        queryset = queryset.filter(id__lt=before)
    rows = list(queryset[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    return rows, (rows[-1].pk if more and rows else None)


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
