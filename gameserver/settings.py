"""Settings for the game server, read from the environment.

With nothing set it runs on one machine with nothing installed: SQLite and the in-process channel layer.
DATABASE_URL (PostgreSQL) and REDIS_URL (channel layer, cache, match leases) switch to the real services.
GAMESERVER_ENV=production turns on the deployment checks: SECRET_KEY and ALLOWED_HOSTS must be given.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from gameserver.env import env_bool, env_choice, env_int, env_list, env_str
from gameserver.throttle import Rate

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var")))

ENVIRONMENT = env_choice("GAMESERVER_ENV", "development", {"development", "production"})
PRODUCTION = ENVIRONMENT == "production"
DEBUG = env_bool("DEBUG", False)
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DEBUG must be off when GAMESERVER_ENV=production.")


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        if PRODUCTION and len(key) < 50:
            raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long in production.")
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. In production (GAMESERVER_ENV=production) the server refuses to start "
            "without it. Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
        )
    # Development: keep one generated key on disk so that sessions survive a restart.
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(64))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", [] if PRODUCTION else ["localhost", "127.0.0.1", "[::1]", "testserver"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the server's host names in production.")
# Origins allowed to open WebSockets and to POST with a session cookie, e.g. "https://play.example.com".
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "gameserver.accounts.apps.GameAdminConfig",  # django.contrib.admin, with its login throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "gameserver.accounts",
    "games",
    "lobby",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # PostgreSQL or Redis unreachable: 503 with Retry-After rather than 500 (last, so that it sees a view's error first).
    "gameserver.api_errors.ServiceUnavailableMiddleware",
]

ROOT_URLCONF = "gameserver.urls"
ASGI_APPLICATION = "gameserver.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "games.context_processors.game_names",
            ],
        },
    },
]


# SQLite's default ("deferred") transaction reads first and takes the write lock at its first write. When another
# connection writes meanwhile, that upgrade fails at once with "database is locked" (SQLite does not wait there: it
# would deadlock), so an invitation's accept failed with a 500 while a match sweep wrote. IMMEDIATE takes the write
# lock at BEGIN, waiting up to `timeout` seconds for it; WAL lets readers go on while one connection writes.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": "PRAGMA journal_mode=WAL",
}


def _database(url: str) -> dict:
    if not url:
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        # Kept open between requests: a WebSocket connect does a few ORM calls, each on a fresh connection otherwise.
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "db.sqlite3",
            "CONN_MAX_AGE": env_int("DB_CONN_MAX_AGE", 60, minimum=0),
            "OPTIONS": dict(SQLITE_OPTIONS),
        }
    try:
        # Closed at the end of each request and of each database_sync_to_async call (DB_CONN_MAX_AGE=0). Under ASGI
        # those run in short-lived threads, and a persistent connection belongs to its thread: once the thread was
        # gone nothing closed it but the garbage collector (50 REST calls left 19 sessions open). A pooler in front
        # of PostgreSQL (PgBouncer) is the way to save the connect; docs/operations.md.
        config = dj_database_url.parse(
            url, conn_max_age=env_int("DB_CONN_MAX_AGE", 0, minimum=0), conn_health_checks=True
        )
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL Django understands: {exc}") from None
    if config["ENGINE"] not in {"django.db.backends.postgresql", "django.db.backends.sqlite3"}:
        raise ImproperlyConfigured("DATABASE_URL must be a postgres:// (or sqlite://) URL.")
    # An unreachable server answers 503 within seconds (gameserver/api_errors.py) rather than hanging a request.
    if config["ENGINE"] == "django.db.backends.postgresql":
        config.setdefault("OPTIONS", {}).setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 3, minimum=1))
    else:
        config["OPTIONS"] = {**SQLITE_OPTIONS, **config.get("OPTIONS", {})}
    # Tests get their own database next to the named one; keep the name PostgreSQL gives it predictable.
    config.setdefault("TEST", {})["NAME"] = env_str("TEST_DATABASE_NAME") or None
    return config


DATABASES = {"default": _database(env_str("DATABASE_URL"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _redis_url(url: str, name: str = "REDIS_URL") -> str:
    if url and urlparse(url).scheme not in {"redis", "rediss", "unix"}:
        raise ImproperlyConfigured(f"{name}={url!r} must start with redis://, rediss:// or unix://.")
    return url


REDIS_URL = _redis_url(env_str("REDIS_URL"))
# Match engine keys (leases, checkpoints, input logs, journals) and the relay channel layer, sharded by match id
# (relay channels by name) across these Redis nodes; default: REDIS_URL alone. The cache and the default channel
# layer stay on REDIS_URL. Changing the list moves matches between nodes: change it between deploys.
ENGINE_REDIS_URLS = [_redis_url(url, "ENGINE_REDIS_URLS") for url in env_list("ENGINE_REDIS_URLS", [REDIS_URL] if REDIS_URL else [])]
if ENGINE_REDIS_URLS and not REDIS_URL:
    raise ImproperlyConfigured("ENGINE_REDIS_URLS needs REDIS_URL (the cache and the default channel layer) too.")
if REDIS_URL and not ENGINE_REDIS_URLS:
    raise ImproperlyConfigured("ENGINE_REDIS_URLS must name at least one Redis URL.")
# Per-tick journal of applied inputs (games/engine/journal.py): a successor resumes without rollback. Off, it resumes
# from the last checkpoint (rolled back up to a maintenance round); off exists to measure what it costs.
ENGINE_JOURNAL = env_bool("ENGINE_JOURNAL", True)
REDIS_TIMEOUT_SECONDS = env_int("REDIS_TIMEOUT_SECONDS", 3, minimum=1)
# Retry-After of the 503 answered while PostgreSQL or Redis is unreachable (gameserver/api_errors.py).
SERVICE_UNAVAILABLE_RETRY_AFTER = env_int("SERVICE_UNAVAILABLE_RETRY_AFTER", 5, minimum=1)
# Match engine: Redis key prefix for leases and checkpoints. Deployments that share one Redis give each a different
# ENGINE_PREFIX and CHANNEL_PREFIX; the cache (WS tickets, throttles, everything else) follows ENGINE_PREFIX unless
# CACHE_PREFIX says otherwise.
ENGINE_PREFIX = env_str("ENGINE_PREFIX", "gs")
CACHE_PREFIX = env_str("CACHE_PREFIX", ENGINE_PREFIX)

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [REDIS_URL],
                "prefix": env_str("CHANNEL_PREFIX", "gs"),
                # Control traffic only (snapshots go to local sockets directly); a deeper queue so a burst of
                # joins or kicks is not dropped, and groups outlive daphne's 24-hour socket limit.
                "capacity": 1000,
                "expiry": 30,
                "group_expiry": 86400 + 3600,
            },
        },
        # Snapshots for players on other processes and the engine's messages between processes: one PUBLISH per
        # match per tick, no per-channel queues in Redis (games/engine/host.py).
        "relay": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": ENGINE_REDIS_URLS, "prefix": env_str("CHANNEL_PREFIX", "gs") + ".relay"},
        },
    }
    CACHES = {
        "default": {
            # One connection pool per process, not one per thread (gameserver/rediscache.py).
            "BACKEND": "gameserver.rediscache.SharedPoolRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_PREFIX,
            "OPTIONS": {
                "max_connections": env_int("REDIS_CACHE_MAX_CONNECTIONS", 50, minimum=1),
                # Redis away: tickets and throttles answer 503 within seconds instead of waiting on a dead socket.
                "socket_connect_timeout": REDIS_TIMEOUT_SECONDS,
                "socket_timeout": REDIS_TIMEOUT_SECONDS,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": CACHE_PREFIX}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# WhiteNoise warns about a missing folder; in development it serves from the finders and the folder stays empty.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the app folders in development so that no collectstatic step is needed.
WHITENOISE_USE_FINDERS = not PRODUCTION
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# HTTP limits (docs/security.md, "HTTP limits"). Bodies above MAX_REQUEST_BYTES are refused with 413 before they are
# read: by deploy/daphne_http.py under daphne, by gameserver/middleware.py under any ASGI server. No endpoint of ours
# needs more, and what is accepted stays in memory (never a temporary file).
MAX_REQUEST_BYTES = env_int("MAX_REQUEST_BYTES", 64 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES
# Query strings above this get 414; ours carry a few short parameters (the admin's filters stay well below).
MAX_QUERY_STRING_BYTES = env_int("MAX_QUERY_STRING_BYTES", 8192, minimum=256)
# Paginated lists: ?limit= is 1..PAGINATION_MAX_LIMIT and ?offset= 0..PAGINATION_MAX_OFFSET, else 400 invalid_pagination.
PAGINATION_MAX_LIMIT = env_int("PAGINATION_MAX_LIMIT", 100, minimum=1, maximum=10_000)
PAGINATION_MAX_OFFSET = env_int("PAGINATION_MAX_OFFSET", 1_000_000, minimum=0, maximum=2**62)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "gameserver.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["gameserver.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "gameserver.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "gameserver.api_errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "ws_ticket": env_str("THROTTLE_WS_TICKET", "120/minute"),
        # Replays: a match not in the cache is replayed through its rules (tens of ms of CPU for a full arena match),
        # so one client must not walk every finished match; a replay page needs a dozen requests for a 2-minute match.
        "replay": env_str("THROTTLE_REPLAY", "120/minute"),
        # Matches created by one user through the API: each invites its other players, announced on every page they have
        # open (match.created on ws/matchmaking/); lobbies and matchmaking do not count.
        "invite": env_str("THROTTLE_INVITE", "30/hour"),
    },
    # REMOTE_ADDR is already the client's address (gameserver/clientaddr.py): DRF must not read X-Forwarded-For again.
    "NUM_PROXIES": 0,
}

# How many proxies of ours stand in front of the server processes and append to X-Forwarded-For: 0 when clients
# connect straight to daphne (the header is then ignored), 1 behind the nginx recipe (docs/scale-out.md).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0, maximum=10)
# Failed logins per username and per client address before further attempts get 429 until the window ends. Every
# login path (API token and session, login page, admin) counts here (gameserver/accounts/services.py).
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_FAILURE_WINDOW_SECONDS = env_int("LOGIN_FAILURE_WINDOW_SECONDS", 300, minimum=1)
# Sign-ups per client address, through the API and the page alike.
SIGNUP_RATE = Rate.parse(env_str("THROTTLE_REGISTER", "30/hour"), setting="THROTTLE_REGISTER")
# Whether SIGTERM hands matches to other processes.
ENGINE_HANDOVER_ON_SIGTERM = env_bool("ENGINE_HANDOVER_ON_SIGTERM", True)
# Matches: players must arrive within this many seconds of a match becoming playable (created, or its last
# invitation accepted); invitations from POST /api/matches/ expire after MATCH_INVITE_TIMEOUT_SECONDS.
MATCH_JOIN_TIMEOUT_SECONDS = env_int("MATCH_JOIN_TIMEOUT_SECONDS", 60, minimum=5, maximum=3600)
MATCH_INVITE_TIMEOUT_SECONDS = env_int("MATCH_INVITE_TIMEOUT_SECONDS", 300, minimum=10, maximum=7 * 86400)
# Who may watch a finished match's replay: "everyone" logged in (for games that allow spectators; others: players
# only), or "players" (its players only). Staff always may.
REPLAY_VISIBILITY = env_choice("REPLAY_VISIBILITY", "everyone", {"everyone", "players"})
# Run the matchmaker inside the server processes too (it stands down while a `run_matchmaker` worker is alive).
MATCHMAKER_IN_PROCESS = env_bool("MATCHMAKER_IN_PROCESS", True)
# A searching ticket whose player closed their last matchmaking socket (left the site, closed the tab) is cancelled
# when none reopens within this many seconds: long enough to go from page to page, short enough that nobody is
# matched with someone who is gone (docs/lobby.md, "Leaving while queued").
MATCHMAKING_AWAY_SECONDS = env_int("MATCHMAKING_AWAY_SECONDS", 5, minimum=1, maximum=600)
# Single-use tickets that non-browser clients exchange for a WebSocket connection.
WS_TICKET_TTL_SECONDS = env_int("WS_TICKET_TTL_SECONDS", 30, minimum=1, maximum=600)
# --- WebSocket bounds per socket (gameserver/directws.py SocketLimits, gameserver/ws.py; docs/security.md) ---
# Frames in one fragmented message (over it: the too-big close code, 4009).
WS_MAX_FRAGMENTS = env_int("WS_MAX_FRAGMENTS", 64, minimum=1)
# Frames of any kind a socket may send per window (over it: close 4008). Match clients send at most 60 messages/s.
WS_MAX_FRAMES = env_int("WS_MAX_FRAMES", 2000, minimum=10)
WS_FRAME_WINDOW_SECONDS = env_int("WS_FRAME_WINDOW_SECONDS", 10, minimum=1)
# Pongs written for the pings of one read (the most recent); pings ignored while a client reads nothing before it is
# dropped.
WS_PONGS_PER_READ = env_int("WS_PONGS_PER_READ", 16, minimum=1)
WS_MAX_UNANSWERED_PINGS = env_int("WS_MAX_UNANSWERED_PINGS", 32, minimum=1)
# Lobby and matchmaking sockets: messages per second (sustained, and burst) before messages are dropped with a
# `rate_limited` error, and dropped messages within 10 s before the socket is closed with 4008.
WS_LOBBY_RATE_PER_SECOND = env_int("WS_LOBBY_RATE_PER_SECOND", 5, minimum=1)
WS_LOBBY_RATE_BURST = env_int("WS_LOBBY_RATE_BURST", 20, minimum=1)
WS_LOBBY_MAX_DROPPED = env_int("WS_LOBBY_MAX_DROPPED", 50, minimum=1)
# Open WebSockets per client address and per user in one process (over it: close 4029); 0 = no limit. A player has a
# match, a lobby and a matchmaking socket, a few tabs; an address may be a household or a school behind one NAT.
WS_MAX_CONNECTIONS_PER_ADDRESS = env_int("WS_MAX_CONNECTIONS_PER_ADDRESS", 64, minimum=0)
WS_MAX_CONNECTIONS_PER_USER = env_int("WS_MAX_CONNECTIONS_PER_USER", 16, minimum=0)
# --- end of WebSocket bounds ---

# The docs pages render descriptions as Markdown: examples go in code spans, and the hook escapes any other `<...>`
# (gameserver/api_docs.py). Swagger UI and ReDoc come from drf-spectacular-sidecar, served with the static files;
# ReDoc's template is ours (templates/api/redoc.html) without the web fonts drf-spectacular's would load.
SPECTACULAR_SETTINGS = {
    "TITLE": "Game server API",
    "DESCRIPTION": "Accounts, matches, lobbies and matchmaking. `POST /api/auth/login/` answers `{\"token\": <key>, "
    "\"user\": {...}}`: send `Authorization: Token <key>` with every call. In the browser the site's session cookie "
    "works too (unsafe methods then also send the `csrftoken` cookie back as `X-CSRFToken`).\n\n"
    "Errors are JSON: `{\"error\": <stable code>, \"message\": <readable text>, \"fields\": {<field>: [messages]}}`, "
    'for example `{"error": "validation_error", "message": "Some fields are invalid.", '
    '"fields": {"size": ["Ensure this value is less than or equal to 64."]}}`.\n\n'
    f"Any endpoint answers 413 `request_too_large` to a body over {MAX_REQUEST_BYTES} bytes, "
    f"414 `query_too_long` to a query string over {MAX_QUERY_STRING_BYTES} bytes, and 431 `headers_too_large` to "
    "headers over 16 KiB or 500 lines, before reading the request; JSON nested deeper than 1024 levels is 400 "
    "`parse_error`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # validatorUrl: Swagger UI would otherwise send the schema's address to validator.swagger.io for a badge.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "gameserver.api_docs.escape_descriptions",
    ],
}

# Behind a TLS-terminating proxy in production; PROXY_SSL_HEADER=false when daphne itself terminates TLS.
if PRODUCTION:
    if env_bool("PROXY_SSL_HEADER", True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a one-way commitment for the whole domain; it stays the operator's explicit choice.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]

# Observability (docs/operations.md, "Metrics" and "Logs"). GET /metrics answers only requests that send
# `Authorization: Bearer <METRICS_TOKEN>`; unset, it answers 404 to everyone. Scrape each process at its own address.
METRICS_TOKEN = env_str("METRICS_TOKEN")
if PRODUCTION and METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters long in production.")
# After SIGTERM and the handover, keep answering HTTP (readiness 503, "draining") this many seconds before exiting, so
# that a balancer polling /health/ready takes the process out of rotation before it is gone.
SHUTDOWN_DRAIN_SECONDS = env_int("SHUTDOWN_DRAIN_SECONDS", 0, minimum=0, maximum=300)
# "plain" lines, or "json": one object per line with time, level, logger, process, match_id, user_id, message.
LOG_FORMAT = env_choice("LOG_FORMAT", "plain", {"plain", "json"})

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "gameserver.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d%(context)s %(message)s"},
        "json": {"()": "gameserver.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO").upper()},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
