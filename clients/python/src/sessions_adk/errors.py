"""Errors of the HTTP services besides the ones ADK defines.

What ADK callers expect is raised as ADK raises it: a missing session is
``None`` from ``get_session``; ``create_session`` with a taken id raises
``AlreadyExistsError``; an append to a missing session raises
``SessionNotFoundError`` and to a stale one ``StaleSessionError`` (both
``ValueError``s). The classes here cover what ADK's in-process services
cannot meet: a bad request, an unavailable store, an unexpected status.
"""

from __future__ import annotations


class SessionsHttpError(RuntimeError):
  """The function answered with a status the client does not expect."""

  def __init__(self, status: int, code: str | None, message: str) -> None:
    self.status = status
    self.code = code
    self.message = message
    super().__init__(f'sessions function answered {status} {code or ""}: {message}')


class SessionsRequestError(SessionsHttpError, ValueError):
  """A ``4xx`` other than not found or conflict: the input was refused and
  nothing was written (an invalid id or state key, a body over the limit).
  Never retried."""


class SessionsUnavailableError(ConnectionError):
  """The function or its store could not serve the request: a ``503`` still
  there after the allowed retries, a time-out or a connection failure.

  ``retry_after`` is the last ``Retry-After`` in seconds, when there was one.
  """

  def __init__(self, message: str, retry_after: float | None) -> None:
    self.retry_after = retry_after
    super().__init__(message)
