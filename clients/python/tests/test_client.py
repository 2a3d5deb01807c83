"""The client's own rules, without a function: retries only on ``503`` with
``Retry-After`` (bounded), never on a ``4xx``; the recovery of a write whose
reply was lost; one pooled client per event loop."""

from __future__ import annotations

import asyncio
import json

from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.events.event import Event
import httpx
import pytest

from sessions_adk import HttpMemoryService
from sessions_adk import HttpSessionService
from sessions_adk import SessionsHttpError
from sessions_adk import SessionsRequestError
from sessions_adk import SessionsUnavailableError
from sessions_adk import StaleSessionError
from sessions_adk._http import retry_after_seconds

SESSION = {
    'app_name': 'a', 'user_id': 'u', 'id': 's', 'state': {}, 'events': [],
    'last_update_time': 1.0, 'last_seq': 0,
}


def error(status: int, code: str, headers: dict | None = None) -> httpx.Response:
  return httpx.Response(status, json={'error': {'code': code, 'message': code}}, headers=headers)


class Script:
  """Answers requests from a list, recording them."""

  def __init__(self, *answers: httpx.Response) -> None:
    self.answers = list(answers)
    self.requests: list[httpx.Request] = []

  def __call__(self, request: httpx.Request) -> httpx.Response:
    self.requests.append(request)
    return self.answers.pop(0)

  def service(self, **kwargs) -> HttpSessionService:
    kwargs.setdefault('max_retry_wait', 0.01)
    return HttpSessionService('http://function.test', transport=httpx.MockTransport(self), **kwargs)


async def test_a_503_with_retry_after_is_retried_until_it_succeeds():
  script = Script(error(503, 'store_unavailable', {'retry-after': '1'}), httpx.Response(200, json=SESSION))
  session = await script.service().get_session(app_name='a', user_id='u', session_id='s')
  assert session.id == 's'
  assert len(script.requests) == 2


async def test_retries_are_bounded():
  busy = lambda: error(503, 'store_unavailable', {'retry-after': '1'})
  script = Script(busy(), busy(), busy(), busy())
  with pytest.raises(SessionsUnavailableError) as raised:
    await script.service(max_attempts=3).get_session(app_name='a', user_id='u', session_id='s')
  assert len(script.requests) == 3
  assert raised.value.retry_after == 1.0


@pytest.mark.parametrize('answer', [
    error(503, 'store_unavailable'),  # no Retry-After: the function did not say
    error(500, 'internal'),
    error(502, 'bad_gateway', {'retry-after': '1'}),
])
async def test_other_failures_are_not_retried(answer):
  script = Script(answer)
  with pytest.raises((SessionsUnavailableError, SessionsHttpError)):
    await script.service().get_session(app_name='a', user_id='u', session_id='s')
  assert len(script.requests) == 1


@pytest.mark.parametrize('status', [400, 413, 415, 422, 429])
async def test_a_4xx_is_never_retried_and_is_a_value_error(status):
  script = Script(error(status, 'invalid_input', {'retry-after': '1'}))
  with pytest.raises(SessionsRequestError) as raised:
    await script.service().create_session(app_name='a', user_id='u', session_id='s')
  assert isinstance(raised.value, ValueError)
  assert raised.value.status == status
  assert len(script.requests) == 1


async def test_a_transport_failure_is_not_retried():
  calls = []

  def refuse(request):
    calls.append(request)
    raise httpx.ConnectError('refused', request=request)

  service = HttpSessionService('http://function.test', transport=httpx.MockTransport(refuse))
  with pytest.raises(SessionsUnavailableError):
    await service.get_session(app_name='a', user_id='u', session_id='s')
  assert len(calls) == 1


async def test_a_create_whose_reply_was_lost_returns_the_session_it_made():
  script = Script(
      error(503, 'store_unavailable', {'retry-after': '0'}),
      error(409, 'already_exists'),
      httpx.Response(200, json=SESSION),
  )
  session = await script.service().create_session(app_name='a', user_id='u')
  assert session.id == 's'
  sent = [json.loads(r.content)['session_id'] for r in script.requests[:2]]
  assert sent[0] == sent[1], 'the retry sends the same generated id'


async def test_a_taken_id_given_by_the_caller_is_already_exists_even_after_a_retry():
  script = Script(error(503, 'store_unavailable', {'retry-after': '0'}), error(409, 'already_exists'))
  with pytest.raises(AlreadyExistsError):
    await script.service().create_session(app_name='a', user_id='u', session_id='mine')


async def test_an_append_whose_reply_was_lost_is_found_instead_of_stale():
  event = Event(author='user', timestamp=5.0)
  stored = {**json.loads(event.model_dump_json(exclude_none=True)), 'seq': 1}
  script = Script(
      error(503, 'store_unavailable', {'retry-after': '0'}),
      error(409, 'stale'),
      httpx.Response(200, json={**SESSION, 'events': [stored], 'last_seq': 1, 'last_update_time': 5.0}),
  )
  service = script.service()
  session = await script_session(service)
  await service.append_event(session, event)
  assert session.events == [event]
  assert session.last_update_time == 5.0
  bodies = [json.loads(r.content) for r in script.requests[:2]]
  assert bodies[0] == bodies[1] and bodies[0]['expected_seq'] == 0


async def test_a_stale_append_without_a_lost_reply_is_stale():
  script = Script(error(409, 'stale'))
  service = script.service()
  session = await script_session(service)
  with pytest.raises(StaleSessionError, match='modified in storage'):
    await service.append_event(session, Event(author='user'))
  assert session.events == []


async def script_session(service):
  from sessions_adk import _wire

  return _wire.session_from_wire(SESSION)


def test_retry_after_is_read_as_seconds_or_a_date():
  assert retry_after_seconds('3') == 3.0
  assert retry_after_seconds(None) is None
  assert retry_after_seconds('soon') is None
  assert retry_after_seconds('Wed, 21 Oct 2015 07:28:00 GMT') == 0.0


def test_one_service_object_works_from_several_event_loops():
  # ADK's synchronous Runner.run starts an event loop per call.
  script = Script(httpx.Response(200, json=SESSION), httpx.Response(200, json=SESSION))
  service = script.service()
  for _ in range(2):
    got = asyncio.run(service.get_session(app_name='a', user_id='u', session_id='s'))
    assert got.id == 's'


async def test_paths_are_percent_encoded():
  script = Script(httpx.Response(404, json={'error': {'code': 'not_found', 'message': ''}}))
  await script.service().get_session(app_name='a', user_id='u/1 é', session_id='s?#')
  assert script.requests[0].url.raw_path == b'/apps/a/users/u%2F1%20%C3%A9/sessions/s%3F%23'


async def test_a_memory_query_over_1024_bytes_is_cut():
  script = Script(httpx.Response(200, json={'memories': []}))
  memory = HttpMemoryService('http://function.test', transport=httpx.MockTransport(script))
  await memory.search_memory(app_name='a', user_id='u', query='é' * 1000)
  query = script.requests[0].url.params['query']
  assert len(query.encode()) <= 1024 and query == 'é' * 512
