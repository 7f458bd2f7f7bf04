"""ASGI entry point: HTTP goes to Django; WebSockets go through origin validation and authentication to Channels.
Both see the client's address as gameserver/clientaddr.py resolves it (TRUSTED_PROXY_COUNT)."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gameserver.settings")
django_asgi_app = get_asgi_application()

# Imported after Django is set up: the routing imports models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from games.routing import websocket_urlpatterns as game_routes  # noqa: E402
from gameserver.clientaddr import ClientAddressMiddleware  # noqa: E402
from gameserver.middleware import RequestLimitsMiddleware  # noqa: E402
from gameserver.ws import WebSocketAuthStack  # noqa: E402
from lobby.routing import websocket_urlpatterns as lobby_routes  # noqa: E402

# The client's address is resolved first (gameserver/clientaddr.py), for HTTP and WebSocket alike.
application = ClientAddressMiddleware(
    ProtocolTypeRouter(
        {
            # Over-size bodies and query strings are refused before Django reads them (gameserver/middleware.py).
            "http": RequestLimitsMiddleware(django_asgi_app),
            "websocket": AllowedHostsOriginValidator(WebSocketAuthStack(URLRouter(game_routes + lobby_routes))),
        }
    )
)
