"""The HTTP plumbing both services share: one pooled client, bounded retries
on ``503`` with ``Retry-After`` only, and the function's JSON errors.

The function answers errors as ``{"error": {"code", "message", "type"?}}``;
``503`` carries ``Retry-After`` (whole seconds) when the store is unavailable.
A request is retried only then: never on a ``4xx``, never on another ``5xx``,
never on a transport error (the request may or may not have been applied,
and the function has not said a retry is safe).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
import time
from typing import Any
from typing import Mapping
from urllib.parse import quote

import httpx

from .errors import SessionsHttpError
from .errors import SessionsRequestError
from .errors import SessionsUnavailableError

DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_RETRY_WAIT = 5.0


def segment(value: str) -> str:
  """One path segment, percent-encoded (ids may hold ``/``, ``:``, unicode)."""
  return quote(value, safe='')


def retry_after_seconds(value: str | None) -> float | None:
  """``Retry-After`` as seconds (delta-seconds or an HTTP date), else None."""
  if value is None:
    return None
  value = value.strip()
  try:
    return max(0.0, float(value))
  except ValueError:
    pass
  try:
    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
  except (TypeError, ValueError, IndexError, OverflowError):
    return None


@dataclass(frozen=True)
class Reply:
  """A response the caller handles itself (2xx, 404, 409, ...)."""

  status: int
  body: Any
  retried: bool
  """Whether an earlier attempt of this call got a ``503``: a write it sent
  may have been applied even though no reply came back."""

  @property
  def code(self) -> str | None:
    """The function's error code (``not_found``, ``stale``, ...), if any."""
    if isinstance(self.body, dict):
      error = self.body.get('error')
      if isinstance(error, dict):
        code = error.get('code')
        return code if isinstance(code, str) else None
    return None

  @property
  def message(self) -> str:
    if isinstance(self.body, dict):
      error = self.body.get('error')
      if isinstance(error, dict):
        message = error.get('message')
        if isinstance(message, str):
          return message
    return ''


class HttpCore:
  """An ``httpx.AsyncClient`` per event loop (one per object in practice)
  and the retry policy.

  ``httpx`` binds pooled connections to the loop that opened them; ADK's
  synchronous ``Runner.run`` starts a loop per call, so a client made on
  another loop is replaced rather than reused.
  """

  def __init__(
      self,
      base_url: str,
      *,
      timeout: float,
      headers: Mapping[str, str] | None,
      max_attempts: int,
      max_retry_wait: float,
      transport: httpx.AsyncBaseTransport | None,
  ) -> None:
    if not base_url:
      raise ValueError('base_url is required')
    if max_attempts < 1:
      raise ValueError('max_attempts must be at least 1')
    self.base_url = base_url.rstrip('/')
    self.timeout = timeout
    self.headers = dict(headers or {})
    self.max_attempts = max_attempts
    self.max_retry_wait = max_retry_wait
    self._transport = transport
    self._client: httpx.AsyncClient | None = None
    self._loop: asyncio.AbstractEventLoop | None = None

  def client(self) -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    if self._client is None or self._loop is not loop or self._client.is_closed:
      self._client = httpx.AsyncClient(
          base_url=self.base_url,
          timeout=self.timeout,
          headers={'accept': 'application/json', **self.headers},
          transport=self._transport,
          limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
      )
      self._loop = loop
    return self._client

  async def aclose(self) -> None:
    client, self._client, self._loop = self._client, None, None
    if client is not None and not client.is_closed:
      try:
        await client.aclose()
      except RuntimeError:
        # Its loop is gone (closed by asyncio.run): nothing left to release.
        pass

  async def request(
      self,
      method: str,
      path: str,
      *,
      json: Any = None,
      params: Mapping[str, Any] | None = None,
      expect: tuple[int, ...] = (200,),
  ) -> Reply:
    """Sends a request, retrying on ``503`` with ``Retry-After``.

    Statuses in ``expect`` (and ``404``/``409``, which carry meaning for
    sessions) come back as a :class:`Reply`; other ``4xx`` raise
    :class:`SessionsRequestError`, an exhausted ``503``
    :class:`SessionsUnavailableError`, other statuses
    :class:`SessionsHttpError`.
    """
    retried = False
    attempt = 0
    while True:
      attempt += 1
      try:
        response = await self.client().request(
            method, path, json=json, params=params
        )
      except httpx.TimeoutException as e:
        raise SessionsUnavailableError(
            f'{method} {path}: no reply within {self.timeout} s', None
        ) from e
      except httpx.TransportError as e:
        raise SessionsUnavailableError(
            f'{method} {path}: cannot reach the sessions function ({e})', None
        ) from e
      body = _body(response)
      status = response.status_code
      if status in expect or status in (404, 409):
        return Reply(status=status, body=body, retried=retried)
      if status == 503:
        wait = retry_after_seconds(response.headers.get('retry-after'))
        if wait is not None and attempt < self.max_attempts:
          retried = True
          await asyncio.sleep(min(wait, self.max_retry_wait))
          continue
        reply = Reply(status=status, body=body, retried=retried)
        raise SessionsUnavailableError(
            f'{method} {path}: the store is unavailable'
            f' ({reply.code or status}: {reply.message})',
            wait,
        )
      reply = Reply(status=status, body=body, retried=retried)
      if 400 <= status < 500:
        raise SessionsRequestError(status, reply.code, reply.message)
      raise SessionsHttpError(status, reply.code, reply.message)


def _body(response: httpx.Response) -> Any:
  if not response.content:
    return None
  try:
    return response.json()
  except ValueError:
    return response.text
