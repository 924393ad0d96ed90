"""The Planet client: pagination, retries, Retry-After, error messages, safe order creation, secret hygiene.

HTTP is mocked with respx (unit tests of the client); a few tests use a real socket on 127.0.0.1 to show
that a dropped connection is treated the same way. Sleeping is injected, so nothing here waits for real.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from flowzero.config import Config
from flowzero.errors import AuthError, PlanetError, UsageError
from flowzero.planet.client import PlanetClient
from flowzero.planet.errors import OrderSubmissionUncertain
from flowzero.planet.retry import parse_retry_after

KEY = "PLAK-test-key-0123456789"
BASE = "https://api.planet.test"
API = f"{BASE}/data/v1"
ORDERS = f"{BASE}/compute/ops/orders/v2"
MOSAICS = f"{BASE}/basemaps/v1/mosaics"
BACKOFF = 0.001


class Sleeps(list):
    """Records every wait the client asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def make_client(sleeps: Sleeps, **options: Any) -> PlanetClient:
    settings: dict[str, Any] = {"api_url": API, "orders_url": ORDERS, "basemaps_url": MOSAICS,
                                "timeout": 5.0, "max_retries": 3, "backoff_base": BACKOFF, "sleep": sleeps}
    settings.update(options)
    return PlanetClient(KEY, **settings)


@pytest.fixture
def client(sleeps: Sleeps) -> Iterator[PlanetClient]:
    with make_client(sleeps) as planet:
        yield planet


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def order(order_id: str, state: str = "queued", name: str = "aoi-2024-01") -> dict[str, Any]:
    return {"id": order_id, "name": name, "state": state, "_links": {"_self": f"{ORDERS}/{order_id}"}}


# -- construction and auth -------------------------------------------------------------------------


def test_missing_key_is_an_auth_error_with_a_hint() -> None:
    with pytest.raises(AuthError, match="no Planet API key") as info:
        PlanetClient.from_config(Config())
    assert info.value.hint == "set PL_API_KEY or pass --api-key"


def test_from_config_uses_urls_timeout_and_retries(mock: respx.MockRouter) -> None:
    config = Config(api_key=KEY)
    config.planet.api_url, config.planet.orders_url = "http://127.0.0.1:9/data/v1/", "http://127.0.0.1:9/o"
    config.planet.timeout, config.planet.max_retries = 12.5, 7
    with PlanetClient.from_config(config, backoff_base=BACKOFF) as planet:
        assert planet.api_url == "http://127.0.0.1:9/data/v1"
        assert planet.orders_url == "http://127.0.0.1:9/o"
        assert planet._http.timeout.read == 12.5
        assert planet.policy.max_retries == 7
        assert KEY not in repr(planet)
        route = mock.get("http://127.0.0.1:9/o/abc").respond(200, json=order("abc"))
        planet.get_order("abc")
    sent = route.calls.last.request.headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()  # key as user, empty password


def test_rejected_key_is_an_auth_error_and_not_retried(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.get(f"{ORDERS}/abc").respond(401, json={"message": "Invalid API key"})
    with pytest.raises(AuthError, match="rejected the API key") as info:
        client.get_order("abc")
    assert route.call_count == 1
    assert info.value.status_code == 401
    assert KEY not in str(info.value) and KEY not in (info.value.hint or "")


# -- pagination ------------------------------------------------------------------------------------


def test_search_posts_the_filter_and_follows_next_links(client: PlanetClient, mock: respx.MockRouter) -> None:
    search_filter = {"type": "AndFilter", "config": []}
    first = mock.post(f"{API}/quick-search", params={"_page_size": "2"}).respond(200, json={
        "type": "FeatureCollection", "features": [{"id": "a"}, {"id": "b"}],
        "_links": {"_next": f"{API}/searches/s1/results?_page=p2"}})
    mock.get(f"{API}/searches/s1/results", params={"_page": "p2"}).respond(200, json={
        "features": [{"id": "c"}, {"id": "d"}], "_links": {"_next": f"{API}/searches/s1/results?_page=p3"}})
    mock.get(f"{API}/searches/s1/results", params={"_page": "p3"}).respond(200, json={
        "features": [{"id": "e"}], "_links": {"_next": None}})
    ids = [f["id"] for f in client.search(["PSScene"], search_filter, page_size=2)]
    assert ids == ["a", "b", "c", "d", "e"]
    body = json.loads(first.calls.last.request.content)
    assert body == {"item_types": ["PSScene"], "filter": search_filter}
    assert len(mock.calls) == 3


def test_search_defaults_to_the_largest_page(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.post(f"{API}/quick-search").respond(200, json={"features": [], "_links": {}})
    assert list(client.search(["PSScene"], {})) == []
    assert route.calls.last.request.url.params["_page_size"] == "250"


@pytest.mark.parametrize("size", [0, 251, -5])
def test_search_page_size_is_validated(client: PlanetClient, mock: respx.MockRouter, size: int) -> None:
    with pytest.raises(UsageError, match="page size"):
        client.search(["PSScene"], {}, page_size=size)
    assert len(mock.calls) == 0


def test_list_orders_by_name_follows_next_without_underscore(client: PlanetClient,
                                                             mock: respx.MockRouter) -> None:
    first = mock.get(ORDERS, params={"name": "aoi-2024-01"}).respond(200, json={
        "orders": [order("o1")], "_links": {"next": f"{ORDERS}?page_marker=m2"}})
    mock.get(ORDERS, params={"page_marker": "m2"}).respond(200, json={
        "orders": [order("o2"), order("o3")], "_links": {"_self": ORDERS}})
    assert [o["id"] for o in client.list_orders(name="aoi-2024-01")] == ["o1", "o2", "o3"]
    assert first.call_count == 1


def test_pagination_stops_if_a_page_links_to_itself(client: PlanetClient, mock: respx.MockRouter) -> None:
    page = {"orders": [order("o1")], "_links": {"next": f"{ORDERS}?page_marker=x"}}
    mock.get(ORDERS).respond(200, json=page)
    assert [o["id"] for o in client.list_orders()] == ["o1", "o1"]  # first page, then the looping page once
    assert len(mock.calls) == 2


def test_list_mosaics_sends_filters_and_pages(client: PlanetClient, mock: respx.MockRouter) -> None:
    first = mock.get(MOSAICS, params={"name__contains": "global_monthly"}).respond(200, json={
        "mosaics": [{"id": "m1", "name": "global_monthly_2024_01_mosaic"}],
        "_links": {"_next": f"{MOSAICS}?page=2"}})
    mock.get(MOSAICS, params={"page": "2"}).respond(200, json={
        "mosaics": [{"id": "m2", "name": "global_monthly_2024_02_mosaic"}], "_links": {}})
    names = [m["name"] for m in client.list_mosaics(name_contains="global_monthly",
                                                    acquired_gt="2024-01-01", acquired_lt="2024-03-01")]
    assert names == ["global_monthly_2024_01_mosaic", "global_monthly_2024_02_mosaic"]
    params = first.calls.last.request.url.params
    assert (params["acquired__gt"], params["acquired__lt"], params["_page_size"]) == ("2024-01-01",
                                                                                     "2024-03-01", "250")


def test_get_mosaic_by_exact_name(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.get(MOSAICS, params={"name__is": "global_monthly_2024_01_mosaic"}).respond(200, json={
        "mosaics": [{"id": "m1", "name": "global_monthly_2024_01_mosaic"}]})
    assert client.get_mosaic("global_monthly_2024_01_mosaic")["id"] == "m1"
    assert route.call_count == 1


def test_unknown_mosaic_is_a_404_planet_error(client: PlanetClient, mock: respx.MockRouter) -> None:
    mock.get(MOSAICS).respond(200, json={"mosaics": []})
    with pytest.raises(PlanetError, match="no basemap mosaic named 'nope'") as info:
        client.get_mosaic("nope")
    assert info.value.status_code == 404


def test_list_quads_sends_bbox_and_pages(client: PlanetClient, mock: respx.MockRouter) -> None:
    first = mock.get(f"{MOSAICS}/m1/quads", params={"bbox": "-121.5,38.5,-121.4,38.6"}).respond(200, json={
        "items": [{"id": "q1"}], "_links": {"_next": f"{MOSAICS}/m1/quads?page=2"}})
    mock.get(f"{MOSAICS}/m1/quads", params={"page": "2"}).respond(200, json={"items": [{"id": "q2"}]})
    assert [q["id"] for q in client.list_quads("m1", (-121.5, 38.5, -121.4, 38.6))] == ["q1", "q2"]
    assert first.call_count == 1


@pytest.mark.parametrize("bbox", [(1.0, 2.0, 3.0), (5.0, 0.0, 1.0, 1.0)])
def test_list_quads_rejects_bad_boxes(client: PlanetClient, bbox: tuple[float, ...]) -> None:
    with pytest.raises(UsageError, match="box"):
        client.list_quads("m1", bbox)  # type: ignore[arg-type]


# -- retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_transient_statuses_are_retried(client: PlanetClient, mock: respx.MockRouter, sleeps: Sleeps,
                                        status: int) -> None:
    route = mock.get(f"{ORDERS}/abc").mock(side_effect=[
        httpx.Response(status, text="busy"), httpx.Response(status, text="busy"),
        httpx.Response(200, json=order("abc", "running"))])
    assert client.get_order("abc")["state"] == "running"
    assert route.call_count == 3
    assert len(sleeps) == 2
    assert BACKOFF <= sleeps[0] <= 2 * BACKOFF  # base + jitter
    assert 2 * BACKOFF <= sleeps[1] <= 3 * BACKOFF  # doubled + jitter


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout,
                                   httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError])
def test_transport_errors_are_retried_on_reads(client: PlanetClient, mock: respx.MockRouter, sleeps: Sleeps,
                                               error: type[Exception]) -> None:
    answers = [error("boom"), httpx.Response(200, json=order("abc"))]
    route = mock.get(f"{ORDERS}/abc").mock(side_effect=answers)
    assert client.get_order("abc")["id"] == "abc"
    assert route.call_count == 2 and len(sleeps) == 1


def test_retry_after_seconds_is_honoured(client: PlanetClient, mock: respx.MockRouter,
                                         sleeps: Sleeps) -> None:
    mock.get(f"{ORDERS}/abc").mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "7"}), httpx.Response(200, json=order("abc"))])
    client.get_order("abc")
    assert sleeps == [7.0]


def test_retry_after_date_is_honoured_and_capped(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=40), usegmt=True)
    with make_client(sleeps, retry_after_cap=30.0) as planet:
        mock.get(f"{ORDERS}/abc").mock(side_effect=[
            httpx.Response(503, headers={"Retry-After": later}),
            httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200, json=order("abc"))])
        planet.get_order("abc")
    assert sleeps == [30.0, 30.0]


def test_parse_retry_after_forms() -> None:
    now = datetime(2024, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("Mon, 01 Jan 2024 12:00:25 GMT", now=now) == 25.0
    assert parse_retry_after("Mon, 01 Jan 2024 11:00:00 GMT", now=now) == 0.0  # in the past: go now
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("500") == 120.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_exhausted_retries_name_the_endpoint_and_last_status(client: PlanetClient, mock: respx.MockRouter,
                                                             sleeps: Sleeps) -> None:
    route = mock.get(f"{ORDERS}/abc").respond(503, json={"message": "Service Unavailable"})
    with pytest.raises(PlanetError) as info:
        client.get_order("abc")
    message = str(info.value)
    assert f"GET {ORDERS}/abc" in message
    assert "HTTP 503" in message and "Service Unavailable" in message and "3 retries" in message
    assert info.value.status_code == 503
    assert route.call_count == 4 and len(sleeps) == 3


def test_exhausted_transport_errors_say_planet_is_unreachable(client: PlanetClient,
                                                              mock: respx.MockRouter) -> None:
    route = mock.get(f"{ORDERS}/abc").mock(side_effect=httpx.ConnectError("Connection refused"))
    with pytest.raises(PlanetError, match=r"could not reach Planet: GET .*/abc failed 4 time\(s\) \(Connect"):
        client.get_order("abc")
    assert route.call_count == 4


@pytest.mark.parametrize("base", ["ftp://127.0.0.1:9", "http://"])
def test_a_malformed_url_fails_at_once_with_a_config_hint(sleeps: Sleeps, base: str) -> None:
    planet = make_client(sleeps, api_url=f"{base}/data/v1", orders_url=f"{base}/orders")
    with planet, pytest.raises(PlanetError) as info:
        planet.create_order(REQUEST)
    assert not isinstance(info.value, OrderSubmissionUncertain)
    assert "http:// or https://" in (info.value.hint or "") and sleeps == []


def test_zero_retries_means_one_attempt(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get(f"{ORDERS}/abc").respond(500)
    with make_client(sleeps, max_retries=0) as planet, pytest.raises(PlanetError, match="HTTP 500"):
        planet.get_order("abc")
    assert route.call_count == 1 and sleeps == []


# -- errors that are not retried -------------------------------------------------------------------


def test_bad_request_shows_planets_message(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.post(ORDERS).respond(400, json={
        "field": {"Details": [{"message": "no access to assets: PSScene/x/[ortho_analytic_4b_sr]"}]},
        "general": [{"message": "Unable to accept order"}]})
    with pytest.raises(PlanetError) as info:
        client.create_order({"name": "n", "products": []})
    assert not isinstance(info.value, OrderSubmissionUncertain)
    assert "HTTP 400: Unable to accept order; Details: no access to assets" in str(info.value)
    assert info.value.status_code == 400 and route.call_count == 1


def test_plain_text_error_body_is_trimmed(client: PlanetClient, mock: respx.MockRouter) -> None:
    mock.post(f"{API}/quick-search").respond(422, text="bad   filter\n" + "x" * 1000)
    with pytest.raises(PlanetError, match=r"HTTP 422: bad filter x+\.\.\.$") as info:
        client.search(["PSScene"], {})
    assert len(str(info.value)) < 600


def test_not_found_is_not_retried(client: PlanetClient, mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get(f"{ORDERS}/missing").respond(404, json={"message": "Order not found"})
    with pytest.raises(PlanetError, match="HTTP 404: Order not found") as info:
        client.get_order("missing")
    assert info.value.status_code == 404
    assert route.call_count == 1 and sleeps == []


def test_non_json_success_is_a_planet_error(client: PlanetClient, mock: respx.MockRouter) -> None:
    mock.get(f"{ORDERS}/abc").respond(200, text="<html>gateway</html>")
    with pytest.raises(PlanetError, match="not JSON"):
        client.get_order("abc")


# -- orders ----------------------------------------------------------------------------------------

REQUEST = {"name": "aoi-2024-01", "products": [{"item_ids": ["x"], "item_type": "PSScene",
                                                "product_bundle": "analytic_sr_udm2"}]}


def test_create_order_posts_the_request(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.post(ORDERS).respond(202, json=order("new"))
    assert client.create_order(REQUEST)["id"] == "new"
    assert json.loads(route.calls.last.request.content) == REQUEST


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError,
                                   httpx.WriteTimeout])
def test_create_order_is_never_resent_once_it_may_have_arrived(client: PlanetClient, mock: respx.MockRouter,
                                                              sleeps: Sleeps, error: type[Exception]) -> None:
    route = mock.post(ORDERS).mock(side_effect=[error("no answer"), httpx.Response(202, json=order("dup"))])
    with pytest.raises(OrderSubmissionUncertain) as info:
        client.create_order(REQUEST)
    assert route.call_count == 1 and sleeps == []
    assert info.value.order_name == "aoi-2024-01"
    assert "'aoi-2024-01' may or may not have been created" in str(info.value)
    assert isinstance(info.value, PlanetError)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_create_order_server_errors_are_uncertain(client: PlanetClient, mock: respx.MockRouter,
                                                  status: int) -> None:
    route = mock.post(ORDERS).mock(side_effect=[httpx.Response(status), httpx.Response(202, json=order("d"))])
    with pytest.raises(OrderSubmissionUncertain) as info:
        client.create_order(REQUEST)
    assert route.call_count == 1 and info.value.status_code == status


@pytest.mark.parametrize("refusal", [
    httpx.Response(503, text="maintenance"), httpx.Response(429, headers={"Retry-After": "1"}),
    httpx.ConnectError("refused"), httpx.ConnectTimeout("no route")])
def test_create_order_retries_when_the_server_refused(client: PlanetClient, mock: respx.MockRouter,
                                                      refusal: Any) -> None:
    route = mock.post(ORDERS).mock(side_effect=[refusal, httpx.Response(202, json=order("new"))])
    assert client.create_order(REQUEST)["id"] == "new"
    assert route.call_count == 2


def test_create_order_refused_beyond_the_throttle_budget_is_a_plain_error(mock: respx.MockRouter,
                                                                         sleeps: Sleeps) -> None:
    """429 is flow control: it does not use up the 3 retries; only the time budget ends the waiting."""
    route = mock.post(ORDERS).respond(429, text="slow down")
    with make_client(sleeps, backoff_base=1.0, throttle_budget=100.0) as planet, \
            pytest.raises(PlanetError, match=r"rate limited \(HTTP 429\): Planet kept answering HTTP 429") as info:
        planet.create_order(REQUEST)
    assert not isinstance(info.value, OrderSubmissionUncertain)
    assert info.value.status_code == 429
    assert route.call_count == 7  # waits of about 1, 2, 4, 8, 16, 32 s; the 64 s one would pass 100 s
    assert 60 <= sum(sleeps) <= 100


def test_a_429_storm_longer_than_the_retries_is_waited_out(client: PlanetClient, mock: respx.MockRouter,
                                                          sleeps: Sleeps) -> None:
    route = mock.get(f"{ORDERS}/abc").mock(side_effect=[httpx.Response(429, text="max rate reached")] * 6
                                           + [httpx.Response(200, json=order("abc"))])
    assert client.get_order("abc")["id"] == "abc"  # 6 refusals, max_retries 3
    assert route.call_count == 7 and len(sleeps) == 6


def test_planets_retry_in_hint_is_honoured(client: PlanetClient, mock: respx.MockRouter, sleeps: Sleeps) -> None:
    mock.get(f"{ORDERS}/abc").mock(side_effect=[
        httpx.Response(429, json={"message": "max rate reached: retry-in 200ms"}),
        httpx.Response(200, json=order("abc"))])
    client.get_order("abc")
    assert sleeps == [0.2]


def test_a_retry_after_beyond_the_budget_fails_at_once_and_says_so(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    route = mock.get(f"{ORDERS}/abc").respond(429, headers={"Retry-After": "999999"})
    with make_client(sleeps, throttle_budget=600.0) as planet, pytest.raises(PlanetError) as info:
        planet.get_order("abc")
    assert "Planet asks to wait 999,999 s (Retry-After), more than the 600 s left" in str(info.value)
    assert route.call_count == 1 and sleeps == []


def test_cancel_order_puts(client: PlanetClient, mock: respx.MockRouter) -> None:
    route = mock.put(f"{ORDERS}/abc").respond(200, json=order("abc", "cancelled"))
    assert client.cancel_order("abc")["state"] == "cancelled"
    assert route.call_count == 1


def test_wait_order_reports_each_state_and_backs_off(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    states = ["queued", "queued", "running", "running", "running", "running", "partial"]
    mock.get(f"{ORDERS}/abc").mock(side_effect=[httpx.Response(200, json=order("abc", s)) for s in states])
    seen: list[str] = []
    with make_client(sleeps, poll_interval=2.0, poll_max=10.0) as planet:
        final = planet.wait_order("abc", on_state=lambda o: seen.append(o["state"]))
    assert final["state"] == "partial"
    assert seen == ["queued", "running", "partial"]
    assert sleeps == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def test_wait_order_times_out(mock: respx.MockRouter, sleeps: Sleeps) -> None:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock[0] += seconds

    mock.get(f"{ORDERS}/abc").respond(200, json=order("abc", "running"))
    planet = make_client(sleeps, sleep=sleep, clock=lambda: clock[0], poll_interval=2.0, poll_max=30.0)
    with planet, pytest.raises(PlanetError, match="order abc is still running after 5 s"):
        planet.wait_order("abc", timeout=5.0)
    assert sleeps == [2.0, 3.0]  # the last wait is cut to the deadline


# -- get_json and secrets --------------------------------------------------------------------------


def test_get_json_follows_redirects(client: PlanetClient, mock: respx.MockRouter) -> None:
    url = f"{ORDERS}/abc/download/manifest.json?token=tok-secret-123"
    mock.get(url).respond(302, headers={"Location": "https://storage.test/manifest.json?sig=s3cret"})
    mock.get("https://storage.test/manifest.json").respond(200, json={"files": [{"path": "a.tif"}]})
    assert client.get_json(url) == {"files": [{"path": "a.tif"}]}


def test_key_and_tokens_never_reach_logs_or_errors(client: PlanetClient, mock: respx.MockRouter,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    b64_key = base64.b64encode(f"{KEY}:".encode()).decode()
    token_url = f"{BASE}/download/abc/manifest.json?token=tok-secret-123"
    mock.get(token_url).respond(200, json={"files": []})
    mock.get(f"{ORDERS}/echo").respond(400, json={"message": f"bad key {KEY} / Basic {b64_key}"})
    mock.get(f"{ORDERS}/busy").mock(side_effect=httpx.ReadTimeout(f"timed out for {KEY}"))
    mock.post(ORDERS).mock(side_effect=httpx.ReadTimeout(f"read timed out {KEY}"))
    mock.post(f"{API}/quick-search").respond(200, json={"features": []})
    errors: list[str] = []
    client.get_json(token_url)
    list(client.search(["PSScene"], {}))
    for call in (lambda: client.get_order("echo"), lambda: client.get_order("busy"),
                 lambda: client.create_order(REQUEST)):
        with pytest.raises(PlanetError) as info:
            call()
        errors.append(f"{info.value} {info.value.hint}")
    text = caplog.text + "\n".join(errors)
    assert "bad key ****" in errors[0]  # the echoed key was there, and was redacted
    for secret in (KEY, b64_key, "tok-secret-123"):
        assert secret not in text
    assert f"GET {BASE}/download/abc/manifest.json?**** -> 200 (" in caplog.text
    assert f"POST {API}/quick-search?_page_size=250 -> 200 (" in caplog.text
    assert f"GET {ORDERS}/busy -> ReadTimeout (" in caplog.text


# -- real sockets on 127.0.0.1 ---------------------------------------------------------------------


class DroppingServer:
    """Accepts a connection, reads the request, closes without answering: a reply lost after arrival."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.connections = 0
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with conn:
                conn.settimeout(2)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def dropping() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.close()


def _local_client(sleeps: Sleeps, base: str) -> PlanetClient:
    return PlanetClient(KEY, api_url=f"{base}/data/v1", orders_url=f"{base}/compute/ops/orders/v2",
                        basemaps_url=f"{base}/basemaps/v1/mosaics", timeout=3.0, max_retries=2,
                        backoff_base=BACKOFF, sleep=sleeps)


def test_real_dropped_reply_to_create_order_is_not_resent(dropping: DroppingServer, sleeps: Sleeps) -> None:
    with _local_client(sleeps, dropping.url) as planet, pytest.raises(OrderSubmissionUncertain):
        planet.create_order(REQUEST)
    assert dropping.connections == 1
    assert dropping.received[0].startswith(b"POST /compute/ops/orders/v2 ")
    assert KEY.encode() not in dropping.received[0]  # only its base64 form travels, in the auth header


def test_real_dropped_reply_to_a_read_is_retried(dropping: DroppingServer, sleeps: Sleeps) -> None:
    with _local_client(sleeps, dropping.url) as planet, pytest.raises(PlanetError, match="could not reach"):
        planet.get_order("abc")
    assert dropping.connections == 3 and len(sleeps) == 2


def test_real_refused_connection_to_create_order_is_retried(sleeps: Sleeps) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    planet = _local_client(sleeps, f"http://127.0.0.1:{port}")
    with planet, pytest.raises(PlanetError, match="could not reach Planet") as info:
        planet.create_order(REQUEST)
    assert not isinstance(info.value, OrderSubmissionUncertain)  # never sent: nothing to reconcile
    assert len(sleeps) == 2


def test_a_held_slot_is_spent_by_the_threads_next_request_of_its_class(sleeps: Sleeps, mock: respx.MockRouter,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """hold_slot waits for the class's slot ahead of the request (the poller then chooses the order): the GET
    that follows must not take a second slot, or polling would run at half the rate."""
    from flowzero.pacing import RateLimits

    mock.get(f"{ORDERS}/o1").mock(return_value=httpx.Response(200, json=order("o1")))
    with make_client(sleeps, rate_limits=RateLimits(orders_get=3.0)) as planet:
        pacer = planet.limiter.pacer("orders_get")
        assert pacer is not None
        taken: list[float] = []  # slots taken, whichever way the pacer gives them
        real_due, real_slot = pacer.take_when_due, pacer.take_slot

        def take_when_due() -> float:
            delay = real_due()
            if delay <= 0.0:
                taken.append(1)
            return delay

        monkeypatch.setattr(pacer, "take_when_due", take_when_due)
        monkeypatch.setattr(pacer, "take_slot", lambda: taken.append(1) or real_slot())
        planet.hold_slot("orders_get")
        planet.get_order("o1")
        assert len(taken) == 1  # the held slot was spent
        planet.get_order("o1")
        assert len(taken) == 2  # and only once: the next GET waits for its own
        planet.hold_slot("orders_get")
        other = threading.Thread(target=planet.get_order, args=("o1",))
        other.start()
        other.join()
        assert len(taken) == 4  # a slot held by one thread is not spent by another
