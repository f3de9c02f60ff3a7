"""``/api/definitions`` and ``/api/definitions/{vhost}``: GET exports, POST imports.

As ``rabbit_mgmt_wm_definitions`` (3.10, administrators only): the formats and the import are
:mod:`leveret.broker.definitions`' (shared with ``load_definitions`` at start). ``?download=F``
adds ``Content-Disposition: attachment; filename=F``. A POST body that is not JSON is 400
``failed_to_parse_json``; a failed import is 400 with the importer's reason (the whole
broker's: RabbitMQ's error term, e.g. ``["no_such_vhost", "undefined"]`` for an entry without
a vhost; one vhost's: a message); success is 204. GET of a vhost that does not exist is 400
``vhost_not_found``, POST into one 404 ``vhost_not_found``.

Not served: the web UI's multipart upload and the ``?auth=`` query-string login.
"""
from __future__ import annotations

import json

from aiohttp import web

from ...broker.admin import AdminError
from ...broker.definitions import DefinitionsError, export_definitions, import_definitions
from ..auth import require_admin
from ..errors import bad_request, json_error
from ..listing import json_response
from ..keys import BROKER

routes = web.RouteTableDef()


def _download(request, resp: web.Response) -> web.Response:
    name = request.query.get("download")
    if name is not None:
        resp.headers["Content-Disposition"] = f"attachment; filename={name}"
    return resp


async def _body(request) -> dict:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise bad_request("failed_to_parse_json") from None
    if not isinstance(data, dict):
        raise bad_request("failed_to_parse_json")
    return data


@routes.get("/api/definitions")
async def get_all(request):
    require_admin(request)
    return _download(request, json_response(export_definitions(request.app[BROKER])))


@routes.get("/api/definitions/{vhost}")
async def get_vhost(request):
    require_admin(request)
    try:
        defs = export_definitions(request.app[BROKER], request.match_info["vhost"])
    except AdminError:
        raise bad_request("vhost_not_found") from None
    return _download(request, json_response(defs))


@routes.post("/api/definitions")
async def post_all(request):
    require_admin(request)
    data = await _body(request)
    try:
        import_definitions(request.app[BROKER], data)
    except DefinitionsError as e:
        raise json_error(400, "bad_request", e.reason) from None
    return web.Response(status=204)


@routes.post("/api/definitions/{vhost}")
async def post_vhost(request):
    require_admin(request)
    b, vhost = request.app[BROKER], request.match_info["vhost"]
    if vhost not in b.vhosts:
        raise json_error(404, "not_found", "vhost_not_found")
    data = await _body(request)
    try:
        import_definitions(b, data, vhost)
    except DefinitionsError as e:
        raise json_error(400, "bad_request", str(e)) from None
    return web.Response(status=204)
