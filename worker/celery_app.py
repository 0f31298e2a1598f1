"""The Celery app: ``celery -A worker worker`` and ``celery -A worker flower`` load it."""

from __future__ import annotations

import logging
import socket
import ssl
import sys
from functools import cached_property
from typing import Any

import celery.apps.worker
import redis
from celery import Celery, signals
from celery.apps.worker import Worker as _CeleryWorker

from worker._kombu_fixes import patch_redis_channel_close
from worker.errors import ConfigError
from worker.keys import Keys
from worker.logging import (
    bind_task_context,
    celery_setup_logging,
    clear_task_context,
    get_logger,
)
from worker.settings import Settings

__all__ = ["app", "settings"]


def _load_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigError as exc:
        # One line that names the variable, and a non-zero exit: no traceback to dig through.
        raise SystemExit(f"contact-sync: configuration error: {exc}") from None


settings = _load_settings()


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


def _say_as_log(msg: str, f: Any = None) -> None:
    logging.getLogger("celery.apps.worker").warning(msg.strip())


# Celery prints shutdown notices ("worker: Warm shutdown") with a bare print to stderr; route
# them through logging so that every line a worker writes is a JSON object.
celery.apps.worker.safe_say = _say_as_log
# Without it a Redis restart can make the worker exit instead of reconnecting (see module).
patch_redis_channel_close()


class ContactSyncCelery(Celery):  # type: ignore[misc]
    @cached_property
    def Worker(self) -> Any:
        return self.subclass_with_self(JsonWorker)


app = ContactSyncCelery("contact_sync", broker=settings.celery_broker_url, include=["worker.tasks"])
app.conf.update(
    # Ack after the task ran, not when it was received: a crash mid-task re-delivers it.
    task_acks_late=True,
    # ...and a pool child killed by a signal or the OOM killer counts as "not done" too.
    task_reject_on_worker_lost=True,
    # Take one message at a time: sync tasks wait on the rate limiter, so prefetched messages
    # would sit idle behind them while another worker could run them.
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
    # A sync never runs longer than its lease; a hung one is killed and its lease expires.
    task_time_limit=int(settings.lease_s + 30),
)
if settings.celery_broker_url.startswith(("redis://", "rediss://", "unix://")):
    # Keep kombu's keys under our prefix too, so several deployments can share one Redis.
    app.conf.broker_transport_options = {"global_keyprefix": f"{settings.key_prefix}:kombu:"}
if settings.celery_broker_url.startswith("rediss://"):
    # kombu connects to a rediss:// URL without ssl_* parameters with certificate checks off
    # (it only logs a warning). Require them, as redis-py (producers, the merge store) does
    # by default. ssl_* parameters in the URL still take precedence.
    app.conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}


@signals.setup_logging.connect
def _setup_logging(**_: Any) -> None:
    celery_setup_logging(settings)


@signals.celeryd_init.connect
def _early_logging(**_: Any) -> None:
    # Runs before Celery's privilege check, so even its warnings come out as JSON lines.
    celery_setup_logging(settings)
    logging.captureWarnings(True)


@signals.worker_init.connect
def _require_api_settings(**_: Any) -> None:
    try:
        settings.require_api()
    except ConfigError as exc:
        print(f"contact-sync: configuration error: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None


@signals.worker_init.connect
def _migrate_layout(**_: Any) -> None:
    """Convert an older contact hash layout before this worker takes tasks (the pump checks too)."""
    from worker.runtime import redis_client
    from worker.store import MergeStore

    log = get_logger("contact_sync.worker")
    client = redis_client(settings)
    try:
        migrated = MergeStore(client, Keys(settings.key_prefix)).migrate_layout()
    except redis.RedisError as exc:
        log.warning("store.layout_check_failed", error=type(exc).__name__, retry="next pump run")
        return
    finally:
        client.close()
    if migrated is not None:
        log.info("store.layout_checked", migrated=migrated)


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    bind_task_context(task_id or "", getattr(task, "name", "") or "")


@signals.task_postrun.connect
def _unbind_task(**_: Any) -> None:
    clear_task_context()


_trigger: Any = None


@signals.worker_ready.connect
def _start_pump_trigger(**_: Any) -> None:
    global _trigger
    from worker.runtime import redis_client
    from worker.tasks import pump_task_apply
    from worker.trigger import PumpTrigger

    _trigger = PumpTrigger(
        redis_client(settings),
        Keys(settings.key_prefix),
        pump_task_apply,
        node=socket.gethostname(),
    )
    _trigger.start()


@signals.worker_shutting_down.connect
def _stop_pump_trigger(**_: Any) -> None:
    if _trigger is not None:
        _trigger.stop()
