"""The API's operations, one module per resource; :func:`orchestrator.api.app.create_app`
includes their routers in the order the OpenAPI document lists them."""
