"""A pytest plugin for running ADK's own session tests against
``HttpSessionService`` (``-p adk_http_service``).

At the start of the run it starts the ``sessions`` function on the backend
``ADK_HTTP_BACKEND`` names (``redis``, ``postgres``, ``mariadb``, ``memory``)
with the server that backend needs, on free ports; at the end it stops them.
Before every test parametrised with ``SessionServiceType.HTTP`` it empties
the backend (ADK's tests reuse app, user and session names, as they may
with a fresh in-process service each time). ``make_service()`` is what the
patched ``get_session_service`` returns.
"""

from __future__ import annotations

import os

import pytest

from servers import Backend
from sessions_adk import HttpSessionService

_backend: Backend | None = None


def pytest_sessionstart(session):  # noqa: ARG001
  global _backend
  _backend = Backend(os.environ.get('ADK_HTTP_BACKEND', 'redis'))


def pytest_sessionfinish(session, exitstatus):  # noqa: ARG001
  global _backend
  if _backend is not None:
    _backend.stop()
    _backend = None


def pytest_report_header(config):  # noqa: ARG001
  if _backend is None:
    return None
  return (
      f'sessions function: {_backend.function.binary} on the'
      f' {_backend.name} backend at {_backend.url}'
  )


def make_service() -> HttpSessionService:
  assert _backend is not None, 'the adk_http_service plugin did not start a function'
  return HttpSessionService(_backend.url)


def _is_http(item) -> bool:
  callspec = getattr(item, 'callspec', None)
  if callspec is None:
    return False
  return any(getattr(v, 'name', None) == 'HTTP' for v in callspec.params.values())


@pytest.fixture(autouse=True)
def _empty_backend_before_each_http_test(request):
  if _backend is not None and _is_http(request.node):
    _backend.reset()
  yield
