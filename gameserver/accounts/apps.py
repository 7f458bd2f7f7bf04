from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "gameserver.accounts"
    label = "accounts"
    verbose_name = "Accounts"
