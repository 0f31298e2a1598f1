from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from producers import InvalidContactEvent
from producers.django import contact_changed_on_commit

from accounts.forms import CustomerForm, PartnerForm

# Partners live in an ActiveCampaign account of their own. The name must be one of the
# workers' destinations (CONTACT_SYNC_DESTINATIONS_FILE); an event naming one they do not
# know is dead-lettered as unknown_destination.
PARTNERS_DESTINATION = "partners"


# A machine-to-machine endpoint in this example, so curl can call it; a browser form
# would keep Django's CSRF protection.
@csrf_exempt
@require_POST
def create_customer(request: HttpRequest) -> JsonResponse:
    """POST /customers/ with form fields email, first_name, last_name, birthday (YYYY-MM-DD),
    company, and wants_newsletter (a checkbox: present means ticked)."""
    form = CustomerForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    try:
        # The contact-sync schema has the last word on what a contact may hold. If it
        # refuses the contact, save() raises and this inner block rolls the row back.
        with transaction.atomic():
            customer = form.save()
    except InvalidContactEvent as exc:
        return JsonResponse({"errors": exc.messages}, status=400)
    return JsonResponse({"id": customer.pk, "email": customer.email}, status=201)


@csrf_exempt
@require_POST
def partner_signup(request: HttpRequest) -> JsonResponse:
    """POST /partners/ with form fields email, first_name, company: a partner programme
    signup, reported to the partners' ActiveCampaign account. No model: the helper does
    what sync_on_save does for a Customer, for one call."""
    form = PartnerForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    try:
        # Validated now; written when the request's transaction (ATOMIC_REQUESTS) commits.
        event_id = contact_changed_on_commit(
            form.cleaned_data["email"],
            first_name=form.cleaned_data["first_name"] or None,  # empty: unchanged
            account=form.cleaned_data["company"] or None,
            tags={"partner": True},
            destination=PARTNERS_DESTINATION,
        )
    except InvalidContactEvent as exc:
        return JsonResponse({"errors": exc.messages}, status=400)
    return JsonResponse({"event_id": event_id}, status=202)
