"""The credit simulator: clues by offset (`GET /api/clues`), closed-case inbox, `GET /api/credit/{uscc}`, faults."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from simulators.peer import (
    CallbackRecorder,
    Faults,
    Inbox,
    apply_faults,
    credential,
    load_fixtures,
    mount_callbacks,
    mount_faults,
    mount_inbox,
    mount_seed,
    serve_in_thread,
    with_fresh_number,
)

ADAPTER_ID = "credit-supervision"
DEFAULT_PORT = 8414
NUMBER_PATH = ("CLUEID",)
ABNORMAL = "经营异常"
SERIOUS = "严重违法失信"
MAX_SIZE = 200


@dataclass
class CreditEntity:
    """A market entity as the credit system knows it, and the lists it is on."""

    uscc: str
    name: str | None = None
    lists: list[dict[str, Any]] = field(default_factory=list)

    def flags(self) -> list[str]:
        found = []
        types = " ".join(str(item.get("LISTTYPE", "")) for item in self.lists)
        if ABNORMAL in types:
            found.append(ABNORMAL)
        if SERIOUS in types:
            found.append(SERIOUS)
        return found

    def answer(self) -> dict[str, Any]:
        flags = self.flags()
        return {"uscc": self.uscc, "name": self.name, "found": True, "flags": flags,
                "abnormal_operation": ABNORMAL in flags, "serious_violation": SERIOUS in flags,
                "lists": self.lists}


class CreditSupervision:
    """Clues the gateway pulls by offset, entities it looks up, closed cases it receives."""

    def __init__(self, *, api_key: str | None = None, callback_secret: str | None = None, seed: bool = True,
                 inbox_api_key: str | None = None) -> None:
        self.api_key = api_key or credential("PARTNER_CREDIT_OUTBOUND_KEY")
        self.fixtures = load_fixtures(ADAPTER_ID)
        self.callbacks = CallbackRecorder(callback_secret or credential("PARTNER_CREDIT_CALLBACK_SECRET"))
        self.cases = Inbox("XYJG-AJ-SIM-", api_key=inbox_api_key)
        self.faults = Faults()
        self.url: str | None = None
        self._lock = threading.Lock()
        self._clues: list[dict[str, Any]] = []
        self.entities: dict[str, CreditEntity] = {}
        for payload in self.fixtures.values():
            self._learn(payload)
        if seed:
            for name in self.fixtures:
                self.add_fixture(name)

    def _learn(self, clue: dict[str, Any]) -> None:
        uscc = clue.get("UNISCID")
        if not isinstance(uscc, str) or len(uscc) != 18:
            return
        entity = self.entities.setdefault(uscc, CreditEntity(uscc=uscc))
        entity.name = entity.name or clue.get("ENTNAME")
        for item in clue.get("LISTS") or []:
            if isinstance(item, dict) and item not in entity.lists:
                entity.lists.append(item)

    def add(self, clue: dict[str, Any]) -> int:
        """Publish a clue for the gateway to pull; its offset (0-based)."""
        with self._lock:
            self._clues.append(clue)
            self._learn(clue)
            return len(self._clues) - 1

    def add_fixture(self, name: str, *, fresh: bool = False) -> int:
        clue = self.fixtures[name]
        return self.add(with_fresh_number(clue, NUMBER_PATH) if fresh else json.loads(json.dumps(clue)))

    def clues(self, offset: int, size: int) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            page = self._clues[offset:offset + size]
            return page, offset + len(page)

    def lookup(self, uscc: str) -> dict[str, Any]:
        entity = self.entities.get(uscc)
        if entity is None:
            return {"uscc": uscc, "name": None, "found": False, "flags": [], "abnormal_operation": False,
                    "serious_violation": False, "lists": []}
        return entity.answer()

    def authorised(self, request: Request) -> bool:
        presented = request.headers.get("x-api-key", "")
        return hmac.compare_digest(presented.encode("utf-8"), self.api_key.encode("utf-8"))


def create_app(sim: CreditSupervision) -> FastAPI:
    app = FastAPI(title="Credit supervision system simulator", version="1.0",
                  summary="Clues to pull by offset, closed cases received, look-ups by USCC; can be slow or down.")
    mount_callbacks(app, sim.callbacks, faults=sim.faults)
    mount_faults(app, sim.faults)
    mount_inbox(app, sim.cases, "/api/credit/cases", faults=sim.faults, number_field="record_id")

    @app.get("/api/clues", tags=["partner API"])
    async def list_clues(request: Request, offset: str = "0", size: int = 50) -> JSONResponse:
        """Clues from `offset` on: {"RESULT": "SUCCESS", "DATA": {"CLUES": [...], "NEXTOFFSET": "n"}}."""
        if not sim.authorised(request):
            return JSONResponse({"RESULT": "FAIL", "MESSAGE": "认证失败"}, status_code=401)
        faulty = await apply_faults(sim.faults)
        if faulty is not None:
            return faulty
        if not offset.isdigit():
            return JSONResponse({"RESULT": "FAIL", "MESSAGE": f"offset 无效: {offset!r}"}, status_code=400)
        page, next_offset = sim.clues(int(offset), max(1, min(size, MAX_SIZE)))
        return JSONResponse({"RESULT": "SUCCESS", "DATA": {"CLUES": page, "NEXTOFFSET": str(next_offset)}})

    @app.get("/api/credit/{uscc}", tags=["partner API"])
    async def lookup(uscc: str) -> JSONResponse:
        """Whether an entity is on the 经营异常名录 or the 严重违法失信名单."""
        faulty = await apply_faults(sim.faults)
        if faulty is not None:
            return faulty
        code = uscc.strip().upper()
        if len(code) != 18 or not code.isalnum():
            return JSONResponse({"error": "bad_request", "message": "a 统一社会信用代码 has 18 characters"},
                                status_code=400)
        return JSONResponse(sim.lookup(code))

    mount_seed(app, "/sim/clues", sim, item="clue", answer="offset")

    return app


@contextmanager
def run_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[CreditSupervision]:
    """The simulator served on loopback in a thread (port 0: a free one); `options` go to CreditSupervision."""
    sim = CreditSupervision(**options)
    with serve_in_thread(create_app(sim), name="credit", host=host, port=port) as url:
        sim.url = url
        try:
            yield sim
        finally:
            sim.url = None
