"""``HttpSessionService`` against the function: ADK's documented behaviour
of a session service (``BaseSessionService`` and what ``InMemorySessionService``
and ``DatabaseSessionService`` do), on every backend."""

from __future__ import annotations

import asyncio
import time
import uuid

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types
import pytest

from sessions_adk import StaleSessionError


def text_event(author: str, text: str, **kwargs) -> Event:
  return Event(
      invocation_id=kwargs.pop('invocation_id', 'inv'),
      author=author,
      content=types.Content(role='user' if author == 'user' else 'model', parts=[types.Part(text=text)]),
      **kwargs,
  )


async def test_get_of_a_missing_session_is_none(service, app):
  assert await service.get_session(app_name=app, user_id='u', session_id='nope') is None


async def test_create_then_get_returns_an_equal_session(service, app):
  before = time.time()
  session = await service.create_session(app_name=app, user_id='u', state={'key': 'value'})
  assert session.app_name == app and session.user_id == 'u'
  assert str(uuid.UUID(session.id)) == session.id, 'a fresh id is a UUID, as ADK makes'
  assert session.state == {'key': 'value'}
  assert session.events == []
  assert before - 1 <= session.last_update_time <= time.time() + 1
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert got == session


async def test_create_with_a_taken_id_raises_already_exists(service, app):
  await service.create_session(app_name=app, user_id='u', session_id='s')
  with pytest.raises(AlreadyExistsError):
    await service.create_session(app_name=app, user_id='u', session_id='s')
  # The same id for another user or app is another session.
  await service.create_session(app_name=app, user_id='v', session_id='s')


async def test_delete_removes_the_session_and_deleting_again_is_fine(service, app):
  s = await service.create_session(app_name=app, user_id='u', session_id='s')
  await service.append_event(s, text_event('user', 'hello'))
  await service.delete_session(app_name=app, user_id='u', session_id='s')
  assert await service.get_session(app_name=app, user_id='u', session_id='s') is None
  await service.delete_session(app_name=app, user_id='u', session_id='s')
  # The id is free again, with no events.
  again = await service.create_session(app_name=app, user_id='u', session_id='s')
  assert again.events == []


async def test_list_sessions_of_a_user_without_events_with_merged_state(service, app):
  ids = [f'session{i}' for i in range(5)]
  for sid in ids:
    s = await service.create_session(
        app_name=app, user_id='u', session_id=sid, state={'key': 'value' + sid}
    )
    await service.append_event(s, text_event('user', 'hi ' + sid, actions=EventActions(state_delta={'user:seen': sid})))
  await service.create_session(app_name=app, user_id='other', session_id='x')
  listed = (await service.list_sessions(app_name=app, user_id='u')).sessions
  assert {s.id for s in listed} == set(ids)
  for s in listed:
    assert s.events == []
    assert s.state == {'key': 'value' + s.id, 'user:seen': 'session4'}
  # Oldest update first, as ADK's services order them.
  times = [s.last_update_time for s in listed]
  assert times == sorted(times)
  assert (await service.list_sessions(app_name=app, user_id='nobody')).sessions == []


@pytest.mark.proposed_api
async def test_list_sessions_of_every_user_when_user_id_is_none(service, app):
  await service.create_session(app_name=app, user_id='user1', session_id='session1a', state={'key': 'value1a'})
  await service.create_session(app_name=app, user_id='user1', session_id='session1b', state={'key': 'value1b'})
  await service.create_session(app_name=app, user_id='user2', session_id='session2a', state={'key': 'value2a'})
  listed = (await service.list_sessions(app_name=app, user_id=None)).sessions
  assert {(s.user_id, s.id): s.state for s in listed} == {
      ('user1', 'session1a'): {'key': 'value1a'},
      ('user1', 'session1b'): {'key': 'value1b'},
      ('user2', 'session2a'): {'key': 'value2a'},
  }
  assert all(s.events == [] for s in listed)


async def test_app_state_is_shared_by_every_user_of_the_app(service, app):
  s1 = await service.create_session(app_name=app, user_id='u1', session_id='s1', state={'app:k1': 'v1'})
  await service.append_event(s1, Event(invocation_id='inv1', author='user', actions=EventActions(state_delta={'app:k2': 'v2'})))
  s2 = await service.create_session(app_name=app, user_id='u2', session_id='s2')
  assert s2.state == {'app:k1': 'v1', 'app:k2': 'v2'}
  got = await service.get_session(app_name=app, user_id='u1', session_id='s1')
  assert got.state == {'app:k1': 'v1', 'app:k2': 'v2'}


async def test_user_state_is_shared_only_by_the_users_sessions(service, app):
  s1 = await service.create_session(app_name=app, user_id='u1', session_id='s1', state={'user:k1': 'v1'})
  await service.append_event(s1, Event(invocation_id='inv1', author='user', actions=EventActions(state_delta={'user:k2': 'v2'})))
  s1b = await service.create_session(app_name=app, user_id='u1', session_id='s1b')
  assert s1b.state == {'user:k1': 'v1', 'user:k2': 'v2'}
  s2 = await service.create_session(app_name=app, user_id='u2', session_id='s2')
  assert s2.state == {}


async def test_session_state_is_not_shared(service, app):
  s1 = await service.create_session(app_name=app, user_id='u1', session_id='s1', state={'sk1': 'v1'})
  await service.append_event(s1, Event(invocation_id='inv1', author='user', actions=EventActions(state_delta={'sk2': 'v2'})))
  got = await service.get_session(app_name=app, user_id='u1', session_id='s1')
  assert got.state == {'sk1': 'v1', 'sk2': 'v2'}
  s1b = await service.create_session(app_name=app, user_id='u1', session_id='s1b')
  assert s1b.state == {}


async def test_temp_state_lives_in_the_session_object_only(service, app):
  session = await service.create_session(app_name=app, user_id='u1', session_id='s1', state={'temp:c': 1})
  assert 'temp:c' not in session.state, 'temp: keys of a new session are not kept'
  event = Event(invocation_id='inv1', author='agent1', actions=EventActions(state_delta={'temp:k1': 'v1', 'sk': 'v2'}))
  await service.append_event(session, event)
  # Visible to the next agent of the same invocation...
  assert session.state['temp:k1'] == 'v1'
  assert session.state['sk'] == 'v2'
  # ...but trimmed from the event and never stored.
  assert 'temp:k1' not in event.actions.state_delta
  assert event.actions.state_delta == {'sk': 'v2'}
  got = await service.get_session(app_name=app, user_id='u1', session_id='s1')
  assert got.state == {'sk': 'v2'}
  assert got.events[0].actions.state_delta == {'sk': 'v2'}


async def test_state_of_an_append_is_applied_to_the_session_object(service, app):
  session = await service.create_session(app_name=app, user_id='u', session_id='s', state={'key11': 'value11'})
  event = text_event('user', 'text', actions=EventActions(state_delta={
      'app:key': 'value', 'user:key1': 'value1', 'temp:key': 'temp', 'key11': 'value11_new'}))
  await service.append_event(session=session, event=event)
  assert session.state['app:key'] == 'value'
  assert session.state['user:key1'] == 'value1'
  assert session.state['key11'] == 'value11_new'
  got = await service.get_session(app_name=app, user_id='u', session_id='s')
  assert got.state == {'app:key': 'value', 'user:key1': 'value1', 'key11': 'value11_new'}
  # The object the caller holds equals a fresh read, temp: keys aside.
  session.state.pop('temp:key')
  assert got == session


async def test_get_session_respects_the_user_id(service, app):
  s1 = await service.create_session(app_name=app, user_id='u1', session_id='s1')
  await service.append_event(s1, Event(invocation_id='inv1', author='user'))
  await service.create_session(app_name=app, user_id='u2', session_id='s1')
  got = await service.get_session(app_name=app, user_id='u2', session_id='s1')
  assert got.user_id == 'u2'
  assert got.events == []


async def test_get_session_config_selects_recent_events_and_events_after_a_time(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  for i in range(1, 6):
    await service.append_event(session, Event(author='user', timestamp=i))

  async def timestamps(**config):
    got = await service.get_session(
        app_name=app, user_id='u', session_id=session.id,
        config=GetSessionConfig(**config) if config else None,
    )
    return [e.timestamp for e in got.events]

  assert await timestamps() == [1, 2, 3, 4, 5]
  assert await timestamps(num_recent_events=0) == []
  assert await timestamps(num_recent_events=3) == [3, 4, 5]
  assert await timestamps(num_recent_events=10) == [1, 2, 3, 4, 5]
  assert await timestamps(after_timestamp=4.0) == [4, 5], 'after_timestamp is inclusive'
  assert await timestamps(after_timestamp=50.0) == []
  assert await timestamps(after_timestamp=4.0, num_recent_events=3) == [4, 5]
  assert await timestamps(after_timestamp=2.0, num_recent_events=2) == [4, 5]
  # The filters select events; the state and update time are the session's.
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id, config=GetSessionConfig(num_recent_events=0))
  assert got.last_update_time == 5


async def test_partial_events_are_not_stored(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  event = Event(author='model', partial=True, actions=EventActions(state_delta={'k': 1}))
  returned = await service.append_event(session, event)
  assert returned is event
  assert session.events == [] and 'k' not in session.state
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert got.events == [] and got.state == {}


async def test_last_update_time_is_the_last_events_timestamp(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  created = session.last_update_time
  event = Event(invocation_id='inv', author='user', timestamp=created + 10)
  await service.append_event(session, event)
  assert session.last_update_time == pytest.approx(created + 10, abs=1e-6)
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert got.last_update_time == pytest.approx(created + 10, abs=1e-6)
  assert got.last_update_time > created


async def test_append_to_a_stale_session_raises_and_writes_nothing(service, app):
  now = time.time()
  original = await service.create_session(app_name=app, user_id='u')
  await service.append_event(original, Event(invocation_id='inv1', author='user', timestamp=now + 1, actions=EventActions(state_delta={'sk1': 'v1'})))
  updated = await service.get_session(app_name=app, user_id='u', session_id=original.id)
  await service.append_event(updated, Event(invocation_id='inv2', author='user', timestamp=now + 2, actions=EventActions(state_delta={'sk2': 'v2'})))
  assert original.last_update_time < updated.last_update_time
  with pytest.raises(StaleSessionError, match='modified in storage') as raised:
    await service.append_event(original, Event(invocation_id='inv3', author='user', timestamp=now + 3, actions=EventActions(state_delta={'sk3': 'v3'})))
  assert isinstance(raised.value, ValueError), 'ADK callers catch ValueError'
  final = await service.get_session(app_name=app, user_id='u', session_id=original.id)
  assert [e.invocation_id for e in final.events] == ['inv1', 'inv2']
  assert final.state == {'sk1': 'v1', 'sk2': 'v2'}
  # Reloaded, the session takes appends again.
  await service.append_event(final, Event(invocation_id='inv3', author='user', timestamp=now + 3))
  assert len(final.events) == 3


async def test_concurrent_stale_copies_exactly_one_append_wins(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  for i in range(5):
    latest = await service.get_session(app_name=app, user_id='u', session_id=session.id)
    a, b = latest.model_copy(deep=True), latest.model_copy(deep=True)
    base = latest.last_update_time + 10
    results = await asyncio.gather(
        service.append_event(a, Event(invocation_id=f'inv{i}-1', author='user', timestamp=base + 1, actions=EventActions(state_delta={f'sk{i}-1': 1}))),
        service.append_event(b, Event(invocation_id=f'inv{i}-2', author='user', timestamp=base + 2, actions=EventActions(state_delta={f'sk{i}-2': 2}))),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 1 and isinstance(errors[0], StaleSessionError), results
  final = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert len(final.events) == 5
  assert len(final.state) == 5


async def test_appends_on_one_session_object_are_serialised_not_stale(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  await asyncio.gather(*[
      service.append_event(session, Event(invocation_id=f'inv{i}', author='agent', actions=EventActions(state_delta={f'k{i}': i})))
      for i in range(10)
  ])
  assert len(session.events) == 10
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert got == session


async def test_append_to_a_deleted_session_raises_session_not_found(service, app):
  session = await service.create_session(app_name=app, user_id='u', session_id='s')
  await service.delete_session(app_name=app, user_id='u', session_id='s')
  with pytest.raises(SessionNotFoundError):
    await service.append_event(session, text_event('user', 'anyone?'))
  assert await service.get_session(app_name=app, user_id='u', session_id='s') is None


async def test_get_user_state(service, app):
  assert await service.get_user_state(app_name=app, user_id='u1') == {}
  session = await service.create_session(app_name=app, user_id='u1')
  await service.append_event(session, Event(author='system', actions=EventActions(state_delta={'user:profile': {'name': 'Alice'}, 'session_key': 1})))
  await service.append_event(session, Event(author='system', actions=EventActions(state_delta={'user:counter': 2})))
  assert await service.get_user_state(app_name=app, user_id='u1') == {'profile': {'name': 'Alice'}, 'counter': 2}
  assert await service.get_user_state(app_name=app, user_id='u2') == {}
  assert await service.get_user_state(app_name=app + 'x', user_id='u1') == {}


@pytest.mark.proposed_api
async def test_get_user_state_without_a_session(service, app):
  session = await service.create_session(app_name=app, user_id='u1', state={'user:lang': 'pt'})
  await service.delete_session(app_name=app, user_id='u1', session_id=session.id)
  assert await service.get_user_state(app_name=app, user_id='u1') == {'lang': 'pt'}


async def test_ids_with_any_characters_round_trip(service, app):
  user, sid = 'U/1:*{x}?#é', 'T 7/8?a=b&c#d:é'
  session = await service.create_session(app_name=app, user_id=user, session_id=sid)
  await service.append_event(session, text_event('user', 'hi'))
  got = await service.get_session(app_name=app, user_id=user, session_id=sid)
  assert got == session
  assert [s.id for s in (await service.list_sessions(app_name=app, user_id=user)).sessions] == [sid]
