from __future__ import annotations

from django import forms

from accounts.models import Customer


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["email", "first_name", "last_name", "birthday", "company", "wants_newsletter"]
