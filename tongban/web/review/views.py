"""The review area's pages (GET): overview, list, detail — masked; what the forms post is in
:mod:`tongban.web.review.forms`."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

import schemas
from schemas.errors import TongbanError
from tongban.core import review
from tongban.core.masking import mask_any, mask_row
from tongban.core.review import Filter, Ref
from tongban.core.review.operators import REVEAL, REVIEW
from tongban.web.auth import Principal
from tongban.web.deps import get_settings, require_scope
from tongban.web.errors import ApiError
from tongban.web.pages import render
from tongban.web.settings import WebSettings

__all__ = ["detail_context", "list_filter", "router"]

router = APIRouter(prefix="/review", tags=["review"], include_in_schema=False)

Operator = Annotated[Principal, Depends(require_scope(REVIEW, page=True))]
Settings = Annotated[WebSettings, Depends(get_settings)]
PAGE_SIZES = (20, 50, 100, 200)


def _when(name: str, value: str | None, *, end: bool = False) -> _dt.datetime | None:
    if not value:
        return None
    try:
        moment = _dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise ApiError("REQUEST_INVALID", 422, name) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    if end and len(value.strip()) == 10:  # a date: up to the end of that day
        moment += _dt.timedelta(days=1)
    return moment.astimezone(_dt.UTC)


def list_filter(settings: WebSettings, params: Any) -> Filter:
    """The filter a list's query (or a bulk form) names; REQUEST_INVALID naming a bad field."""
    ex = settings.exchange
    node = (params.get("node") or "").strip() or None
    dataset = (params.get("dataset") or "").strip() or None
    kind = (params.get("kind") or "").strip() or None
    state = (params.get("state") or "open").strip()
    code = (params.get("code") or "").strip().upper() or None
    edge = (params.get("edge") or "").strip() or None
    if node is not None and node not in ex.nodes:
        raise ApiError("REQUEST_INVALID", 422, "node")
    if dataset is not None and dataset not in schemas.DATASETS:
        raise ApiError("REQUEST_INVALID", 422, "dataset")
    if kind is not None and kind not in review.KINDS:
        raise ApiError("REQUEST_INVALID", 422, "kind")
    if state not in (*review.STATES, "all"):
        raise ApiError("REQUEST_INVALID", 422, "state")
    if code is not None and (len(code) > 64 or not all(c.isalnum() or c == "_" for c in code)):
        raise ApiError("REQUEST_INVALID", 422, "code")
    if edge is not None and len(edge) > 200:
        raise ApiError("REQUEST_INVALID", 422, "edge")
    return Filter(
        node=node,
        dataset=dataset,
        code=code,
        kind=kind,
        state=None if state == "all" else state,
        edge=edge,
        since=_when("since", params.get("since")),
        until=_when("until", params.get("until"), end=True),
    )


def _filter_query(f: Filter, raw: Any) -> dict[str, str]:
    keys = ("node", "dataset", "code", "kind", "state", "edge", "since", "until", "sort", "size")
    return {k: str(raw.get(k)) for k in keys if raw.get(k)}


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    """One list row, masked."""
    key = row.get("row_key")
    if key and row["dataset"] in schemas.DATASETS:
        field = schemas.get(row["dataset"]).key
        key = mask_row(row["dataset"], {field: key})[field]
    payload = review.payload_of(row)
    name = payload.get("name") if row["kind"] == "file" and isinstance(payload, dict) else None
    return {
        "ref": row["ref"],
        "node": row["node"],
        "kind": row["kind"],
        "state": row["state"],
        "version": row["version"],
        "edge": row["edge"],
        "dataset": row["dataset"],
        "row_number": row["row_number"],
        "key": key or (mask_any(str(name)) if name else None),
        "codes": row["codes"].split(","),
        "message_zh": mask_any(row["message_zh"]),
        "message_en": mask_any(row["message_en"]),
        "attempts": row["attempts"],
        "created_at": row["created_at"],
    }


@router.get("", response_class=HTMLResponse)
def overview_page(request: Request, who: Operator, settings: Settings) -> Response:
    data = review.overview(settings.exchange, settings.libraries)
    for edge in data["edges"]:  # an error's text may quote a value: identity numbers masked
        edge["last_error"] = mask_any(edge["last_error"])
    names = {code: node.name for code, node in settings.exchange.nodes.items()}
    return render(
        request,
        "review_overview.html",
        data=data,
        names=names,
        chart_json=json.dumps(_charts(data), ensure_ascii=False),
    )


def _charts(data: dict[str, Any]) -> dict[str, Any]:
    """What the charts draw (the same numbers as the tables beside them)."""
    return {
        "by_node": [[f"{r['node']} {r['name']}", r["open"]] for r in data["by_node"]],
        "by_dataset": [[r["dataset"], r["open"]] for r in data["by_dataset"]],
        "by_code": [[r["code"], r["open"]] for r in data["by_code"][:20]],
        "per_day": [[r["day"], r["failures"], r["loaded"]] for r in data["per_day"]],
        "lag": [
            [e["edge"], round(e["lag_seconds"] / 60, 1) if e["lag_seconds"] is not None else None]
            for e in data["edges"]
        ],
    }


@router.get("/failures", response_class=HTMLResponse)
def list_page(request: Request, who: Operator, settings: Settings) -> Response:
    params = request.query_params
    f = list_filter(settings, params)
    sort = params.get("sort") or "newest"
    if sort not in ("newest", "oldest"):
        raise ApiError("REQUEST_INVALID", 422, "sort")
    try:
        size = int(params.get("size") or 50)
    except ValueError:
        raise ApiError("REQUEST_INVALID", 422, "size") from None
    if size not in PAGE_SIZES:
        raise ApiError("REQUEST_INVALID", 422, "size")
    after = params.get("after") or None
    if after is not None and len(after) > 400:
        raise ApiError("REQUEST_INVALID", 422, "after")
    page = review.page(
        settings.exchange, settings.libraries, f, after=after, size=size, newest_first=sort == "newest"
    )
    total = review.count(settings.exchange, settings.libraries, f)
    query = _filter_query(f, params)
    next_url = f"?{urlencode({**query, 'after': page.next})}" if page.next else None
    return render(
        request,
        "review_list.html",
        rows=[_brief(r) for r in page.rows],
        total=total,
        query=query,
        first_url=f"?{urlencode(query)}" if after else None,
        next_url=next_url,
        nodes=settings.exchange.nodes,
        datasets=list(schemas.DATASETS),
        kinds=review.KINDS,
        states=(*review.STATES, "all"),
        sizes=PAGE_SIZES,
        f=f,
        sort=sort,
        size=size,
        results=None,
    )


def _origin(row: dict[str, Any], payload: Any) -> dict[str, Any]:
    """Where it came from: the system or node, the file or batch, the row."""
    ex_source = row["source"]
    out: dict[str, Any] = {"source": ex_source, "batch": row.get("batch_id"), "row": row.get("row_number")}
    where = row.get("where") or ""
    out["where"] = where
    if row["kind"] == "file" and isinstance(payload, dict):
        out["file"] = payload.get("name")
    if row["kind"] == "row" and where and ":" in where:
        place = where.rsplit(":", 1)[0]
        if "/" in place:
            out["file"] = place.rsplit("/", 1)[-1]
    log_url = payload.get("log_url") if isinstance(payload, dict) else None
    if isinstance(log_url, str) and urlsplit(log_url).scheme in ("http", "https"):
        out["log_url"] = log_url
    return out


def detail_context(settings: WebSettings, ref: Ref, *, reveal: bool = False) -> dict[str, Any]:
    """Everything the detail page shows, masked unless ``reveal``."""
    ex, libs = settings.exchange, settings.libraries
    row = review.get(ex, libs, ref)
    payload = review.payload_of(row)
    dataset = row["dataset"]
    findings: list[Any] = []
    fields: list[dict[str, Any]] = []
    if row["kind"] == "row" and isinstance(payload, dict) and dataset in schemas.DATASETS:
        try:
            findings, _ = review.findings(ex, row["edge"], dataset, payload)
        except TongbanError:
            findings = []
        spec = schemas.get(dataset)
        shown = mask_row(dataset, payload, reveal=reveal)
        failing = {f.field for f in findings if f.severity == "error"}
        fields = [
            {
                "name": name,
                "label": spec.field(name).label,
                "value": shown.get(name),
                "failing": name in failing,
                "key": name == spec.key,
            }
            for name in spec.names
        ]
    origin = _origin(row, payload)
    key = row.get("row_key")
    if key and dataset in schemas.DATASETS and not reveal:
        field = schemas.get(dataset).key
        key = mask_row(dataset, {field: key})[field]
    other = None
    if row["kind"] != "row" and payload is not None:
        other = payload if reveal else mask_any(payload)
        if isinstance(other, dict):
            other = {k: v for k, v in other.items() if k != "log_url"}
    resubmittable = retryable = True
    try:
        review.check_allowed(ex, "resubmit", row)
    except TongbanError:
        resubmittable = False
    try:
        review.check_allowed(ex, "retry", row)
    except TongbanError:
        retryable = False
    return {
        "arrivals": _arrivals(settings, row, reveal=reveal),
        "row": {
            **row,
            "row_key": key,
            "message_zh": row["message_zh"] if reveal else mask_any(row["message_zh"]),
            "message_en": row["message_en"] if reveal else mask_any(row["message_en"]),
            "codes": row["codes"].split(","),
        },
        "findings": findings,
        "fields": fields,
        "other": json.dumps(other, ensure_ascii=False, indent=1) if other is not None else None,
        "origin": {k: (v if reveal else mask_any(v)) for k, v in origin.items()},
        "history": review.history(libs, ref),
        "revealed": reveal,
        "active": row["state"] in ("open", "queued"),
        "resubmittable": resubmittable and row["state"] in ("open", "queued"),
        "retryable": retryable and row["state"] in ("open", "queued"),
    }


def _arrivals(settings: WebSettings, row: dict[str, Any], *, reveal: bool) -> list[dict[str, Any]]:
    """Where the row's record is now, from the node keeping the failure up to the national library
    (the resubmitted key, when a resubmission corrected it): the operator watches it arrive."""
    dataset = row["dataset"]
    if row["kind"] != "row" or dataset not in schemas.DATASETS or row["state"] not in ("queued", "resolved"):
        return []
    spec = schemas.get(dataset)
    pending = review.payload_of({"payload": row.get("pending")})
    key = row.get("row_key")
    if (
        isinstance(pending, dict)
        and pending.get("action") == "resubmit"
        and isinstance(pending.get("row"), dict)
    ):
        key = pending["row"].get(spec.key) or key
    if not key:
        return []
    ex, out = settings.exchange, []
    node: str | None = row["node"]
    while node:
        entry: dict[str, Any] = {"node": node, "name": ex.nodes[node].name, "present": False}
        try:
            record = settings.libraries.get(node).record(dataset, str(key))
        except TongbanError:
            record, entry["unreachable"] = None, True
        if record is not None:
            entry.update(
                present=True,
                at=record["_synced_at"],
                batch=str(record["_batch"])[:16],
                owner=record["_owner"],
            )
        out.append(entry)
        node = ex.nodes[node].parent
    shown = key if reveal else mask_row(dataset, {spec.key: key})[spec.key]
    for entry in out:
        entry["key"] = shown
    return out


@router.get("/failures/{ident}", response_class=HTMLResponse)
def detail_page(request: Request, ident: str, who: Operator, settings: Settings) -> Response:
    ref = Ref.parse(ident)
    done = request.query_params.get("done")
    return render(
        request,
        "review_detail.html",
        **detail_context(settings, ref),
        ref=str(ref),
        may_reveal=who.has(REVEAL),
        done=done if done in ("retry", "resubmit", "discard", "resolve") else None,
        error=None,
    )
