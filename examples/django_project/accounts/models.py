from __future__ import annotations

from django.db import models


class Customer(models.Model):
    email = models.EmailField(max_length=255, unique=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    birthday = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email
