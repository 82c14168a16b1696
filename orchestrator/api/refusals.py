"""Every refusal in one format: ``{"error": {"type": ..., "message": ...}}`` with its status.

Typed errors (errors.py) answer their own ``http_status``; unknown paths and methods, invalid
requests and bodies over the size limit are turned into the same shape here.
"""

import asyncio
from collections.abc import Iterable, Iterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.errors import CadreError


def error_response(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": {"type": kind, "message": message}}, status_code=status, headers=headers
    )


def install_refusals(app: FastAPI, max_body_bytes: int) -> None:
    """The app's exception handlers and its body size limit."""

    @app.exception_handler(CadreError)
    async def cadre_error(_: Request, err: CadreError) -> JSONResponse:
        """Every typed error answers with its own status and type (see errors.py)."""
        return error_response(err.http_status, err.type_name, err.message, dict(err.headers))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, err: StarletteHTTPException) -> JSONResponse:
        """Unknown paths (404) and methods (405) in the one error format; a 405's ``Allow``
        lists the methods of every route on the path (Starlette names only the first's)."""
        headers = dict(err.headers) if err.headers else {}
        if err.status_code == 405:
            headers["Allow"] = ", ".join(_allowed(app, request))
        kinds = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}
        message = "no such path" if err.status_code == 404 else str(err.detail)
        if err.status_code == 400:  # FastAPI could not decode the body at all
            message = (
                f"{err.detail}: send one JSON object as UTF-8 text, nested no deeper than "
                "a few hundred levels, with Content-Type: application/json"
            )
        return error_response(
            err.status_code, kinds.get(err.status_code, "error"), message, headers
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        sent = request.headers.get("content-type", "")
        if "json" not in sent and any(e["loc"][:1] == ("body",) for e in err.errors()):
            told = f"Content-Type {sent!r}" if sent else "no Content-Type"
            problems.insert(0, f"the body was sent with {told}; send JSON as application/json")
        return error_response(422, "invalid_request", "; ".join(problems))

    @app.exception_handler(Exception)
    async def bug(_: Request, err: Exception) -> JSONResponse:
        """A bug: the one error format, with nothing of the bug in it (the server's log has
        the traceback)."""
        return error_response(
            500, "internal", "the server failed on this request; its log says why"
        )

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)


BODY_DEADLINE_S = 30.0
"""How long a request body may take to arrive in full: a client that declares 100 bytes and
sends 5, or a chunked body that never ends, is answered 408 instead of holding a worker."""


class BodyLimit:
    """Bodies over ``max_body_bytes`` answer 413: by their declared ``Content-Length``, or as soon
    as what arrived passes the limit. The body is read here, within ``BODY_DEADLINE_S``, before
    the endpoint, which then reads it from memory; a compressed body answers 415. A plain ASGI
    middleware: Starlette's ``BaseHTTPMiddleware`` runs every request through a task group and
    a memory stream, which cost more than the check."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            refusal = f"the request body is {declared} bytes; the limit is {self.max_body_bytes}"
            await error_response(413, "too_large", refusal)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if headers.get("content-encoding", "identity").lower() != "identity":
            refusal = "request bodies are not decompressed here; send the body as it is"
            await error_response(415, "unsupported_encoding", refusal)(scope, receive, send)
            return
        body, more = b"", True
        try:
            async with asyncio.timeout(BODY_DEADLINE_S):
                while more:
                    message = await receive()
                    if message["type"] != "http.request":  # the client went away
                        return
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > self.max_body_bytes:
                        refusal = (
                            f"the request body exceeds the limit of {self.max_body_bytes} bytes"
                        )
                        await error_response(413, "too_large", refusal)(scope, receive, send)
                        return
        except TimeoutError:
            refusal = f"the request body did not arrive in full within {BODY_DEADLINE_S:g} s"
            await error_response(408, "body_timeout", refusal, {"Connection": "close"})(
                scope, receive, send
            )
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _allowed(app: FastAPI, request: Request) -> list[str]:
    """The methods of the path's own routes: those of its most literal template
    (/v1/webhooks/deliveries, not /v1/webhooks/{hook_id} as well)."""
    matching = [
        route
        for route in _flat(app.router.routes)
        if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
    ]
    if not matching:
        return []
    best = min(matching, key=lambda r: len(r.param_convertors))
    return sorted({m for r in matching if r.path == best.path for m in r.methods or ()})


def _flat(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI keeps an included router as one
    entry that holds the router; the routers here have no prefix, so their paths are whole)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat(included.routes)
        else:
            yield route
