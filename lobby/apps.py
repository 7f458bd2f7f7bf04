from django.apps import AppConfig


class LobbyConfig(AppConfig):
    name = "lobby"
    verbose_name = "Lobbies, matchmaking and ratings"

    def ready(self) -> None:
        # Connects the match_finished receiver that updates ratings.
        from lobby import ratings  # noqa: F401
