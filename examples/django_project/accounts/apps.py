from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: models are not loaded before ready() runs.
        from producers.django import sync_on_save

        from accounts.models import Customer

        # Every save of a Customer, from a view, the admin or a shell, reports the contact
        # once the transaction commits. Custom field 6 is the birthday in ActiveCampaign;
        # a birthday of None is left out ("unchanged"). The model is the record: is_trial
        # adds or removes the "trial" tag that starts the trial automation, the consent
        # checkbox subscribes or unsubscribes the "Newsletter" list, and the company is
        # the contact's account (a blank one unlinks it).
        sync_on_save(
            Customer,
            email="email",
            first_name="first_name",
            last_name="last_name",
            fields={6: "birthday"},
            tags={"trial": "is_trial"},
            lists={"Newsletter": "wants_newsletter"},
            account="company",
            dispatch_uid="accounts.customer_contact_sync",
        )
