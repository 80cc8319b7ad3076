"""The dependencies every route shares, API and desk alike: the services, and who is asking with
what permission. Permission checks happen here, at the edge, and nowhere below.

Who is asking: on the API, the key in ``Authorization: Bearer`` (or ``X-Api-Key``); on the desk
(``/desk/``), the key id the signed session cookie remembers. An unknown caller is
``Unauthenticated`` (the API answers 401, the desk sends the browser to its sign-in page); a caller
without the permission is ``Forbidden`` (403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from registry_service.auth import Actor, Permission, Unauthenticated
from registry_service.http import client_address
from registry_service.services import Filing, Proofs, Queries, Queues, Services, Status, Submissions

bearer = HTTPBearer(auto_error=False, description="An API key: `lr_<key id>_<secret>` (see `landreg keys create`)")
DESK = "/desk"


# Dependencies are coroutines: a plain function would cost each request a hop to the thread pool.
async def services(request: Request) -> Services:
    return request.app.state.services


async def _filing(request: Request) -> Filing:
    return request.app.state.services.filing


async def _queries(request: Request) -> Queries:
    return request.app.state.services.queries


async def _proofs(request: Request) -> Proofs:
    return request.app.state.services.proofs


async def _status(request: Request) -> Status:
    return request.app.state.services.status


async def _submissions(request: Request) -> Submissions:
    return request.app.state.services.submissions


async def _queues(request: Request) -> Queues:
    return request.app.state.services.queues


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    x_api_key: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Actor | None:
    """Who is asking, or None for an anonymous caller."""
    keys = request.app.state.keys
    if request.url.path.startswith(DESK):
        key_id = request.session.get("key_id")
        if not key_id:
            return None
        found = keys.actor_by_id(key_id)
        if found is None:
            request.session.clear()  # the key was revoked: its session ends with it
        return found
    presented = credentials.credentials if credentials else x_api_key
    if presented is None:
        return None
    return keys.actor_for(presented, client_address(request))


def require(found: Actor | None, permission: Permission) -> Actor:
    """``found``, who must be known and hold ``permission`` (for a route whose permission depends on
    its input, such as a filing that may be a correction)."""
    if found is None:
        raise Unauthenticated("an API key is required")
    found.require(permission)
    return found


def permitted(permission: Permission) -> Callable[..., Awaitable[Actor]]:
    """A dependency: the caller, who must hold ``permission``."""

    async def check(found: Annotated[Actor | None, Depends(caller)]) -> Actor:
        return require(found, permission)

    check.__name__ = f"requires_{permission.value}"
    return check


ServicesDep = Annotated[Services, Depends(services)]
FilingDep = Annotated[Filing, Depends(_filing)]
QueriesDep = Annotated[Queries, Depends(_queries)]
ProofsDep = Annotated[Proofs, Depends(_proofs)]
StatusDep = Annotated[Status, Depends(_status)]
SubmissionsDep = Annotated[Submissions, Depends(_submissions)]
QueuesDep = Annotated[Queues, Depends(_queues)]

Caller = Annotated[Actor | None, Depends(caller)]  # anyone, identified if possible
Reader = Annotated[Actor, Depends(permitted(Permission.READ))]
Filer = Annotated[Actor, Depends(permitted(Permission.FILE))]
Corrector = Annotated[Actor, Depends(permitted(Permission.CORRECT))]
ProofReader = Annotated[Actor, Depends(permitted(Permission.PROOF))]
Examiner = Annotated[Actor, Depends(permitted(Permission.EXAMINE))]
Operator = Annotated[Actor, Depends(permitted(Permission.OPERATE))]
Acknowledger = Annotated[Actor, Depends(permitted(Permission.ACKNOWLEDGE))]
