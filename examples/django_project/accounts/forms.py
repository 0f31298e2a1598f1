from __future__ import annotations

from django import forms

from accounts.models import Customer


class CustomerForm(forms.ModelForm):
    class Meta:
        model = Customer
        fields = ["email", "first_name", "last_name", "birthday", "company", "wants_newsletter"]


class PartnerForm(forms.Form):
    email = forms.EmailField(max_length=255)
    first_name = forms.CharField(max_length=100, required=False)
    company = forms.CharField(max_length=255, required=False)
