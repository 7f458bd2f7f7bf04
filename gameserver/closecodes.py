"""Our WebSocket close codes, for every socket (match, lobby, matchmaking). docs/protocol.md lists them with what a
client should do. Kept apart from the consumers and the transport so that both, and the engine, can import them
without importing each other."""


class CloseCode:
    """Our WebSocket close codes (4000-4999). docs/protocol.md lists them with what a client should do."""

    UNAUTHENTICATED = 4001  # no or bad credentials: log in again, do not retry blindly
    PROTOCOL_VERSION = 4002  # unsupported protocol version: upgrade the client
    FORBIDDEN = 4003  # authenticated but not allowed here (no seat, spectators not allowed, not a member)
    NOT_FOUND = 4004  # no such match or lobby
    TOO_MANY_ERRORS = 4007  # kept sending malformed messages
    RATE_LIMITED = 4008  # sent messages faster than allowed
    MESSAGE_TOO_BIG = 4009  # a message over the size limit
    SERVER_RESTART = 4010  # this process is shutting down: reconnect now, to any process
    REPLACED = 4011  # the same seat was opened by a newer connection
    REVOKED = 4012  # logged out or banned while connected
    MATCH_OVER = 4013  # the match has finished (or was cancelled): nothing more to play here
    KICKED = 4014  # an operator removed this seat from the match (the live-match console)
    TOO_MANY_CONNECTIONS = 4029  # this address or user has too many sockets open on this process already
    # PostgreSQL or Redis, which setting the socket up needs (credentials, tickets, the match, its groups), is
    # unreachable for now: reconnect after a few seconds (as HTTP's 503 + Retry-After). Sent after accepting: ASGI servers cannot answer a WebSocket handshake with a 503, and
    # RFC 6455's own 1013 "Try Again Later" is one servers refuse to send (autobahn: 1000 or 3000-4999 only).
    TRY_AGAIN_LATER = 4503
