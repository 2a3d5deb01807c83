"""``HttpMemoryService`` against the function: what ``BaseMemoryService``
documents, checked as ``InMemoryMemoryService`` behaves (keyword search)."""

from __future__ import annotations

from datetime import datetime
import time

from google.adk.events.event import Event
from google.genai import types
import pytest


def said(author: str, text: str, ts: float) -> Event:
  return Event(
      invocation_id='inv', author=author, timestamp=ts,
      content=types.Content(role='user' if author == 'user' else 'model', parts=[types.Part(text=text)]),
  )


async def conversation(service, app, user, sid, lines, start=None):
  # Recent: the function forgets entries REDIS_MEMORY_TTL_DAYS after their event.
  start = start if start is not None else int(time.time()) - 60
  session = await service.create_session(app_name=app, user_id=user, session_id=sid)
  for i, (author, text) in enumerate(lines):
    await service.append_event(session, said(author, text, start + i))
  return session


async def test_a_remembered_session_is_found_by_word(service, memory, app):
  start = int(time.time()) - 60
  session = await conversation(service, app, 'u', 's1', [
      ('user', 'Which tours are there in Paris?'),
      ('concierge', 'The Louvre tour and a Seine cruise.'),
      ('user', 'Thanks!'),
  ], start)
  await memory.add_session_to_memory(session)
  found = (await memory.search_memory(app_name=app, user_id='u', query='paris CRUISE')).memories
  texts = {m.content.parts[0].text for m in found}
  assert texts == {'Which tours are there in Paris?', 'The Louvre tour and a Seine cruise.'}
  by_text = {m.content.parts[0].text: m for m in found}
  entry = by_text['Which tours are there in Paris?']
  assert entry.id == session.events[0].id, 'the memory id is the event id, as in ADK'
  assert entry.author == 'user'
  assert entry.content.role == 'user'
  assert by_text['The Louvre tour and a Seine cruise.'].content.role == 'model'
  assert entry.timestamp == datetime.fromtimestamp(start).isoformat()
  # Nothing for a word nobody said, nor for another user.
  assert (await memory.search_memory(app_name=app, user_id='u', query='london')).memories == []
  assert (await memory.search_memory(app_name=app, user_id='v', query='paris')).memories == []


async def test_adding_a_session_again_does_not_duplicate(service, memory, app):
  session = await conversation(service, app, 'u', 's1', [('user', 'remember the blue door')])
  await memory.add_session_to_memory(session)
  await service.append_event(session, said('user', 'and the blue window', time.time()))
  await memory.add_session_to_memory(session)
  found = (await memory.search_memory(app_name=app, user_id='u', query='blue')).memories
  assert sorted(m.content.parts[0].text for m in found) == ['and the blue window', 'remember the blue door']


async def test_a_long_query_is_cut_not_refused(service, memory, app):
  session = await conversation(service, app, 'u', 's1', [('user', 'remember the blue door')])
  await memory.add_session_to_memory(session)
  query = 'blue ' + 'x' * 5000
  found = (await memory.search_memory(app_name=app, user_id='u', query=query)).memories
  assert [m.content.parts[0].text for m in found] == ['remember the blue door']


@pytest.mark.proposed_api
async def test_a_memory_keeps_the_events_whole_content(service, memory, app):
  session = await service.create_session(app_name=app, user_id='u', session_id='s1')
  content = types.Content(role='user', parts=[
      types.Part(text='this is the floor plan'),
      types.Part.from_bytes(data=b'\x89PNG...', mime_type='image/png'),
  ])
  await service.append_event(session, Event(author='user', content=content, timestamp=time.time()))
  await memory.add_session_to_memory(session)
  found = (await memory.search_memory(app_name=app, user_id='u', query='plan')).memories
  assert [m.content for m in found] == [content]


@pytest.mark.proposed_api
async def test_events_can_be_remembered_without_a_stored_session(memory, app):
  events = [said('user', 'the wifi password is on the fridge', time.time())]
  await memory.add_events_to_memory(app_name=app, user_id='u', events=events, session_id='elsewhere')
  found = (await memory.search_memory(app_name=app, user_id='u', query='fridge')).memories
  assert [m.id for m in found] == [events[0].id]


@pytest.mark.proposed_api
async def test_a_memory_can_be_deleted(service, memory, app):
  session = await conversation(service, app, 'u', 's1', [('user', 'forget the red key'), ('user', 'keep the red box')])
  await memory.add_session_to_memory(session)
  await memory.delete_memory(app_name=app, user_id='u', memory_id=session.events[0].id)
  found = (await memory.search_memory(app_name=app, user_id='u', query='red')).memories
  assert [m.content.parts[0].text for m in found] == ['keep the red box']
  # Deleting an absent memory is fine.
  await memory.delete_memory(app_name=app, user_id='u', memory_id='nope')
