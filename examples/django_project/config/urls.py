from __future__ import annotations

from django.urls import path

from accounts import views

urlpatterns = [
    path("customers/", views.create_customer, name="create-customer"),
    path("partners/", views.partner_signup, name="partner-signup"),
]
