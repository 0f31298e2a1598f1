"""The Celery app factory: ``create_app(settings)`` builds a configured app with its tasks.

Importing this module reads no environment, patches nothing and never exits: that happens
when a worker starts (``worker.lifecycle``), or when ``celery -A worker`` asks the package
for ``app`` (``app_from_env``). Tests build apps from settings of their own.
"""

from __future__ import annotations

import logging
import ssl
from functools import cached_property
from typing import Any

from celery import Celery, signals
from celery.apps.worker import Worker as _CeleryWorker

from worker.errors import ConfigError
from worker.logging import bind_task_context, celery_setup_logging, clear_task_context
from worker.redis_client import SentinelUrl, is_sentinel_url
from worker.settings import Settings

__all__ = ["ContactSyncCelery", "app_from_env", "create_app"]


class JsonWorker(_CeleryWorker):  # type: ignore[misc]
    """``celery worker`` whose start-up banner is one JSON log line, like everything else."""

    def emit_banner(self) -> None:
        logging.getLogger("contact_sync.worker").info(
            "worker.started hostname=%s concurrency=%s pool=%s queues=%s",
            self.hostname,
            self.concurrency,
            self.pool_cls.__module__ if hasattr(self.pool_cls, "__module__") else self.pool_cls,
            ",".join(sorted(self.app.amqp.queues)),
        )


class ContactSyncCelery(Celery):  # type: ignore[misc]
    """A Celery app that carries contact-sync's validated settings (``app.settings``)."""

    settings: Settings

    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self(JsonWorker)


def create_app(settings: Settings) -> ContactSyncCelery:
    """A Celery app for ``settings``, with the tasks and the worker bootstep registered."""
    from worker.lifecycle import ContactSyncStep
    from worker.tasks import register_tasks

    broker_url = settings.celery_broker_url
    # Our sentinel:// URL names the master; kombu wants one URL per sentinel and the name as
    # a transport option. Both come from the one URL, so the broker follows the same master.
    sentinel = SentinelUrl.parse(broker_url) if is_sentinel_url(broker_url) else None
    app = ContactSyncCelery(
        "contact_sync",
        broker=sentinel.kombu_url() if sentinel else broker_url,
        set_as_current=False,
    )
    app.settings = settings
    app.conf.update(
        # Ack after the task ran, not when it was received: a crash mid-task re-delivers it.
        task_acks_late=True,
        # ...and a pool child killed by a signal or the OOM killer counts as "not done" too.
        task_reject_on_worker_lost=True,
        # Take one message at a time: sync tasks wait on the rate limiter, so prefetched
        # messages would sit idle behind them while another worker could run them.
        worker_prefetch_multiplier=1,
        # Task events feed Flower's live view; sent events show queued tasks as well.
        worker_send_task_events=True,
        task_send_sent_event=True,
        # JSON only: nothing executable crosses the broker.
        task_serializer="json",
        accept_content=["json"],
        # Outcomes go to the logs and the stats hash; no result backend is needed.
        task_ignore_result=True,
        task_default_queue="contact-sync",
        # Our logging setup (structlog JSON) handles Celery's records; keep stdout as it is.
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        broker_connection_retry_on_startup=True,
    )
    if sentinel is not None or broker_url.startswith(("redis://", "rediss://", "unix://")):
        # Keep kombu's keys under our prefix too, so several deployments can share one Redis.
        app.conf.broker_transport_options = {
            "global_keyprefix": f"{settings.key_prefix}:kombu:",
            **(sentinel.kombu_transport_options() if sentinel else {}),
        }
    if broker_url.startswith("rediss://"):
        # kombu connects to a rediss:// URL without ssl_* parameters with certificate checks
        # off (it only logs a warning). Require them, as redis-py (producers, the merge store)
        # does by default. ssl_* parameters in the URL still take precedence.
        app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    register_tasks(app)
    app.steps["worker"].add(ContactSyncStep)
    _connect_logging(settings)
    return app


def app_from_env() -> ContactSyncCelery:
    """The app ``celery -A worker`` runs: settings from the environment, or a clean exit."""
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        # One line that names the variable, and a non-zero exit: no traceback to dig through.
        raise SystemExit(f"contact-sync: configuration error: {exc}") from None
    return create_app(settings)


def _connect_logging(settings: Settings) -> None:
    # Celery's signals are process-wide; dispatch_uid keeps one handler each, so building a
    # second app in a process (tests do) does not log every line twice.
    def setup_logging(**_: Any) -> None:
        celery_setup_logging(settings)

    def early_logging(**_: Any) -> None:
        # Runs before Celery's privilege check, so even its warnings come out as JSON lines.
        celery_setup_logging(settings)
        logging.captureWarnings(True)

    signals.setup_logging.connect(setup_logging, weak=False, dispatch_uid="contact-sync-logging")
    signals.celeryd_init.connect(early_logging, weak=False, dispatch_uid="contact-sync-early")
    signals.task_prerun.connect(_bind_task, dispatch_uid="contact-sync-bind")
    signals.task_postrun.connect(_unbind_task, dispatch_uid="contact-sync-unbind")


def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    bind_task_context(task_id or "", getattr(task, "name", "") or "")


def _unbind_task(**_: Any) -> None:
    clear_task_context()
