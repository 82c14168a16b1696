"""Every refusal in one format: ``{"error": {"type": ..., "message": ...}}`` with its status.

Typed errors (errors.py) answer their own ``http_status``; unknown paths and methods, invalid
requests and bodies over the size limit are turned into the same shape here.
"""

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
        kinds = {404: "not_found", 405: "method_not_allowed"}
        message = "no such path" if err.status_code == 404 else str(err.detail)
        return error_response(
            err.status_code, kinds.get(err.status_code, "error"), message, headers
        )

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()]
        return error_response(422, "invalid_request", "; ".join(problems))

    app.add_middleware(BodyLimit, max_body_bytes=max_body_bytes)


class BodyLimit:
    """Bodies over ``max_body_bytes`` answer 413: by their declared ``Content-Length``, or, for a
    chunked body, as soon as what arrived passes the limit (read before the endpoint, which then
    reads it from memory). A plain ASGI middleware: Starlette's ``BaseHTTPMiddleware`` runs
    every request through a task group and a memory stream, which cost more than the check."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            refusal = f"the request body is {declared} bytes; the limit is {self.max_body_bytes}"
            await error_response(413, "too_large", refusal)(scope, receive, send)
            return
        if scope["method"] not in ("POST", "PUT", "PATCH") or declared is not None:
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                refusal = f"the request body exceeds the limit of {self.max_body_bytes} bytes"
                await error_response(413, "too_large", refusal)(scope, receive, send)
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
