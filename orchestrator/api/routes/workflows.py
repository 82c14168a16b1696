"""``/v1/workflows``: what a run can be submitted to; ``/v1/keys/me``: who is asking."""

from fastapi import APIRouter

from orchestrator.api.context import Anyone, Ctx
from orchestrator.api.schemas import KeyView, WorkflowList, WorkflowView

router = APIRouter()
keys = APIRouter()


@router.get("/v1/workflows", tags=["workflows"])
def list_workflows(key: Anyone, ctx: Ctx) -> WorkflowList:
    """The workflows a run can be submitted to, with their input schemas."""
    return WorkflowList(
        workflows=[
            WorkflowView(
                name=w.name,
                description=w.description,
                input_schema=w.input_schema,
                output=list(w.output),
            )
            for w in sorted(ctx.catalog.workflows.values(), key=lambda w: w.name)
        ]
    )


@keys.get("/v1/keys/me", tags=["keys"])
def whoami(key: Anyone) -> KeyView:
    """The key the request is made with: its tenant, role, holder and how decisions made
    with it are signed (``who``, as reviews show ``decided_by`` and ``claimed_by``)."""
    return KeyView(id=key.id, tenant=key.tenant, role=key.role, name=key.name, who=key.who)
