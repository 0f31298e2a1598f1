# contact-sync worker image. The same image runs the worker (default), Flower and the CLI:
#   docker build -t contact-sync .
#   docker run --rm -e ACTIVECAMPAIGN_URL=... -e ACTIVECAMPAIGN_API_TOKEN_FILE=/run/secrets/... contact-sync
# No secret is baked in: the token comes from a file mounted at run time (compose `secrets:`)
# or from the environment. docker-compose.yml shows the whole stack; ops/runbook.md runs it.

FROM python:3.11-slim AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed UID, so that a token file on the host can be made readable to this user alone
# (compose secrets are bind mounts and keep the host file's owner and mode).
RUN groupadd --system --gid 10001 contact-sync \
    && useradd --system --uid 10001 --gid contact-sync --home-dir /app \
       --no-create-home --shell /usr/sbin/nologin contact-sync

WORKDIR /app
COPY pyproject.toml README.md ./
COPY worker ./worker
COPY producers ./producers
COPY ops/fake_activecampaign ./ops/fake_activecampaign
RUN pip install ".[flower]"

# Celery warns when it runs as root, and a worker needs no privileges at all.
USER contact-sync

# SIGTERM is Celery's warm shutdown: running tasks finish. Give the container time for it
# (compose: stop_grace_period).
STOPSIGNAL SIGTERM
CMD ["celery", "-A", "worker", "worker", "--concurrency", "4"]


# The example apps for `docker compose --profile dev`: Flask and Django on top of the runtime.
FROM runtime AS dev
USER root
RUN pip install ".[flask,django]"
COPY --chown=contact-sync:contact-sync examples ./examples
USER contact-sync


# The last stage is what a plain `docker build .` produces: the runtime image, without the
# examples and their frameworks.
FROM runtime
