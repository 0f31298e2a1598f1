from __future__ import annotations

from django.db import models


class Customer(models.Model):
    # A CharField, not an EmailField: the tests save bad addresses on purpose.
    email = models.CharField(max_length=255)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, null=True, blank=True)
    birthday = models.DateField(null=True, blank=True)
    plan = models.CharField(max_length=50, blank=True)
    # Feed a tag, a list and the account (sync_on_save's tags=, lists= and account=).
    is_trial = models.BooleanField(default=False)
    wants_newsletter = models.BooleanField(null=True)  # None: never asked
    company = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        app_label = "contact_sync_testapp"
