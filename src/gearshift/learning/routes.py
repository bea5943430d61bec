"""``POST /v1/feedback`` and the learning loop's wiring into the gateway (``register``).

Feedback: ``{"request_id", "score": 0..1 | "thumbs": "up"|"down", "comment"?}`` with the caller's
key. A key may rate only the requests it made; under ``auth: optional`` a request without a key
may rate requests made without a key. An id this caller did not make is a 404, the same answer as
an unknown id, so ids of other keys cannot be probed. Errors are OpenAI-shaped.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from gearshift.api.http import Request, Response, Routes, json_response, render_openai_error
from gearshift.errors import InvalidRequest, ResourceNotFound
from gearshift.learning.promotion import PromotionWatcher
from gearshift.learning.sampler import Sampler, StoreOpener
from gearshift.learning.store import THUMBS, RequestOwner, insert_feedback, request_owner

if TYPE_CHECKING:
    from gearshift.api.pipeline import Gateway
    from gearshift.ledger.record import LedgerRecord
    from gearshift.ledger.store import LedgerStore

MAX_COMMENT_CHARS = 2000
MAX_ID_CHARS = 200
# Who made each recent request (about 5 s of traffic at 2k req/s, ~2 MB), for feedback that
# arrives before the ledger writer has written its row (milliseconds); older requests are looked
# up in the ledger.
RECENT_REQUESTS = 10_000


def register(routes: Routes, gateway: Gateway) -> None:
    opener = StoreOpener(gateway.settings.storage)
    sampler = Sampler(gateway, opener)
    if sampler.learning:
        gateway.answer_observer = sampler
        gateway.components.append(sampler)
        gateway.metric_sources.append(sampler.prometheus)
    gateway.components.append(PromotionWatcher(gateway, opener))
    feedback = FeedbackEndpoint(gateway, opener)
    gateway.observers.append(feedback.remember)
    gateway.components.append(feedback)
    routes.add("POST", "/v1/feedback", feedback.post, errors=render_openai_error)


def parse_feedback(body: Any) -> tuple[str, float, str | None]:
    if not isinstance(body, dict):
        raise InvalidRequest("feedback must be a JSON object")
    unknown = sorted(set(body) - {"request_id", "score", "thumbs", "comment"})
    if unknown:
        raise InvalidRequest(f"unknown feedback field(s): {', '.join(unknown)}", param=unknown[0])
    request_id = body.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise InvalidRequest(
            "request_id must be the x-request-id of a request (a non-empty string)",
            param="request_id",
        )
    score, thumbs = body.get("score"), body.get("thumbs")
    if (score is None) == (thumbs is None):
        raise InvalidRequest('give exactly one of "score" (0..1) or "thumbs" ("up" or "down")')
    if thumbs is not None:
        if thumbs not in THUMBS:
            raise InvalidRequest('thumbs must be "up" or "down"', param="thumbs")
        value = THUMBS[thumbs]
    else:
        if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
            raise InvalidRequest("score must be a number from 0 to 1", param="score")
        value = float(score)
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > MAX_COMMENT_CHARS):
        raise InvalidRequest(
            f"comment must be a string of at most {MAX_COMMENT_CHARS} characters", param="comment"
        )
    return request_id, value, comment


class FeedbackEndpoint:
    def __init__(self, gateway: Gateway, store_opener: StoreOpener) -> None:
        self.gateway = gateway
        self._open_store = store_opener
        self.store: LedgerStore | None = None
        self._recent: OrderedDict[str, RequestOwner] = OrderedDict()

    def remember(self, record: LedgerRecord) -> None:
        recent = self._recent
        recent[record.id] = RequestOwner(
            record.key_id, record.router, record.served_model, record.prompt_kind
        )
        if len(recent) > RECENT_REQUESTS:
            recent.popitem(last=False)

    async def start(self) -> None:
        return None  # the store is opened on the first feedback

    async def stop(self) -> None:
        if self.store is not None:
            await asyncio.to_thread(self.store.close)
            self.store = None

    async def _owner(self, request_id: str) -> RequestOwner | None:
        owner = self._recent.get(request_id)
        if owner is not None:
            return owner
        if self.store is None:
            self.store = await asyncio.to_thread(self._open_store)
        return await asyncio.to_thread(request_owner, self.store, request_id)

    async def post(self, request: Request) -> Response:
        request_id, score, comment = parse_feedback(request.json())
        caller = await self.gateway.policy.authenticate(request.bearer_token())
        owner = await self._owner(request_id)
        if owner is None or owner.key_id != caller.key_id:
            raise ResourceNotFound(
                f"no request {request_id!r} was made with this key "
                "(give the x-request-id of one of your own requests)",
                param="request_id",
            )
        if self.store is None:
            self.store = await asyncio.to_thread(self._open_store)
        await asyncio.to_thread(insert_feedback, self.store, request_id, score, comment)
        return json_response(
            200,
            {
                "object": "feedback",
                "request_id": request_id,
                "score": score,
                "model": owner.served_model,
                "kind": owner.kind,
            },
        )
