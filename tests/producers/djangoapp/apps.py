from __future__ import annotations

from django.apps import AppConfig


class DjangoAppConfig(AppConfig):
    name = "tests.producers.djangoapp"
    label = "contact_sync_testapp"
    default_auto_field = "django.db.models.AutoField"
