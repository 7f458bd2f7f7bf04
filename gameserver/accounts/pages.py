"""Server-rendered sign-up, log-in and log-out pages for the browser; throttled as the API is (services.py)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import SESSION_KEY, login, logout
from django.contrib.auth.forms import UserCreationForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from gameserver.accounts import services
from gameserver.accounts.models import User
from gameserver.clientaddr import client_ip


class SignupForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = User
        fields = ["username"]


class LoginForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(max_length=128, strip=False, widget=forms.PasswordInput)


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "POST":
        # The same per-address count as POST /api/auth/register/, taken before the form is even validated.
        try:
            services.signup_check_throttle(client_ip=client_ip(request))
        except services.SignupThrottled as exc:
            # Refused before the form is validated (no password hashing for a flood): the message goes on the page.
            form = SignupForm(initial={"username": request.POST.get("username", "")[:150]})
            messages.error(request, str(exc))
            status, retry_after = 429, exc.retry_after
        else:
            if form.is_valid():
                user = services.user_register(username=form.cleaned_data["username"], password=form.cleaned_data["password1"])
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect("home")
            status = 400
    return _form_page(request, "accounts/signup.html", form, "Sign up", "Create account", status, retry_after)


@require_http_methods(["GET", "POST"])
def login_page(request: HttpRequest) -> HttpResponse:
    form = LoginForm(request.POST or None)
    status, retry_after = 200, None
    if request.method == "GET" and _session_user_banned(request):
        # Banned while logged in: the session no longer logs anyone in, and the player is told why.
        messages.error(request, "Your account has been banned.")
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_authenticate(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password"],
                client_ip=client_ip(request),
            )
        except services.LoginThrottled as exc:
            form.add_error(None, str(exc))
            status, retry_after = 429, exc.retry_after
        except services.AccountBanned:
            form.add_error(None, "This account is banned.")
            status = 403
        except services.InvalidCredentials:
            form.add_error(None, "Wrong username or password.")
            status = 401
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect(_next_url(request))
    return _form_page(request, "accounts/login.html", form, "Log in", "Log in", status, retry_after)


def _session_user_banned(request: HttpRequest) -> bool:
    """The session names a user, Django no longer logs them in (inactive), and that is because of a ban."""
    user_id = request.session.get(SESSION_KEY)
    if user_id is None or request.user.is_authenticated:
        return False
    return User.objects.filter(pk=user_id, banned_at__isnull=False).exists()


def _form_page(
    request: HttpRequest, template: str, form: forms.Form, heading: str, submit: str, status: int, retry_after: int | None
) -> HttpResponse:
    response = render(request, template, {"form": form, "heading": heading, "submit": submit}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def _next_url(request: HttpRequest) -> str:
    target = request.GET.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("home")


@require_POST
def logout_page(request: HttpRequest) -> HttpResponse:
    if request.session.session_key:
        services.session_revoke(session_key=request.session.session_key)
    logout(request)
    messages.info(request, "You are logged out.")
    return redirect("home")
