"""``make bench``: contact-sync against the naive one-Celery-task-per-event way, same run.

Modules: ``run`` (the command and its table), ``figures`` (one function per measured
figure), ``workload`` (the generated traffic and the exact count of requests it needs),
``stats`` (percentiles, rates, the table: pure functions), ``procs`` (redis-server, the
emulator and Celery worker processes), ``naive_app`` (the baseline Celery app), ``chart``
(the PNG), ``profile`` (pyinstrument over the hot paths), ``footprint`` (requests per change
with tags, lists and fields by name), ``ingest_while_syncing`` (the pump's ingestion while
syncs run at a high rate limit), ``backlog`` (bulk import at the real limits),
``destinations`` (2 destinations against 1 at the real 5/s), ``replicas`` (what
``CONTACT_SYNC_PRODUCER_MIN_REPLICAS`` costs a producer).
"""
