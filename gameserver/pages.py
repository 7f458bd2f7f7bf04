"""Server-rendered pages of the browser client (besides sign-up and log-in in gameserver/accounts/pages.py).

Thin: each renders a template with at most an id or code; the page's JavaScript loads the rest from the REST API and
the WebSockets. ensure_csrf_cookie because those scripts send the CSRF cookie back on every unsafe API call."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import get_object_or_404, render
from django.templatetags.static import static
from django.views.decorators.csrf import ensure_csrf_cookie

from gameserver.accounts.models import User


def _page(view):
    return login_required(ensure_csrf_cookie(view))


@_page
def lobbies(request: HttpRequest) -> HttpResponse:
    return render(request, "lobbies.html")


@_page
def lobby_room(request: HttpRequest, code: str) -> HttpResponse:
    return render(request, "lobby.html", {"code": code.upper()})


@_page
def match(request: HttpRequest, match_id: int) -> HttpResponse:
    return render(request, "match.html", {"match_id": match_id})


@_page
def match_replay(request: HttpRequest, match_id: int) -> HttpResponse:
    return render(request, "replay.html", {"match_id": match_id})


@_page
def watch(request: HttpRequest) -> HttpResponse:
    return render(request, "watch.html")


@_page
def leaderboard(request: HttpRequest) -> HttpResponse:
    return render(request, "leaderboard.html")


@_page
def history(request: HttpRequest) -> HttpResponse:
    return render(request, "history.html")


@_page
def profile(request: HttpRequest) -> HttpResponse:
    return render(request, "profile.html", {"profile_user": request.user, "is_me": True})


@_page
def user_profile(request: HttpRequest, user_id: int) -> HttpResponse:
    shown = get_object_or_404(User, pk=user_id)
    return render(request, "profile.html", {"profile_user": shown, "is_me": shown.pk == request.user.pk})


def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico, which browsers ask for on pages without an icon link (the admin, the API docs): the site's SVG."""
    return HttpResponsePermanentRedirect(static("favicon.svg"))
