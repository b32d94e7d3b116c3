from django.apps import AppConfig


class RightsConfig(AppConfig):
    name = "rights"
    default_auto_field = "django.db.models.BigAutoField"
