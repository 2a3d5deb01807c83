"""An unavailable store, end to end: the function answers 503 with
Retry-After, the client retries a bounded number of times, then raises
SessionsUnavailableError (a ConnectionError); a request it refuses is never
retried."""

from __future__ import annotations

import time

import pytest

from servers import Backend
from sessions_adk import HttpSessionService
from sessions_adk import SessionsRequestError
from sessions_adk import SessionsUnavailableError


@pytest.fixture
def own_redis_backend(backend):
  if backend.name != 'redis':
    pytest.skip('the outage is staged on the redis backend')
  b = Backend('redis')
  yield b
  b.stop()


async def test_a_redis_outage_is_retried_then_reported(own_redis_backend):
  service = HttpSessionService(own_redis_backend.url, max_attempts=2, max_retry_wait=0.2)
  session = await service.create_session(app_name='outage', user_id='u')
  own_redis_backend.redis.stop()
  started = time.monotonic()
  with pytest.raises(SessionsUnavailableError) as raised:
    await service.get_session(app_name='outage', user_id='u', session_id=session.id)
  assert isinstance(raised.value, ConnectionError)
  assert raised.value.retry_after is not None and raised.value.retry_after >= 1
  assert time.monotonic() - started < 8, 'two attempts, one short wait'
  # Bad input is refused at once, outage or not.
  with pytest.raises(SessionsRequestError):
    await service.get_session(app_name='no.dots', user_id='u', session_id='s')
  await service.close()
