"""``contact-sync metrics``: a Prometheus exporter for the figures in Redis."""

from __future__ import annotations

from importlib.util import find_spec

import click

from worker.cli.context import EXIT_FAILURE, CliState, error, one_line, pass_state

__all__ = ["metrics"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=9808, show_default=True, help="0 picks a free port.")
@pass_state
def metrics(state: CliState, host: str, port: int) -> int:
    """Serve Prometheus metrics read from Redis, labelled by destination."""
    if find_spec("prometheus_client") is None:  # the optional "metrics" extra
        error("metrics needs prometheus-client: pip install 'contact-sync[metrics]'")
        return EXIT_FAILURE
    # Imported here: only this command needs the exporter and the worker's logging.
    from worker.logging import celery_setup_logging
    from worker.metrics import serve_metrics

    celery_setup_logging(state.settings)  # the exporter's warnings are JSON lines like the worker's
    with state.connect() as client:
        try:
            return serve_metrics(
                client, state.keys, host=host, port=port, destinations=state.destinations
            )
        except OSError as exc:  # the port is taken or the address is not this host's
            error(f"metrics: cannot serve on {host}:{port}: {one_line(exc)}")
            return EXIT_FAILURE
