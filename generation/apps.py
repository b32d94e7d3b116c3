from django.apps import AppConfig


class GenerationConfig(AppConfig):
    name = "generation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from .engine.backends import register_engine

        # Named engines (settings.RIFF_ENGINES): each is its backend with these options.
        # Registered by path, so no process loads torch or diffusers until it builds one.
        for name, spec in settings.RIFF_ENGINES.items():
            options = dict(spec)
            register_engine(name, options.pop("backend"), **options)
