"""``HttpSessionService``: ADK's ``BaseSessionService`` on the ``sessions``
HTTP function."""

from __future__ import annotations

import asyncio
from typing import Any
from typing import Mapping
from typing import Optional
import uuid
import weakref

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.sessions.base_session_service import GetSessionConfig
from google.adk.sessions.base_session_service import ListSessionsResponse
from google.adk.sessions.session import Session
from google.adk.sessions.state import State
from typing_extensions import override

from . import _wire
from ._http import DEFAULT_MAX_ATTEMPTS
from ._http import DEFAULT_MAX_RETRY_WAIT
from ._http import DEFAULT_TIMEOUT
from ._http import HttpCore
from ._http import segment
from .errors import SessionsHttpError

try:  # google-adk >= 2.x
  from google.adk.errors._stale_session_error import StaleSessionError
except ImportError:  # pragma: no cover - older ADK: its services raised ValueError

  class StaleSessionError(ValueError):  # type: ignore[no-redef]
    """Raised when a session write loses an optimistic concurrency race."""


__all__ = ['HttpSessionService', 'StaleSessionError', 'STALE_SESSION_MESSAGE']


# ADK's DatabaseSessionService says this, and callers match on it.
STALE_SESSION_MESSAGE = (
    'The session has been modified in storage since it was loaded. '
    'Please reload the session before appending more events.'
)

# How far back an append that may have been applied (a 503 followed by a
# retry that met a conflict) looks for its event.
_RECOVERY_WINDOW = 16


class HttpSessionService(BaseSessionService):
  """Sessions kept by the ``sessions`` function (Redis, SQL or memory).

  Args:
    base_url: The function's URL, e.g. ``http://127.0.0.1:8080``.
    timeout: Seconds to wait for each HTTP request.
    headers: Headers sent with every request (e.g. ``Authorization``).
    max_attempts: Attempts of one call when the function answers ``503``
      with ``Retry-After`` (the only answer that is retried).
    max_retry_wait: The longest wait before a retry, in seconds, whatever
      ``Retry-After`` says.
    transport: An ``httpx`` transport (tests).

  Behaviour, as ADK's services:

  - ``get_session`` returns ``None`` for a missing (or expired) session.
  - ``create_session`` raises ``AlreadyExistsError`` for a taken id; without
    an id it makes a UUID4, as ADK does.
  - ``append_event`` ignores partial events, keeps ``temp:`` keys in the
    session object only, raises ``SessionNotFoundError`` when the session is
    gone and ``StaleSessionError`` (a ``ValueError``, "modified in storage")
    when the session object is older than what is stored: the object's
    sequence number is sent as ``expected_seq``. Appends to one session from
    one service object are serialised, as in ADK's SQL service.
  - ``list_sessions`` returns sessions without events, oldest update first.
  """

  def __init__(
      self,
      base_url: str,
      *,
      timeout: float = DEFAULT_TIMEOUT,
      headers: Mapping[str, str] | None = None,
      max_attempts: int = DEFAULT_MAX_ATTEMPTS,
      max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
      transport: Any = None,
  ) -> None:
    self._http = HttpCore(
        base_url,
        timeout=timeout,
        headers=headers,
        max_attempts=max_attempts,
        max_retry_wait=max_retry_wait,
        transport=transport,
    )
    self._locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
        weakref.WeakValueDictionary()
    )
    self._has_state_route: bool | None = None

  @property
  def base_url(self) -> str:
    return self._http.base_url

  async def close(self) -> None:
    """Closes the pooled HTTP connections."""
    await self._http.aclose()

  async def __aenter__(self) -> HttpSessionService:
    return self

  async def __aexit__(self, *exc: object) -> None:
    await self.close()

  @staticmethod
  def _user_path(app_name: str, user_id: str) -> str:
    return f'/apps/{segment(app_name)}/users/{segment(user_id)}'

  def _session_path(self, app_name: str, user_id: str, session_id: str) -> str:
    return f'{self._user_path(app_name, user_id)}/sessions/{segment(session_id)}'

  @override
  async def create_session(
      self,
      *,
      app_name: str,
      user_id: str,
      state: Optional[dict[str, Any]] = None,
      session_id: Optional[str] = None,
  ) -> Session:
    generated = session_id is None
    if session_id is None:
      session_id = str(uuid.uuid4())
    reply = await self._http.request(
        'POST',
        f'{self._user_path(app_name, user_id)}/sessions',
        json={'session_id': session_id, 'state': _wire.json_safe_state(state)},
        expect=(201,),
    )
    if reply.status == 201:
      return _wire.session_from_wire(reply.body)
    if reply.status == 409 and reply.code == 'already_exists':
      if generated and reply.retried:
        # Our own first attempt was applied though its reply was a 503: the
        # id is a fresh UUID, nobody else took it.
        session = await self.get_session(
            app_name=app_name, user_id=user_id, session_id=session_id
        )
        if session is not None:
          return session
      raise AlreadyExistsError(f'Session with id {session_id} already exists.')
    raise _unexpected(reply.status, reply.code, reply.message)

  @override
  async def get_session(
      self,
      *,
      app_name: str,
      user_id: str,
      session_id: str,
      config: Optional[GetSessionConfig] = None,
  ) -> Optional[Session]:
    params: dict[str, Any] = {}
    if config is not None:
      if config.num_recent_events is not None:
        params['num_recent_events'] = config.num_recent_events
      if config.after_timestamp is not None:
        params['after_timestamp'] = repr(float(config.after_timestamp))
    reply = await self._http.request(
        'GET',
        self._session_path(app_name, user_id, session_id),
        params=params or None,
    )
    if reply.status == 404:
      return None
    if reply.status != 200:
      raise _unexpected(reply.status, reply.code, reply.message)
    return _wire.session_from_wire(reply.body)

  @override
  async def list_sessions(
      self, *, app_name: str, user_id: Optional[str] = None
  ) -> ListSessionsResponse:
    if user_id is None:
      path = f'/apps/{segment(app_name)}/sessions'
    else:
      path = f'{self._user_path(app_name, user_id)}/sessions'
    reply = await self._http.request('GET', path)
    if reply.status == 404 and user_id is None:
      raise NotImplementedError(
          'this sessions function cannot list the sessions of every user'
          ' (GET /apps/{app}/sessions is missing): update the function'
      )
    if reply.status != 200:
      raise _unexpected(reply.status, reply.code, reply.message)
    sessions = [_wire.session_from_wire(s) for s in reply.body['sessions']]
    sessions.sort(key=lambda s: (s.last_update_time, s.user_id, s.id))
    return ListSessionsResponse(sessions=sessions)

  @override
  async def delete_session(
      self, *, app_name: str, user_id: str, session_id: str
  ) -> None:
    reply = await self._http.request(
        'DELETE',
        self._session_path(app_name, user_id, session_id),
        expect=(204, 200),
    )
    if reply.status not in (204, 200, 404):
      raise _unexpected(reply.status, reply.code, reply.message)

  @override
  async def get_user_state(
      self, *, app_name: str, user_id: str
  ) -> dict[str, Any]:
    if self._has_state_route is not False:
      reply = await self._http.request(
          'GET', f'{self._user_path(app_name, user_id)}/state'
      )
      if reply.status == 200:
        self._has_state_route = True
        return dict(reply.body.get('state') or {})
      if reply.status != 404:
        raise _unexpected(reply.status, reply.code, reply.message)
      self._has_state_route = False
    # A function without the route: user state is only readable merged into
    # a session's state.
    listed = await self.list_sessions(app_name=app_name, user_id=user_id)
    if not listed.sessions:
      return {}
    return {
        k.removeprefix(State.USER_PREFIX): v
        for k, v in listed.sessions[-1].state.items()
        if k.startswith(State.USER_PREFIX)
    }

  def _lock(self, session: Session) -> asyncio.Lock:
    key = (session.app_name, session.user_id, session.id)
    lock = self._locks.get(key)
    if lock is None:
      lock = asyncio.Lock()
      self._locks[key] = lock
    return lock

  @override
  async def append_event(self, session: Session, event: Event) -> Event:
    if event.partial:
      return event
    self._apply_temp_state(session, event)
    event = self._trim_temp_delta_state(event)
    async with self._lock(session):
      expected = _wire.expected_seq(session)
      body: dict[str, Any] = {'event': _wire.event_to_wire(event)}
      if expected is not None:
        body['expected_seq'] = expected
      reply = await self._http.request(
          'POST',
          self._session_path(session.app_name, session.user_id, session.id)
          + '/events',
          json=body,
      )
      if reply.status == 200:
        seq, timestamp, event_id = (
            reply.body.get('seq'),
            reply.body['timestamp'],
            reply.body['event_id'],
        )
        if reply.body.get('duplicate') and any(
            e.id == event_id for e in session.events
        ):
          # The function already held this event id, and so does this
          # session object: a repeated append, as ADK's in-memory service
          # takes it, changes nothing.
          return event
      elif reply.status == 404:
        raise SessionNotFoundError(f'Session {session.id} not found.')
      elif reply.status == 409 and reply.code == 'stale':
        found = None
        if reply.retried:
          found = await self._find_stored(session, event.id)
        if found is None:
          raise StaleSessionError(STALE_SESSION_MESSAGE)
        seq, timestamp, event_id = found
      else:
        raise _unexpected(reply.status, reply.code, reply.message)
      if seq is None:
        # Not stored (the function saw it as partial).
        return event
      event.id = event_id
      if event.timestamp != timestamp:
        # A retry that found the event stored (duplicate): the stored one's
        # timestamp, so the session object equals what a read returns.
        event.timestamp = timestamp
      session.last_update_time = float(timestamp)
      _wire.set_marker(session, int(seq))
    return self._commit_event_to_session(session, event)

  async def _find_stored(
      self, session: Session, event_id: str
  ) -> tuple[int, float, str] | None:
    """The event's (seq, timestamp, id) if an earlier attempt stored it."""
    reply = await self._http.request(
        'GET',
        self._session_path(session.app_name, session.user_id, session.id),
        params={'num_recent_events': _RECOVERY_WINDOW},
    )
    if reply.status != 200:
      return None
    for stored in reply.body.get('events') or []:
      if stored.get('id') == event_id:
        return int(stored['seq']), float(stored['timestamp']), event_id
    return None


def _unexpected(status: int, code: str | None, message: str) -> Exception:
  return SessionsHttpError(status, code, message)
