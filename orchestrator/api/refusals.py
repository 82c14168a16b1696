"""Every refusal in one format: ``{"error": {"type": ..., "message": ...}}`` with its status.

Typed errors (errors.py) answer their own ``http_status``; unknown paths and methods, invalid
requests and bodies over the size limit are turned into the same shape here.
"""

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match, Route

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

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Any]]) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            return error_response(
                413,
                "too_large",
                f"the request body is {declared} bytes; the limit is {max_body_bytes}",
            )
        if request.method in ("POST", "PUT", "PATCH") and declared is None:
            body = b""
            async for chunk in request.stream():
                body += chunk
                if len(body) > max_body_bytes:
                    return error_response(
                        413,
                        "too_large",
                        f"the request body exceeds the limit of {max_body_bytes} bytes",
                    )
            request._body = body  # read once; the endpoint reads it from here
        return await call_next(request)


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
