"""A Flask app whose signup route reports the new contact to contact-sync.

flask --app app run          # from examples/flask_app
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, request

from producers import EnqueueError, InvalidContactEvent
from producers.flask import ContactSync

# Module level for the app-factory pattern: the extension holds no app, init_app() stores
# each app's producer in app.extensions, and views reach it through current_app.
contact_sync = ContactSync()

# Partners live in an ActiveCampaign account of their own. The name must be one of the
# workers' destinations (CONTACT_SYNC_DESTINATIONS_FILE); an event naming one they do not
# know is dead-lettered as unknown_destination.
PARTNERS_DESTINATION = "partners"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. CONTACT_SYNC_* keys in ``config`` win over the environment."""
    app = Flask(__name__)
    app.config.update(CONTACT_SYNC_SOURCE="flask:example")
    app.config.update(config or {})
    contact_sync.init_app(app)

    @app.post("/signup")
    def signup() -> tuple[dict[str, Any], int]:
        """Form or JSON fields: email (required), first_name, last_name, birthday (YYYY-MM-DD),
        company, newsletter (a ticked checkbox, or true in JSON)."""
        form = request.get_json(silent=True) or request.form
        # A real signup would create the user here; the event then describes that user.
        event_id = contact_sync.contact_changed(
            str(form.get("email", "")),
            first_name=form.get("first_name") or None,  # missing or empty: unchanged
            last_name=form.get("last_name") or None,
            fields={6: form["birthday"]} if form.get("birthday") else None,
            # Every signup starts a trial; the tag starts the trial automation.
            tags={"trial": True},
            # Only a ticked box subscribes; an unticked one at signup changes nothing.
            lists={"Newsletter": "subscribed"} if form.get("newsletter") else None,
            account=form.get("company") or None,  # the contact's company, found or created
        )
        return {"event_id": event_id}, 202

    @app.post("/partners")
    def partner_signup() -> tuple[dict[str, Any], int]:
        """A partner programme signup, sent to the partners' ActiveCampaign account.
        Form or JSON fields: email (required), first_name, company."""
        form = request.get_json(silent=True) or request.form
        event_id = contact_sync.contact_changed(
            str(form.get("email", "")),
            first_name=form.get("first_name") or None,
            account=form.get("company") or None,
            tags={"partner": True},
            destination=PARTNERS_DESTINATION,  # without it: the default account
        )
        return {"event_id": event_id}, 202

    @app.errorhandler(InvalidContactEvent)
    def invalid_contact(exc: InvalidContactEvent) -> tuple[dict[str, Any], int]:
        # marshmallow's per-field messages, e.g. {"email": ["Not a valid email address."]}
        return {"errors": exc.messages}, 400

    @app.errorhandler(EnqueueError)
    def redis_unavailable(exc: EnqueueError) -> tuple[dict[str, Any], int]:
        app.logger.error("contact change not enqueued: %s", exc)
        return {"error": "temporarily unavailable, please retry"}, 503

    return app
