"""``/v1/webhooks``: where the tenant hears about its runs, and how each delivery went."""

from dataclasses import asdict

from fastapi import APIRouter

from orchestrator.api.context import Admin, Ctx
from orchestrator.api.schemas import (
    DeliveryList,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookView,
)

router = APIRouter(tags=["webhooks"])


@router.post("/v1/webhooks", status_code=201)
def add_webhook(body: WebhookIn, key: Admin, ctx: Ctx) -> WebhookCreated:
    """Register a URL for the tenant's run events; the signing secret is shown only now."""
    hook, secret = ctx.hooks.register(key.tenant, body.url)
    return WebhookCreated(**asdict(hook), secret=secret)


@router.get("/v1/webhooks")
def list_webhooks(key: Admin, ctx: Ctx) -> WebhookList:
    return WebhookList(webhooks=[WebhookView(**asdict(h)) for h in ctx.hooks.all(key.tenant)])


@router.delete("/v1/webhooks/{hook_id}", status_code=204)
def delete_webhook(hook_id: str, key: Admin, ctx: Ctx) -> None:
    ctx.hooks.delete(key.tenant, hook_id)


@router.get("/v1/webhooks/deliveries")
def deliveries(key: Admin, ctx: Ctx, run_id: str | None = None) -> DeliveryList:
    """What was sent to the tenant's webhooks, and how each delivery went."""
    rows = ctx.hooks.deliveries(key.tenant, run_id)
    return DeliveryList.model_validate({"deliveries": rows})
