from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from . import views
from .api import api_urls
from .api import not_found_urls as api_not_found_urls
from .auth import SignInForm

handler403 = "releasecontrol.views.permission_denied"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("environments/<slug:slug>/", views.environment_detail, name="environment_detail"),
    path("healthz", views.healthz, name="healthz"),
    path("api/v1/", include((api_urls(), "api"), namespace="api")),
    *api_not_found_urls,
    path("ofrep/v1/", include("flags.ofrep")),
    path("", include("flags.urls")),
    path("", include("approvals.request_new_urls")),
    path("audit/", include("releasecontrol.audit.urls")),
    path("approvals/", include("approvals.urls")),
    path("", include("rollouts.urls")),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(authentication_form=SignInForm),
        name="login",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
