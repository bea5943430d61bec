"""Fakes of two OpenAI-compatible services that want requests shaped their own way, each checking
the path and the credentials as the real service does (401/404 in its style otherwise):

- ``FakeAzureOpenAI``: classic Azure OpenAI, ``POST /openai/deployments/{deployment}/chat/
  completions?api-version=...`` with an ``api-key`` header (the deployment, not the body's
  ``model``, picks the model); and Azure's v1 endpoint, ``POST /openai/v1/chat/completions`` with
  ``api-key`` or ``Authorization: Bearer``.
- ``FakeGeminiOpenAI``: Gemini's OpenAI-compatible endpoint, ``POST /v1beta/openai/chat/
  completions`` with ``Authorization: Bearer <GEMINI_API_KEY>``.

Answers come from the fake OpenAI server's chat handler (same shapes, knobs and recording).
"""

from __future__ import annotations

from aiohttp import web

from .openai_server import FakeOpenAIServer, _error


class FakeAzureOpenAI(FakeOpenAIServer):
    def __init__(self, api_key: str = "azure-fake-key") -> None:
        super().__init__()
        self.api_key = api_key
        self.deployments: list[str] = []  # deployment named in each accepted classic request
        self.queries: list[dict[str, str]] = []  # query string of each request
        self.echo_key_status: int | None = None  # fail quoting the api-key, as some services do

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._classic)
        app.router.add_post("/openai/v1/chat/completions", self._v1)
        return app

    async def _classic(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        if "api-version" not in request.query:
            return _error(404, "Resource not found")
        if request.headers.get("api-key") != self.api_key:
            return _denied()
        self.deployments.append(request.match_info["deployment"])
        return await self._chat(request)

    async def _v1(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        if self.echo_key_status is not None:
            key = request.headers.get("api-key", "")
            return _error(self.echo_key_status, f"backend failed for subscription key {key}")
        bearer = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        if request.headers.get("api-key") != self.api_key and not bearer:
            return _denied()
        return await self._chat(request)


class FakeGeminiOpenAI(FakeOpenAIServer):
    def __init__(self, api_key: str = "gemini-fake-key") -> None:
        super().__init__()
        self.api_key = api_key

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1beta/openai/chat/completions", self._gemini)
        return app

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(400, "API key not valid. Please pass a valid API key.")
        return await self._chat(request)


def _denied() -> web.Response:
    return _error(
        401,
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API endpoint "
        "for your resource.",
    )
