"""ADK objects to and from the function's JSON.

An event travels as ADK's ``DatabaseSessionService`` stores it:
``event.model_dump(mode="json", exclude_none=True)`` (field names in
snake_case, bytes in base64), and comes back through ``Event.model_validate``.
The function adds ``seq`` to every stored event; it is dropped here.

A session read from the function carries its sequence number (``last_seq``);
it is kept in the session's storage revision marker, the private attribute
ADK's own persistent services use for stale-writer detection, as
``"seq:<n>"``. An append sends it back as ``expected_seq``.
"""

from __future__ import annotations

from typing import Any
from typing import cast

from google.adk.events.event import Event
from google.adk.sessions.session import Session
from pydantic_core import to_jsonable_python

MARKER_PREFIX = 'seq:'


def json_safe_state(state: dict[str, Any] | None) -> dict[str, Any]:
  """A state as JSON values (what ADK's SQL service stores); values that
  cannot be encoded become their ``str``."""
  if not state:
    return {}
  return cast(dict[str, Any], to_jsonable_python(state, fallback=str))


def event_to_wire(event: Event) -> dict[str, Any]:
  return event.model_dump(mode='json', exclude_none=True)


def event_from_wire(data: dict[str, Any]) -> Event:
  data = dict(data)
  data.pop('seq', None)
  return Event.model_validate(data)


def set_marker(session: Session, seq: int) -> None:
  session._storage_update_marker = f'{MARKER_PREFIX}{seq}'  # pylint: disable=protected-access


def expected_seq(session: Session) -> int | None:
  """The sequence number the session object was read at, if it came from
  this client (a session built by hand has none: its append is unconditional)."""
  marker = getattr(session, '_storage_update_marker', None)
  if isinstance(marker, str) and marker.startswith(MARKER_PREFIX):
    try:
      return int(marker[len(MARKER_PREFIX) :])
    except ValueError:
      return None
  return None


def session_from_wire(data: dict[str, Any]) -> Session:
  session = Session(
      id=data['id'],
      app_name=data['app_name'],
      user_id=data['user_id'],
      state=data.get('state') or {},
      events=[event_from_wire(e) for e in data.get('events') or []],
      last_update_time=float(data.get('last_update_time') or 0.0),
  )
  set_marker(session, int(data.get('last_seq') or 0))
  return session
