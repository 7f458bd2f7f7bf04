"""Top-level URLs: pages, the REST API under /api/, its schema and docs, and the admin."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from gameserver import errors_views, health, metrics
from gameserver.accounts import pages

urlpatterns = [
    path("", pages.home, name="home"),
    path("signup/", pages.signup, name="signup"),
    path("login/", pages.login_page, name="login"),
    path("logout/", pages.logout_page, name="logout"),
    path("", include("gameserver.page_urls")),
    # For load balancers and orchestrators (gameserver/health.py, docs/operations.md).
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # Prometheus, per process, behind METRICS_TOKEN (gameserver/metrics.py, docs/operations.md).
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/auth/", include("gameserver.accounts.urls")),
    path("api/", include("games.urls")),
    path("api/", include("lobby.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    # Our template: drf-spectacular's loads web fonts from Google (gameserver/api_docs.py).
    path(
        "api/redoc/",
        SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html"),
        name="api-redoc",
    ),
]

handler404 = errors_views.not_found
handler500 = errors_views.server_error
