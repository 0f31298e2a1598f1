"""Settings of the example project: sqlite, one app, and contact-sync from the environment."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# An example: the fallback key is for a laptop, never for a deployment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-key-change-me")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = ["accounts.apps.AccountsConfig"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "config.urls"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
        # Each request is one transaction, so a customer's event is written when the
        # request's transaction commits, and never for a request that rolls back.
        "ATOMIC_REQUESTS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# Every key is optional: producers.django falls back to CONTACT_SYNC_REDIS_URL and
# CONTACT_SYNC_KEY_PREFIX itself. Reading them here makes the configuration visible.
CONTACT_SYNC = {
    "REDIS_URL": os.environ.get("CONTACT_SYNC_REDIS_URL", "redis://localhost:6379/0"),
    "KEY_PREFIX": os.environ.get("CONTACT_SYNC_KEY_PREFIX", "contact-sync"),
    "SOURCE": "django:example",
}
