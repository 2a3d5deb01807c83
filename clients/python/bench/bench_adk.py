"""ADK session services timed from a Python process, as an agent calls them.

For every service below, on servers of this run's own (``tests/servers.py``):
``append_event`` and ``get_session`` (the whole session, as ``Runner`` reads
it) at 10, 100 and 1,000 prior events, with 1 and with 16 sessions used
concurrently (one coroutine per session), p50 / p95 / p99 in milliseconds.

- ``HttpSessionService`` on the ``sessions`` function (release build,
  ``SESSIONS_BIN``) on its redis, postgres and mariadb backends;
- ADK's ``DatabaseSessionService`` on PostgreSQL (asyncpg) and on MariaDB
  (aiomysql), its default settings;
- ADK's ``InMemorySessionService`` (the floor for a Python process);
- ``google-adk-redis``'s ``RedisMemorySessionService`` on the same
  ``redis-server`` as the function.

``adk-redis`` is not run: its session service talks to the Agent Memory
Server over HTTP, and that server (``agent-memory-server`` on PyPI) needs
CPython 3.12 (this machine has 3.11), the RediSearch module (Debian's
``redis-server`` has none) and model files fetched at run time.

Sessions are grown through each service's own ``append_event`` to the next
history length before it is measured; a service whose growing would take
longer than ``ADK_BENCH_BUDGET`` seconds in all (default 90) is not measured
at the longer histories, and the JSON says so. Writes ``bench-results/adk-sessions.json``
(``bench/src/bin/adk_report.rs`` prints the table and draws the chart).

Knobs: ``ADK_BENCH_HISTORY`` (``10,100,1000``), ``ADK_BENCH_OPS`` (operations
per session and measurement at concurrency 1, default 40; at 16, an eighth,
at least 4),
``ADK_BENCH_SERVICES`` (a comma list of the names below).
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
import platform
import statistics
import sys
import time
from typing import Any
from typing import Awaitable
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / 'tests'))

from google.adk.events.event import Event  # noqa: E402
from google.adk.events.event_actions import EventActions  # noqa: E402
from google.adk.sessions.base_session_service import BaseSessionService  # noqa: E402
from google.adk.sessions.in_memory_session_service import InMemorySessionService  # noqa: E402
from google.genai import types  # noqa: E402
import servers  # noqa: E402

from sessions_adk import HttpSessionService  # noqa: E402

APP = 'bench'
CONCURRENCY = (1, 16)
TEXT = 'Please book a guided tour of the old town for two on Saturday morning. ' * 3


def event(n: int) -> Event:
  return Event(
      author='user' if n % 2 == 0 else 'concierge',
      invocation_id=f'inv-{n // 2}',
      content=types.Content(role='user' if n % 2 == 0 else 'model', parts=[types.Part(text=f'{n}: {TEXT}')]),
      actions=EventActions(state_delta={'turn': n}),
  )


def percentile(samples: list[float], q: float) -> float:
  ordered = sorted(samples)
  if not ordered:
    return float('nan')
  k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
  return ordered[k]


def summary(samples: list[float]) -> dict[str, float]:
  return {
      'p50_ms': round(percentile(samples, 0.50) * 1e3, 3),
      'p95_ms': round(percentile(samples, 0.95) * 1e3, 3),
      'p99_ms': round(percentile(samples, 0.99) * 1e3, 3),
      'mean_ms': round(statistics.fmean(samples) * 1e3, 3),
      'samples': len(samples),
  }


class Subject:
  """One service under test and how to make and close it."""

  def __init__(self, name: str, label: str, make: Callable[[], Awaitable[BaseSessionService]],
               close: Callable[[BaseSessionService], Awaitable[None]] | None = None) -> None:
    self.name = name
    self.label = label
    self.make = make
    self.close = close


async def grow(service: BaseSessionService, sessions: list[Any], target: int, deadline: float) -> bool:
  """Appends to every session until it holds `target` events; False when
  `deadline` (a `time.perf_counter()`) passed first. Nothing is cancelled:
  each session stops after the append it is in."""

  async def one(i: int) -> bool:
    s = sessions[i]
    while len(s.events) < target:
      if time.perf_counter() > deadline:
        return False
      await service.append_event(s, event(len(s.events)))
    return True

  return all(await asyncio.gather(*(one(i) for i in range(len(sessions)))))


async def measure(service: BaseSessionService, sessions: list[Any], concurrency: int, ops: int) -> dict[str, Any]:
  used = sessions[:concurrency]
  gets: list[float] = []
  appends: list[float] = []

  async def reader(i: int) -> None:
    s = used[i]
    for _ in range(ops):
      t = time.perf_counter()
      got = await service.get_session(app_name=APP, user_id=s.user_id, session_id=s.id)
      gets.append(time.perf_counter() - t)
      assert got is not None and len(got.events) == len(s.events), (len(got.events) if got else None, len(s.events))

  async def writer(i: int) -> None:
    s = used[i]
    for _ in range(ops):
      e = event(len(s.events))
      t = time.perf_counter()
      await service.append_event(s, e)
      appends.append(time.perf_counter() - t)

  # Reads first, at exactly the history length; then the appends (which
  # add `ops` events to each session).
  await asyncio.gather(*(reader(i) for i in range(concurrency)))
  await asyncio.gather(*(writer(i) for i in range(concurrency)))
  return {'get_session': summary(gets), 'append_event': summary(appends)}


async def run_subject(subject: Subject, histories: list[int], ops: int, budget: float) -> dict[str, Any]:
  service = await subject.make()
  out: dict[str, Any] = {'name': subject.name, 'label': subject.label, 'cells': [], 'skipped': []}
  try:
    sessions = [
        await service.create_session(app_name=APP, user_id=f'user{i % 4}', session_id=f'{subject.name}-{i}')
        for i in range(max(CONCURRENCY))
    ]
    spent = 0.0
    for history in histories:
      missing = sum(max(0, history - len(s.events)) for s in sessions)
      left = budget - spent
      t = time.perf_counter()
      if left <= 0 or not await grow(service, sessions, history, deadline=t + left):
        for later in [h for h in histories if h >= history]:
          out['skipped'].append({
              'history': later,
              'why': f'growing its 16 sessions through append_event (another {missing} events to reach'
                     f' {history}) did not end within the time budget ({budget:.0f} s for all histories)',
          })
        print(f'  .. {subject.name}: not measured from {history} events on (over the time budget)', file=sys.stderr)
        break
      spent += time.perf_counter() - t
      for concurrency in CONCURRENCY:
        n = ops if concurrency == 1 else max(4, ops // 8)
        cell = await measure(service, sessions, concurrency, n)
        cell.update(history=history, concurrency=concurrency)
        out['cells'].append(cell)
        print(
            f'  .. {subject.name:<22} {history:>5} events x{concurrency:<2}'
            f' get p50 {cell["get_session"]["p50_ms"]:8.2f} ms'
            f'  append p50 {cell["append_event"]["p50_ms"]:8.2f} ms',
            file=sys.stderr,
        )
  finally:
    if subject.close is not None:
      await subject.close(service)
  return out


def versions() -> dict[str, str]:
  from importlib.metadata import version, PackageNotFoundError

  out = {'python': platform.python_version()}
  for name in ('google-adk', 'google-adk-redis', 'sqlalchemy', 'asyncpg', 'aiomysql', 'httpx'):
    try:
      out[name] = version(name)
    except PackageNotFoundError:
      pass
  return out


async def main() -> int:
  histories = [int(h) for h in os.environ.get('ADK_BENCH_HISTORY', '10,100,1000').split(',')]
  ops = int(os.environ.get('ADK_BENCH_OPS', '40'))
  budget = float(os.environ.get('ADK_BENCH_BUDGET', '90'))
  wanted = [s for s in os.environ.get('ADK_BENCH_SERVICES', '').split(',') if s]
  started = time.perf_counter()

  redis = servers.RedisServer()
  postgres = servers.PostgresServer()
  mariadb = servers.MariaDbServer()
  functions: list[servers.FunctionProcess] = []
  try:
    def function(backend: str, env: dict[str, str]) -> servers.FunctionProcess:
      env = dict(env, SESSION_BACKEND=backend, MEMORY_BACKEND=backend, LOG_LEVEL='warn')
      env.setdefault('REDIS_URL', f'redis://127.0.0.1:{servers.free_port()}')
      f = servers.FunctionProcess(backend, env)
      functions.append(f)
      return f

    def http(backend: str, env: dict[str, str]) -> Callable[[], Awaitable[BaseSessionService]]:
      async def make() -> BaseSessionService:
        return HttpSessionService(function(backend, env).url)
      return make

    async def close_http(s: BaseSessionService) -> None:
      await s.close()  # type: ignore[attr-defined]

    def database(url: str) -> Callable[[], Awaitable[BaseSessionService]]:
      async def make() -> BaseSessionService:
        from google.adk.sessions.database_session_service import DatabaseSessionService
        return DatabaseSessionService(db_url=url)
      return make

    async def close_database(s: BaseSessionService) -> None:
      await s.db_engine.dispose()  # type: ignore[attr-defined]

    async def in_memory() -> BaseSessionService:
      return InMemorySessionService()

    async def community_redis() -> BaseSessionService:
      from google_adk_redis import RedisMemorySessionService
      return RedisMemorySessionService(uri=redis.url, expire=3600, share_cache=False)

    async def close_community_redis(s: BaseSessionService) -> None:
      await s.cache.aclose()  # type: ignore[attr-defined]

    subjects = [
        Subject('http-redis', 'HttpSessionService, redis', http('redis', {'REDIS_URL': redis.url}), close_http),
        Subject('http-postgres', 'HttpSessionService, postgres',
                http('sql', {'DATABASE_URL': postgres.create_database('fn_bench')}), close_http),
        Subject('http-mariadb', 'HttpSessionService, mariadb',
                http('sql', {'DATABASE_URL': mariadb.create_database('fn_bench')}), close_http),
        Subject('adk-database-postgres', 'ADK DatabaseSessionService, postgres',
                database(postgres.create_database('adk_bench').replace('postgres://', 'postgresql+asyncpg://')),
                close_database),
        Subject('adk-database-mariadb', 'ADK DatabaseSessionService, mariadb',
                database(mariadb.create_database('adk_bench').replace('mysql://', 'mysql+aiomysql://')),
                close_database),
        Subject('adk-in-memory', 'ADK InMemorySessionService', in_memory),
        Subject('google-adk-redis', 'google-adk-redis RedisMemorySessionService', community_redis,
                close_community_redis),
    ]
    results = []
    for subject in subjects:
      if wanted and subject.name not in wanted:
        continue
      print(f'==> {subject.label}', file=sys.stderr)
      try:
        results.append(await run_subject(subject, histories, ops, budget))
      except Exception as e:  # noqa: BLE001 - a service that fails is reported, not hidden
        print(f'  .. {subject.name} failed: {e!r}', file=sys.stderr)
        results.append({'name': subject.name, 'label': subject.label, 'cells': [], 'skipped': [],
                        'error': repr(e)})
  finally:
    for f in functions:
      f.stop()
    for server in (redis, postgres, mariadb):
      server.stop()

  report = {
      'benchmark': 'adk-sessions',
      'what': 'append_event and get_session (whole session) latency from one Python process',
      'histories': histories,
      'concurrency': list(CONCURRENCY),
      'ops_per_session': {'1': ops, '16': max(4, ops // 8)},
      'not_run': {'adk-redis': 'its session service needs the Agent Memory Server (agent-memory-server:'
                               ' CPython 3.12, the RediSearch module, model files fetched at run time)'},
      'machine': {'cpus': os.cpu_count(), 'platform': platform.platform()},
      'versions': versions(),
      'seconds': round(time.perf_counter() - started, 1),
      'services': results,
  }
  out = Path(os.environ.get('ADK_BENCH_OUT', 'bench-results/adk-sessions.json'))
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(report, indent=2) + '\n')
  print(f'==> {out} ({report["seconds"]} s)', file=sys.stderr)
  return 0 if all('error' not in r for r in results) else 1


if __name__ == '__main__':
  sys.exit(asyncio.run(main()))
