"""Operator review of failed transfers: find them, look at them, act on them — one or many.

- :mod:`.query`: filters, keyset pages across the nodes' libraries, one failure and its history;
- :mod:`.edit`: an edited row checked again before it is queued (contract, key, owner);
- :mod:`.actions`: retry, resubmit, discard, resolve and reveal, with optimistic concurrency and audit;
- :mod:`.apply`: running the edges with queued work (the ``tongban_review`` maintenance DAG);
- :mod:`.overview`: the numbers of the page's charts;
- :mod:`.operators`: operator accounts (scrypt-hashed passwords, the right to reveal);
- :mod:`.errors`: the refusal every action ends with.

What a sync does to failures by itself (kept once, resolved when the same key arrives clean, when a
replaced file loads, when the edge next succeeds) lives with the store (:mod:`tongban.core.store.failures`).
"""

from __future__ import annotations

from tongban.core.review.actions import (
    ACTIONS,
    Auditor,
    Outcome,
    act,
    act_many,
    check_allowed,
    payload_of,
    reveal,
)
from tongban.core.review.apply import apply_queued, edges_to_apply
from tongban.core.review.edit import Finding, apply_edit, findings, parse_assignments
from tongban.core.review.errors import ReviewError
from tongban.core.review.overview import overview
from tongban.core.review.query import KINDS, STATES, Filter, Page, Ref, count, get, history, page, select_refs

__all__ = [
    "ACTIONS",
    "KINDS",
    "STATES",
    "Auditor",
    "Filter",
    "Finding",
    "Outcome",
    "Page",
    "Ref",
    "ReviewError",
    "act",
    "act_many",
    "apply_edit",
    "apply_queued",
    "check_allowed",
    "count",
    "edges_to_apply",
    "findings",
    "get",
    "history",
    "overview",
    "page",
    "parse_assignments",
    "payload_of",
    "reveal",
    "select_refs",
]
