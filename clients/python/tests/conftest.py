"""Fixtures: the ``sessions`` function on each backend of ``SESSIONS_BACKENDS``
(default ``redis,memory``; ``all`` adds ``postgres,mariadb``), started by
the tests on free ports, or an already running one at ``SESSIONS_URL``.

``SESSIONS_API=current`` skips the tests marked ``proposed_api`` (behaviour
that needs the HTTP API change proposed for issue 16).
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers import Backend  # noqa: E402
from servers import backends_from_env  # noqa: E402

from sessions_adk import HttpMemoryService  # noqa: E402
from sessions_adk import HttpSessionService  # noqa: E402


class External:
  """A function someone else runs (``SESSIONS_URL``): never reset."""

  name = 'external'

  def __init__(self, url: str) -> None:
    self.url = url.rstrip('/')
    self.function = None

  def reset(self) -> None:
    pass

  def stop(self) -> None:
    pass


def pytest_collection_modifyitems(config, items):
  if os.environ.get('SESSIONS_API', 'proposed') == 'current':
    skip = pytest.mark.skip(reason='needs the proposed HTTP API (SESSIONS_API=current)')
    for item in items:
      if 'proposed_api' in item.keywords:
        item.add_marker(skip)


_BACKENDS = ['external'] if os.environ.get('SESSIONS_URL') else backends_from_env()


@pytest.fixture(scope='session', params=_BACKENDS)
def backend(request):
  if request.param == 'external':
    yield External(os.environ['SESSIONS_URL'])
    return
  b = Backend(request.param)
  yield b
  b.stop()


@pytest.fixture
def app() -> str:
  """An app name of this test alone: tests share a backend without resets."""
  return f'app_{uuid.uuid4().hex[:16]}'


@pytest.fixture
async def service(backend):
  s = HttpSessionService(backend.url, timeout=10.0)
  yield s
  await s.close()


@pytest.fixture
async def memory(backend):
  m = HttpMemoryService(backend.url, timeout=10.0)
  yield m
  await m.close()
