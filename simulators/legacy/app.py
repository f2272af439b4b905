"""The legacy registration simulator: records by sequence for `GET /api/records?since=`, acks, status write-back."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from simulators.peer import (
    CallbackRecorder,
    Faults,
    apply_faults,
    credential,
    load_fixtures,
    mount_callbacks,
    mount_faults,
    mount_seed,
    now_iso,
    serve_in_thread,
    with_fresh_number,
)

ADAPTER_ID = "legacy-registration"
DEFAULT_PORT = 8412
NUMBER_PATH = ("djbh",)
MAX_LIMIT = 500


@dataclass
class LegacyRecord:
    """One registration (登记) record, in the legacy system's own pinyin-initial shape."""

    seq: int
    record: dict[str, Any]
    added_at: str
    acked_at: str | None = None

    @property
    def djbh(self) -> str:
        return str(self.record.get("djbh"))


@dataclass(frozen=True)
class PullRequest:
    at: str
    since: str | None
    limit: int
    returned: int
    status: int


class LegacyRegistration:
    """Holds records in arrival order; a puller asks for those after a sequence number and acks by 登记编号."""

    def __init__(self, *, api_key: str | None = None, callback_secret: str | None = None, seed: bool = True,
                 charset: str = "utf-8") -> None:
        self.api_key = api_key or credential("PARTNER_LEGACY_OUTBOUND_KEY")
        self.charset = charset  # older line systems answer in GBK
        fixtures = load_fixtures(ADAPTER_ID)
        # Registrations are held at start; their follow-ups (补充材料, 催办, 撤诉, a later version) when asked for.
        self.fixtures = {name: r for name, r in fixtures.items() if not is_follow_up(r)}
        self.follow_ups = {name: r for name, r in fixtures.items() if is_follow_up(r)}
        self.callbacks = CallbackRecorder(callback_secret or credential("PARTNER_LEGACY_CALLBACK_SECRET"))
        self.faults = Faults()
        self.url: str | None = None
        self._lock = threading.Lock()
        self._records: list[LegacyRecord] = []
        self._pulls: list[PullRequest] = []
        if seed:
            for name in self.fixtures:
                self.add_fixture(name)

    def add(self, record: dict[str, Any]) -> int:
        """Register a record; its sequence number."""
        with self._lock:
            seq = len(self._records) + 1
            self._records.append(LegacyRecord(seq=seq, record=record, added_at=now_iso()))
            return seq

    def add_fixture(self, name: str, *, fresh: bool = False) -> int:
        record = self.fixtures[name] if name in self.fixtures else self.follow_ups[name]
        return self.add(with_fresh_number(record, NUMBER_PATH) if fresh else json.loads(json.dumps(record)))

    def records(self) -> list[LegacyRecord]:
        with self._lock:
            return list(self._records)

    def acked(self) -> list[str]:
        """The 登记编号 acknowledged so far, in record order."""
        return [r.djbh for r in self.records() if r.acked_at is not None]

    def pulls(self) -> list[PullRequest]:
        with self._lock:
            return list(self._pulls)

    def page(self, since: str | None, limit: int) -> tuple[list[LegacyRecord], int, bool]:
        start = int(since) if since else 0
        with self._lock:
            after = [r for r in self._records if r.seq > start]
        page = after[:limit]
        return page, page[-1].seq if page else start, len(after) > len(page)

    def ack(self, numbers: list[str]) -> tuple[int, list[str]]:
        wanted = set(numbers)
        done = 0
        with self._lock:
            found: set[str] = set()
            for record in self._records:  # a record and its follow-ups (补充材料, 催办, 撤诉) share the 登记编号
                if record.djbh in wanted:
                    found.add(record.djbh)
                    if record.acked_at is None:
                        record.acked_at = now_iso()
            done = len(found)
            wanted -= found
        return done, sorted(wanted)

    def note_pull(self, pull: PullRequest) -> None:
        with self._lock:
            self._pulls.append(pull)

    def authorised(self, request: Request) -> bool:
        presented = request.headers.get("x-api-key", "")
        return hmac.compare_digest(presented.encode("utf-8"), self.api_key.encode("utf-8"))


def is_follow_up(record: dict[str, Any]) -> bool:
    """A follow-up of a registration made before: 补充材料, 催办, 撤诉 (操作类型 czlx), or a later version (bbh)."""
    return record.get("czlx") is not None or record.get("bbh") not in (None, "1")


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "msg": message, "data": None}, status_code=status)


def create_app(sim: LegacyRegistration) -> FastAPI:
    app = FastAPI(title="Legacy registration system simulator", version="1.0",
                  summary="Records for a cursor puller (GET /api/records?since=), acks, signed status write-back.")
    mount_callbacks(app, sim.callbacks, faults=sim.faults)
    mount_faults(app, sim.faults)

    @app.get("/api/records", tags=["partner API"])
    async def list_records(request: Request, since: str | None = None, limit: int = 50) -> Response:
        """Records registered after sequence `since`, oldest first: `data.records`, `data.next`, `data.more`."""
        if not sim.authorised(request):
            return _error(401, 401, "X-Api-Key 无效")
        faulty = await apply_faults(sim.faults)
        if faulty is not None:
            sim.note_pull(PullRequest(now_iso(), since, limit, 0, faulty.status_code))
            return faulty
        if since is not None and not since.isdigit():
            return _error(400, 400, f"since 必须是序号: {since!r}")
        page, next_seq, more = sim.page(since, max(1, min(limit, MAX_LIMIT)))
        sim.note_pull(PullRequest(now_iso(), since, limit, len(page), 200))
        answer = {"code": 0, "msg": "ok", "data": {"records": [r.record for r in page], "next": str(next_seq),
                                                   "more": more}}
        return Response(json.dumps(answer, ensure_ascii=False).encode(sim.charset),
                        media_type=f"application/json; charset={sim.charset}")

    @app.post("/api/records/ack", tags=["partner API"])
    async def ack_records(request: Request) -> JSONResponse:
        """Mark records taken by the gateway: {"djbh": ["…", …]}."""
        if not sim.authorised(request):
            return _error(401, 401, "X-Api-Key 无效")
        faulty = await apply_faults(sim.faults)
        if faulty is not None:
            return faulty
        try:
            numbers = json.loads(await request.body()).get("djbh")
        except (ValueError, AttributeError):
            numbers = None
        if not isinstance(numbers, list):
            return _error(400, 400, '请求体应为 {"djbh": [登记编号, …]}')
        done, unknown = sim.ack([str(n) for n in numbers])
        return JSONResponse({"code": 0, "msg": "ok", "data": {"acked": done, "unknown": unknown}})

    mount_seed(app, "/sim/records", sim, item="record", answer="seq")

    @app.get("/sim/records", tags=["simulator"])
    async def records() -> list[dict[str, Any]]:
        return [asdict(r) for r in sim.records()]

    @app.get("/sim/acks", tags=["simulator"])
    async def acks() -> list[str]:
        return sim.acked()

    @app.get("/sim/pulls", tags=["simulator"])
    async def pulls() -> list[dict[str, Any]]:
        return [asdict(p) for p in sim.pulls()]

    return app


@contextmanager
def run_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[LegacyRegistration]:
    """The simulator served on loopback in a thread (port 0: a free one); `options` go to LegacyRegistration."""
    sim = LegacyRegistration(**options)
    with serve_in_thread(create_app(sim), name="legacy", host=host, port=port) as url:
        sim.url = url
        try:
            yield sim
        finally:
            sim.url = None
