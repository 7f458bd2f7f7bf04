from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    name = "gameserver.accounts"
    label = "accounts"
    verbose_name = "Accounts"


class GameAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with our site (gameserver/accounts/adminsite.py): its login is throttled."""

    default = False  # named in INSTALLED_APPS; AccountsConfig stays this module's default
    default_site = "gameserver.accounts.adminsite.GameAdminSite"
