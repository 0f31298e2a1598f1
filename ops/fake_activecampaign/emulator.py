"""`FakeActiveCampaign`: the emulator's lifecycle, serving from a daemon thread."""

from __future__ import annotations

import threading
from types import TracebackType

from fake_activecampaign.admin import Admin, is_admin_path
from fake_activecampaign.api import Api
from fake_activecampaign.auth import ApiToken
from fake_activecampaign.bulk_runner import BulkImport
from fake_activecampaign.bulk_settings import DEFAULT_SPEED_PER_S
from fake_activecampaign.exchange import Reply, Request
from fake_activecampaign.faults import Faults
from fake_activecampaign.ratelimit import ArrivalWindow
from fake_activecampaign.server import EmulatorHTTPServer
from fake_activecampaign.state import AccountState
from fake_activecampaign.traffic import Traffic

__all__ = ["FakeActiveCampaign"]

_POLL_INTERVAL_S = 0.05  # how quickly serve_forever notices stop()
_JOIN_TIMEOUT_S = 5.0


class FakeActiveCampaign:
    """An in-process ActiveCampaign account on `host:port` (port 0 picks a free one).

    `rate_limit` is requests per second for the whole account (0 disables it),
    `latency_ms` is added before every API answer, `error_rate` is the fraction of API
    requests answered 503, drawn from `random.Random(seed)`. Bulk imports are applied in
    the background at `bulk_speed_per_s` contacts per second (> 0; changeable through
    `POST /_emulator/bulk`). All state is thread-safe.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_token: str = "test-token",  # noqa: S107 - the emulator's well-known fake token
        rate_limit: float = 5.0,
        latency_ms: float = 0,
        error_rate: float = 0.0,
        seed: int | None = None,
        bulk_speed_per_s: float = DEFAULT_SPEED_PER_S,
    ) -> None:
        self._host = host
        self._port = port
        self._token = ApiToken(api_token)
        self._state = AccountState()
        self._traffic = Traffic()
        self._window = ArrivalWindow(rate_limit)
        self._faults = Faults(latency_ms=latency_ms, error_rate=error_rate, seed=seed)
        self._bulk = BulkImport(
            state=self._state, traffic=self._traffic, speed_per_s=bulk_speed_per_s
        )
        self._stopping = threading.Event()
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. "http://127.0.0.1:43123"; known once started."""
        if self._url is None:
            raise RuntimeError("FakeActiveCampaign is not started")
        return self._url

    def start(self) -> FakeActiveCampaign:
        """Bind and serve in a daemon thread. Returns self."""
        if self._server is not None:
            raise RuntimeError("FakeActiveCampaign already started")
        server = EmulatorHTTPServer((self._host, self._port))
        self._url = f"http://{self._host}:{server.server_port}"
        api = Api(
            state=self._state,
            traffic=self._traffic,
            window=self._window,
            faults=self._faults,
            token=self._token,
            bulk=self._bulk,
            base_url=self._url,
            wait=self._stopping.wait,
        )
        admin = Admin(
            state=self._state,
            traffic=self._traffic,
            window=self._window,
            faults=self._faults,
            token=self._token,
            bulk=self._bulk,
            reset=self.reset,
        )

        def dispatch(request: Request) -> Reply:
            return admin.handle(request) if is_admin_path(request.path) else api.handle(request)

        server.dispatch = dispatch
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"fake-activecampaign:{server.server_port}",
            daemon=True,
        )
        self._thread.start()
        self._bulk.start(self._stopping)
        return self

    def stop(self) -> None:
        """Stop serving and close every connection; hung and sleeping requests end too."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(_JOIN_TIMEOUT_S)
        self._bulk.join()
        self._server = self._thread = None

    def reset(self) -> None:
        """Forget contacts, catalogs, bulk batches, log and stats; restore the constructed
        fields, faults, bulk settings and token."""
        self._bulk.reset()
        self._state.reset()
        self._traffic.reset()
        self._window.reset()
        self._faults.reset()
        self._token.reset()

    def __enter__(self) -> FakeActiveCampaign:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
