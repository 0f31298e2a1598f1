from __future__ import annotations

from django.db import models


class Customer(models.Model):
    email = models.EmailField(max_length=255, unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    birthday = models.DateField(null=True, blank=True)
    company = models.CharField(max_length=255, blank=True)
    # Consent, as the signup form's checkbox recorded it; unticking it later unsubscribes.
    wants_newsletter = models.BooleanField(default=False)
    # Every customer starts on a trial; billing code clears this when the trial ends.
    is_trial = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.email
