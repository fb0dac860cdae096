"""/docs that works offline and teaches: Swagger UI's files come from the swagger-ui-bundle
package (served at /docs/static), not from a CDN, so the page renders on a machine without
internet; the page opens with how to get credentials. ReDoc (CDN-only) is not served."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

STATIC = "/docs/static"

DESCRIPTION = """\
Farms, produce transactions, a dashboard and model serving (demand forecasts, ESG scores)
for PAM-TALK. Every error has one shape: `{"error": {"code", "message", "details"?,
"request_id"}}`.

**Credentials in dev.** `pamtalk init` (and so `make run`) seeds demo users when the database
is empty, all with the password `pamtalk-demo`: `buyer1@pamtalk.local`,
`farmer1@pamtalk.local`, `analyst1@pamtalk.local`, `admin@pamtalk.local`.

1. Open `POST /v1/auth/login` below, *Try it out*, and send
   `{"email": "buyer1@pamtalk.local", "password": "pamtalk-demo"}`.
2. Copy `token` from the answer, press **Authorize** and paste it under *HTTPBearer*.
   Sessions last 30 minutes after their last use.
3. Apps use API keys instead: `POST /v1/auth/api-keys` (shown once; send as `X-API-Key`).

In production (`PAMTALK_ENV=prod`) there are no demo users; the first admin credential is
the API key in `PAMTALK_ADMIN_API_KEY`.
"""


def install(app: FastAPI) -> None:
    """Serve /docs from the packaged Swagger UI. The app must be created with
    ``docs_url=None, redoc_url=None`` (FastAPI's own pages load from a CDN)."""
    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - API docs",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon-32x32.png",
            swagger_ui_parameters={
                "persistAuthorization": True,
                "tryItOutEnabled": True,
                "validatorUrl": None,  # the default badge loads from validator.swagger.io
            },
        )
