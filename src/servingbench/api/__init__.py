"""Our FastAPI inference service: the same artifacts as MLServer, `/predict` and V2 REST.

`main.create_app(settings)` builds it; `servingbench serve-api` runs it under uvicorn.
"""

__all__ = ["create_app"]

from servingbench.api.main import create_app
