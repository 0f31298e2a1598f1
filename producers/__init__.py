"""Report contact changes to contact-sync from any Python application.

from producers import ContactSyncProducer
producer = ContactSyncProducer.from_env()
producer.contact_changed("jon@example.com", first_name="John")
"""

from __future__ import annotations

from producers._producer import ContactSyncProducer
from worker.errors import EnqueueError, InvalidContactEvent

__all__ = ["ContactSyncProducer", "EnqueueError", "InvalidContactEvent"]
