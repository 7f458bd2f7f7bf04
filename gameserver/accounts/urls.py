from django.urls import path

from gameserver.accounts import api

urlpatterns = [
    path("register/", api.RegisterView.as_view(), name="api-register"),
    path("login/", api.TokenLoginView.as_view(), name="api-login"),
    path("session/", api.SessionLoginView.as_view(), name="api-session-login"),
    path("logout/", api.LogoutView.as_view(), name="api-logout"),
    path("me/", api.MeView.as_view(), name="api-me"),
    path("password/", api.PasswordChangeView.as_view(), name="api-password"),
    path("ws-ticket/", api.WsTicketView.as_view(), name="api-ws-ticket"),
]
