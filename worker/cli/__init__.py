"""The ``contact-sync`` command: inspect the pipeline, manage dead letters, enqueue, import.

Operator tools, apart from the engine: the engine never imports this package, and this
package never imports Celery. It reads and writes Redis through the engine's own modules,
so it starts fast and runs on any host that can reach Redis.

    app             the root group and main(): exit statuses, one-line errors
    context         what commands share: settings, Redis, option types, messages
    status          `status`                 metrics    `metrics` (Prometheus exporter)
    dead_letters    `dead-letters ...`       enqueue    `enqueue`
    import_command  `import`                 emulator   `fake-activecampaign`
    importer        validate rows and write them in batches, resumably
    import_source   check an import file; read CSV and JSONL rows
    import_flags    check the column flags of `import` and build the mapping
    import_mapping  turn a row's columns into contact attributes
    render          tables and text;         progress   what `import` shows while it runs
"""

from __future__ import annotations

from worker.cli.app import main

__all__ = ["main"]
