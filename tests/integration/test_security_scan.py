"""Security: the token in tracebacks with locals and at DEBUG level, TLS verification, and
password-protected and TLS Redis URLs for producers and workers.

`test_logs_and_secrets.py` already scans worker output, dead letters, task messages, pub/sub
(Celery events) and CLI output at INFO level, and plain tracebacks of transport errors;
`test_flower.py` scans Flower's API. This module adds what those leave out.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import ssl
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import structlog

from fake_activecampaign import EmulatorClient, FakeActiveCampaign
from producers import ContactSyncProducer
from tests._redis_server import free_port
from tests.integration._harness import TOKEN, WorkerPool, drained, wait_until
from tests.integration.test_logs_and_secrets import _busy_run, _RedisWatcher
from worker import cli
from worker.client import ActiveCampaignClient
from worker.errors import ApiError, ApiTransportError
from worker.keys import Keys
from worker.settings import Secret

REPO = Path(__file__).resolve().parents[2]


# -- tracebacks with locals --------------------------------------------------------------


def _with_locals(error: BaseException) -> list[str]:
    """The error as stdlib and structlog render it with every frame's local variables."""
    stdlib = "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )
    as_dict = structlog.tracebacks.ExceptionDictTransformer(show_locals=True)(
        (type(error), error, error.__traceback__)
    )
    rendered = structlog.processors.dict_tracebacks(None, "error", {"exc_info": error})
    return [stdlib, json.dumps(as_dict, default=repr), json.dumps(rendered, default=repr)]


NON_LATIN1_TOKEN = "tok€n-0123456789abcdef-DO-NOT-LEAK"


def _error_from(client: ActiveCampaignClient) -> ApiError:
    """The ApiError a sync raises, caught where a worker would (no token in this frame)."""
    try:
        client.sync_contact({"email": "jo@example.com", "firstName": "Jo"})
    except ApiError as error:
        return error
    raise AssertionError("the request did not fail")


@pytest.mark.parametrize(
    "failure",
    [
        "forbidden",
        "server_error",
        "rate_limited",
        "rejected",
        "timeout",
        "reset",
        "refused",
        "non_latin1_token",
    ],
)
def test_tracebacks_with_locals_never_show_the_token(
    emulator: FakeActiveCampaign, emulator_admin: EmulatorClient, failure: str
) -> None:
    """Every error the client raises, rendered with each frame's locals (stdlib and structlog), holds no token."""
    url, token = emulator.url, TOKEN
    if failure == "forbidden":
        emulator_admin.set_token("another-token")
    elif failure == "server_error":
        emulator_admin.set_faults(force_status={"status": 503, "count": 1})
    elif failure == "rate_limited":
        emulator_admin.set_faults(force_status={"status": 429, "count": 1, "retry_after": "2"})
    elif failure == "rejected":
        emulator_admin.set_faults(reject_emails=["^jo@"])
    elif failure == "timeout":
        emulator_admin.set_faults(outage={"mode": "hang", "seconds": None}, hang_s=2)
    elif failure == "reset":
        emulator_admin.set_faults(outage={"mode": "reset", "seconds": None})
    elif failure == "refused":
        url = f"http://127.0.0.1:{free_port()}"
    else:
        # Settings refuse such a token now; before, http.client's UnicodeEncodeError escaped
        # from inside urllib3 with the token in its args and in its frames' locals.
        token = NON_LATIN1_TOKEN
    client = ActiveCampaignClient(url, Secret(token), timeout_s=0.5)
    try:
        error = _error_from(client)
    finally:
        client.close()
    rendered = _with_locals(error)
    assert "payload" in rendered[0], "locals were not rendered"
    for text in rendered:
        assert token not in text
    if failure == "non_latin1_token":
        assert isinstance(error, ApiTransportError)
        assert str(error) == "transport error: UnicodeEncodeError"


# -- DEBUG level -------------------------------------------------------------------------


@pytest.fixture
def worker_env(worker_env: dict[str, str]) -> dict[str, str]:
    """Workers in this module log at DEBUG, where Celery and kombu print the most."""
    return {**worker_env, "CONTACT_SYNC_LOG_LEVEL": "DEBUG"}


def _json_documents(blobs: list[bytes]) -> Iterator[Any]:
    """Every dict inside every blob that is JSON (task messages, Celery events)."""
    for blob in blobs:
        try:
            stack = [json.loads(blob)]
        except ValueError:
            continue
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                yield item
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)


@pytest.mark.slow
def test_at_debug_level_the_token_and_whole_emails_appear_nowhere(
    workers: WorkerPool,
    producer: ContactSyncProducer,
    emulator_admin: EmulatorClient,
    redis_conn: redis.Redis,
    keys: Keys,
    key_prefix: str,
) -> None:
    """With CONTACT_SYNC_LOG_LEVEL=DEBUG: no token in output, task messages, Celery events or dead letters; emails masked in output, argsrepr and events."""
    watcher = _RedisWatcher(redis_conn, key_prefix)
    try:
        worker = _busy_run(workers, producer, emulator_admin, redis_conn, keys, watch=watcher)
        watcher()
    finally:
        watcher.close()

    output = worker.log_path.read_bytes()
    assert b'"level": "debug"' in output, "DEBUG logging did not take effect"
    assert TOKEN.encode() not in output
    for email in ("ok1@example.com", "reject.me@example.com"):
        assert email.encode() not in output, email

    seen = b"\n".join(watcher.blobs)
    assert TOKEN.encode() not in seen
    documents = list(_json_documents(watcher.blobs))
    argsreprs = {
        d["argsrepr"] for d in documents if "argsrepr" in d and "lease" in d.get("kwargsrepr", "")
    }
    assert argsreprs, "no sync_contact task message was seen"
    assert all(re.fullmatch(r"\['[a-z]\*\*\*@example\.com'\]", text) for text in argsreprs)
    events = [d for d in documents if str(d.get("type", "")).startswith("task-")]
    assert {"task-sent", "task-received", "task-succeeded"} <= {d["type"] for d in events}
    for event in events:
        for name in ("args", "kwargs"):
            assert "@example.com" not in str(event.get(name, "")).replace("***@", ""), event
    for _, fields in redis_conn.xrange(keys.dead):
        assert all(TOKEN.encode() not in value for value in fields.values())


# -- TLS verification --------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A throwaway CA and a certificate for 127.0.0.1 and localhost, made with openssl."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    where = tmp_path_factory.mktemp("tls")
    ca, ca_key = where / "ca.crt", where / "ca.key"
    cert, key, csr = where / "server.crt", where / "server.key", where / "server.csr"
    ext = where / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    commands = [
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(ca_key),
            "-out",
            str(ca),
            "-subj",
            "/CN=contact-sync test CA",
        ],
        [
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(csr),
            "-subj",
            "/CN=127.0.0.1",
        ],
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            str(csr),
            "-CA",
            str(ca),
            "-CAkey",
            str(ca_key),
            "-CAcreateserial",
            "-out",
            str(cert),
            "-days",
            "1",
            "-extfile",
            str(ext),
        ],
    ]
    for command in commands:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    return Certificates(ca, cert, key)


class _Accepting(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"contact": {"id": "1"}}'
        self.send_response(201)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def https_url(certificates: Certificates) -> Iterator[str]:
    """An HTTPS server on loopback whose certificate only our throwaway CA vouches for."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Accepting)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert, certificates.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_client_verifies_tls_certificates(
    https_url: str, certificates: Certificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client's session has verify=True: an unknown CA fails as a transport error; trusting the CA (REQUESTS_CA_BUNDLE) works."""
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    client = ActiveCampaignClient(https_url, Secret(TOKEN), timeout_s=5)
    try:
        assert client.session.verify is True
        with pytest.raises(ApiTransportError, match="SSLError"):
            client.sync_contact({"email": "jo@example.com"})
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(certificates.ca))
        assert client.sync_contact({"email": "jo@example.com"}).status == 201
    finally:
        client.close()


def test_tls_verification_is_never_turned_off_in_the_code() -> None:
    """No verify=False, CERT_NONE or ssl_cert_reqs=none anywhere in worker/, producers/ or ops/."""
    pattern = re.compile(r"verify\s*=\s*False|CERT_NONE|ssl_cert_reqs\s*=\s*['\"]?none", re.I)
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for folder in ("worker", "producers", "ops")
        for path in sorted((REPO / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert offenders == []


# -- Redis with a password, and over TLS -------------------------------------------------

REDIS_PASSWORD = "redis-pass-1234567890-DO-NOT-LEAK"


@dataclass
class SecureRedis:
    url: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]  # what clients need besides the URL


def _start_redis(args: list[str], url: str, workdir: Path, env: dict[str, str]) -> SecureRedis:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    command = [
        binary,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=0.5) as client:
                if client.ping():
                    return SecureRedis(url, process, env)
        except redis.ConnectionError:
            time.sleep(0.1)
    process.kill()
    log = (workdir / "redis.log").read_text(errors="replace")[-2000:]
    raise AssertionError(f"redis-server did not start: {command}\n{log}")


@pytest.fixture(params=["password", "tls", "tls_bare_url"])
def secure_redis(
    request: pytest.FixtureRequest,
    certificates: Certificates,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[SecureRedis]:
    """A private redis-server that requires a password; for "tls*" it speaks only TLS.

    "tls" names the CA in the URL (what docs/security.md recommends); "tls_bare_url" is a
    plain ``rediss://`` URL whose CA comes from OpenSSL's SSL_CERT_FILE, as a system CA would.
    """
    port = free_port()
    args = ["--requirepass", REDIS_PASSWORD]
    env: dict[str, str] = {}
    if request.param == "password":
        args += ["--port", str(port)]
        url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    else:
        args += [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(certificates.cert),
            "--tls-key-file",
            str(certificates.key),
            "--tls-ca-cert-file",
            str(certificates.ca),
            "--tls-auth-clients",
            "no",
        ]
        url = f"rediss://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
        if request.param == "tls":
            url += f"?ssl_cert_reqs=required&ssl_ca_certs={certificates.ca}"
        else:
            env["SSL_CERT_FILE"] = str(certificates.ca)
            monkeypatch.setenv("SSL_CERT_FILE", str(certificates.ca))
    server = _start_redis(args, url, tmp_path, env)
    yield server
    server.process.terminate()
    server.process.wait(10)


@pytest.mark.slow
def test_password_and_tls_redis_urls_work_for_producers_workers_and_the_cli(
    secure_redis: SecureRedis,
    workers: WorkerPool,
    emulator_admin: EmulatorClient,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """redis://:password@ and rediss:// (CA-verified) carry events from a producer through a real worker to the API; the password is never logged."""
    url = secure_redis.url
    plain = url.split("@", 1)[1]
    with pytest.raises(redis.RedisError):  # the server really insists on its password
        redis.Redis.from_url(f"{url.split(':', 1)[0]}://{plain}").ping()
    (worker,) = workers.start(
        1, CONTACT_SYNC_REDIS_URL=url, CONTACT_SYNC_DEBOUNCE_S="0.2", **secure_redis.env
    )
    producer = ContactSyncProducer(url, key_prefix, source="tests")
    try:
        producer.contact_changed("secure@example.com", first_name="Locked", last_name="Down")
        producer.send_many([{"email": f"secure{n}@example.com", "phone": str(n)} for n in range(3)])
    finally:
        producer.close()
    client = redis.Redis.from_url(url)
    try:
        wait_until(
            lambda: len(emulator_admin.contacts()) == 4 and drained(client, Keys(key_prefix)),
            timeout_s=30,
            message="delivery through the protected Redis",
        )
        # Celery's queues live on the protected server too (the broker URL is the same).
        assert list(client.scan_iter(match=f"{key_prefix}:kombu:*"))
    finally:
        client.close()
    assert emulator_admin.contacts()["secure@example.com"]["lastName"] == "Down"

    monkeypatch.setenv("CONTACT_SYNC_REDIS_URL", url)
    monkeypatch.setenv("CONTACT_SYNC_KEY_PREFIX", key_prefix)
    capsys.readouterr()
    assert cli.main(["status", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["dead_letters"] == 0
    assert REDIS_PASSWORD not in out + err
    worker.stop()
    assert REDIS_PASSWORD not in worker.output()
    assert TOKEN not in worker.output()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"ssl_cert_reqs": ssl.CERT_REQUIRED}),
        ("?ssl_ca_certs=/etc/ca.pem", {"ssl_ca_certs": "/etc/ca.pem"}),  # redis-py: required
        (
            "?ssl_cert_reqs=required&ssl_ca_certs=/etc/ca.pem",
            {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": "/etc/ca.pem"},
        ),
    ],
    ids=["bare", "ca-only", "explicit"],
)
def test_the_celery_broker_never_skips_certificate_checks_for_rediss(
    worker_env: dict[str, str], query: str, expected: dict[str, Any]
) -> None:
    """kombu alone would connect to a bare rediss:// URL with CERT_NONE; our app asks for CERT_REQUIRED."""
    script = (
        "import json; from worker import app; "
        "print(json.dumps(app.connection_for_write().ssl))"  # CERT_* are ints
    )
    env = {**worker_env, "CONTACT_SYNC_REDIS_URL": f"rediss://:pw@127.0.0.1:6380/0{query}"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected
