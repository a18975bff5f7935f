"""The page that makes an approval request from a prefilled change (no namespace: the flag
board links to it by name)."""

from django.urls import path

from .request_new import approval_request_new

urlpatterns = [
    path("approvals/new/", approval_request_new, name="approval_request_new"),
]
