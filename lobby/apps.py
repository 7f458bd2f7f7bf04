from django.apps import AppConfig


class LobbyConfig(AppConfig):
    name = "lobby"
    verbose_name = "Lobbies, matchmaking and ratings"

    def ready(self) -> None:
        # Connect the receivers of games.signals: ratings, lobbies that reopen after their match, match announcements.
        from lobby import ratings, receivers  # noqa: F401
