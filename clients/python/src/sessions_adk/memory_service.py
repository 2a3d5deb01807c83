"""``HttpMemoryService``: ADK's ``BaseMemoryService`` on the ``sessions``
HTTP function's memory routes."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.memory.base_memory_service import BaseMemoryService
from google.adk.memory.base_memory_service import SearchMemoryResponse
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.sessions.session import Session
from google.genai import types
from typing_extensions import override

from . import _wire
from ._http import DEFAULT_MAX_ATTEMPTS
from ._http import DEFAULT_MAX_RETRY_WAIT
from ._http import DEFAULT_TIMEOUT
from ._http import HttpCore
from ._http import segment
from .errors import SessionsHttpError
from .errors import SessionsRequestError

# The function looks at the first 1024 bytes of a query (its first 16
# distinct words); a longer one (a whole user message, from the
# preload_memory tool) is cut here instead of being refused.
MAX_QUERY_BYTES = 1024
DEFAULT_SEARCH_LIMIT = 10


def _cut(query: str, limit: int = MAX_QUERY_BYTES) -> str:
  data = query.encode('utf-8')
  if len(data) <= limit:
    return query
  return data[:limit].decode('utf-8', errors='ignore')


def _format_timestamp(timestamp: float) -> str:
  # As ADK's memory services format it (local time, ISO 8601).
  return datetime.fromtimestamp(timestamp).isoformat()


def entry_from_wire(data: dict[str, Any]) -> MemoryEntry:
  """A memory entry of the function as ADK's ``MemoryEntry``.

  The function keeps the event's ``content`` when it has it (proposed); an
  entry without it is rebuilt from its text, with the role ADK gives the
  author (``user`` or ``model``).
  """
  author = data.get('author')
  content = data.get('content')
  if isinstance(content, dict):
    rebuilt = types.Content.model_validate(content)
  else:
    rebuilt = types.Content(
        role='user' if author == 'user' else 'model',
        parts=[types.Part(text=data.get('text') or '')],
    )
  timestamp = data.get('timestamp')
  metadata = {}
  if data.get('session_id'):
    metadata['session_id'] = data['session_id']
  return MemoryEntry(
      id=data.get('event_id'),
      author=author,
      content=rebuilt,
      timestamp=_format_timestamp(float(timestamp)) if timestamp else None,
      custom_metadata=metadata,
  )


class HttpMemoryService(BaseMemoryService):
  """Memory kept by the ``sessions`` function: what was said in earlier
  sessions, found by word.

  ``add_session_to_memory(session)`` asks the function to remember the
  session as it has stored it (every event with text; adding a session again
  updates its entries). ``search_memory`` returns entries holding a word of
  the query, newest first, at most ``search_limit``.

  Args: as :class:`sessions_adk.HttpSessionService`, plus ``search_limit``
  (1 to 100).
  """

  def __init__(
      self,
      base_url: str,
      *,
      timeout: float = DEFAULT_TIMEOUT,
      headers: Mapping[str, str] | None = None,
      max_attempts: int = DEFAULT_MAX_ATTEMPTS,
      max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT,
      search_limit: int = DEFAULT_SEARCH_LIMIT,
      transport: Any = None,
  ) -> None:
    if not 1 <= search_limit <= 100:
      raise ValueError('search_limit must be from 1 to 100')
    self._http = HttpCore(
        base_url,
        timeout=timeout,
        headers=headers,
        max_attempts=max_attempts,
        max_retry_wait=max_retry_wait,
        transport=transport,
    )
    self.search_limit = search_limit

  async def close(self) -> None:
    await self._http.aclose()

  async def __aenter__(self) -> HttpMemoryService:
    return self

  async def __aexit__(self, *exc: object) -> None:
    await self.close()

  @staticmethod
  def _memory_path(app_name: str, user_id: str) -> str:
    return f'/apps/{segment(app_name)}/users/{segment(user_id)}/memory'

  @override
  async def add_session_to_memory(self, session: Session) -> None:
    reply = await self._http.request(
        'POST',
        self._memory_path(session.app_name, session.user_id),
        json={'session_id': session.id},
    )
    if reply.status == 200:
      return
    if reply.status == 404:
      # Not a session of this function: remember the events it carries.
      if session.events:
        await self.add_events_to_memory(
            app_name=session.app_name,
            user_id=session.user_id,
            session_id=session.id,
            events=session.events,
        )
        return
      raise SessionNotFoundError(f'Session {session.id} not found.')
    raise SessionsHttpError(reply.status, reply.code, reply.message)

  @override
  async def add_events_to_memory(
      self,
      *,
      app_name: str,
      user_id: str,
      events: Sequence[Event],
      session_id: str | None = None,
      custom_metadata: Mapping[str, object] | None = None,
  ) -> None:
    del custom_metadata  # nothing the function keeps
    body = {
        'session_id': session_id or '__unknown_session_id__',
        'events': [_wire.event_to_wire(e) for e in events],
    }
    try:
      reply = await self._http.request(
          'POST', self._memory_path(app_name, user_id), json=body
      )
    except SessionsRequestError as e:
      if e.code == 'invalid_body':
        raise NotImplementedError(
            'this sessions function cannot remember events it does not store'
            ' (POST .../memory with "events" is missing): update the function'
        ) from e
      raise
    if reply.status != 200:
      raise SessionsHttpError(reply.status, reply.code, reply.message)

  @override
  async def search_memory(
      self, *, app_name: str, user_id: str, query: str
  ) -> SearchMemoryResponse:
    reply = await self._http.request(
        'GET',
        self._memory_path(app_name, user_id),
        params={'query': _cut(query), 'limit': self.search_limit},
    )
    if reply.status != 200:
      raise SessionsHttpError(reply.status, reply.code, reply.message)
    return SearchMemoryResponse(
        memories=[entry_from_wire(m) for m in reply.body.get('memories') or []]
    )

  @override
  async def delete_memory(
      self, *, app_name: str, user_id: str, memory_id: str | None = None
  ) -> None:
    if not memory_id:
      return
    reply = await self._http.request(
        'DELETE',
        f'{self._memory_path(app_name, user_id)}/{segment(memory_id)}',
        expect=(204, 200),
    )
    if reply.status == 404:
      raise NotImplementedError(
          'this sessions function cannot delete a memory'
          ' (DELETE .../memory/{id} is missing): update the function'
      )
    if reply.status not in (200, 204):
      raise SessionsHttpError(reply.status, reply.code, reply.message)
