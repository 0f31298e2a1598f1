from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from producers import InvalidContactEvent

from accounts.forms import CustomerForm


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
