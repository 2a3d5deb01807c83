"""Servers of a test run's own: ``redis-server``, PostgreSQL, MariaDB and the
``sessions`` function, each on a free port of 127.0.0.1, killed at the end.

The Python counterpart of ``shared/src/testkit`` (``redis.rs``,
``postgres.rs``, ``mariadb.rs``): the database data directories are made
once per machine and server version (``initdb``, ``mariadb-install-db``),
kept under the temp dir and copied for every server, so a server starts in
about a second. PostgreSQL refuses root: as root it runs as ``postgres``
through ``setpriv``; MariaDB runs with ``--user=root``. Durability is off.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Sequence
import urllib.error
import urllib.request

CACHE = Path(tempfile.gettempdir()) / 'sessions-adk-testkit'
REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return int(s.getsockname()[1])


def _wait(predicate, timeout: float, proc: subprocess.Popen | None, what: str, log: Path | None) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc is not None and proc.poll() is not None:
      break
    try:
      if predicate():
        return
    except OSError:
      pass
    time.sleep(0.02)
  text = log.read_text(errors='replace')[-4000:] if log and log.exists() else ''
  raise RuntimeError(f'{what} did not become ready; its log:\n{text}')


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
  if proc is None or proc.poll() is not None:
    return
  proc.send_signal(sig)
  try:
    proc.wait(grace)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()


def _which(names: Sequence[str], extra_dirs: Sequence[str] = ()) -> str | None:
  for name in names:
    found = shutil.which(name)
    if found:
      return found
    for d in extra_dirs:
      p = Path(d) / name
      if p.is_file():
        return str(p)
  return None


# ---- redis -------------------------------------------------------------------


class RedisServer:
  """``redis-server`` without persistence."""

  def __init__(self) -> None:
    binary = _which(['redis-server'])
    if binary is None:
      raise RuntimeError('redis-server not found: `make setup` or `apt-get install redis-server`')
    self.dir = Path(tempfile.mkdtemp(prefix='sessions-adk-redis-'))
    self.port = free_port()
    self.log = self.dir / 'redis.log'
    self.proc = subprocess.Popen(
        [binary, '--port', str(self.port), '--bind', '127.0.0.1', '--save', '',
         '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'no',
         '--dir', str(self.dir), '--logfile', str(self.log)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait(lambda: self.command('PING') == '+PONG', 10, self.proc, 'redis-server', self.log)

  @property
  def url(self) -> str:
    return f'redis://127.0.0.1:{self.port}'

  def command(self, *args: str) -> str:
    """One command in RESP; the first line of the reply."""
    payload = f'*{len(args)}\r\n' + ''.join(
        f'${len(a.encode())}\r\n{a}\r\n' for a in args
    )
    with socket.create_connection(('127.0.0.1', self.port), timeout=2) as s:
      s.sendall(payload.encode())
      return s.recv(65536).decode(errors='replace').split('\r\n', 1)[0]

  def reset(self) -> None:
    assert self.command('FLUSHALL') == '+OK'

  def stop(self) -> None:
    _stop(self.proc)
    shutil.rmtree(self.dir, ignore_errors=True)


# ---- postgres ----------------------------------------------------------------


def _postgres_bin() -> Path:
  if os.environ.get('POSTGRES_BIN_DIR'):
    return Path(os.environ['POSTGRES_BIN_DIR'])
  versions = sorted(
      glob.glob('/usr/lib/postgresql/*/bin/initdb'),
      key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
  )
  if versions:
    return Path(versions[-1]).parent
  found = shutil.which('initdb')
  if found:
    return Path(found).parent
  raise RuntimeError('PostgreSQL (initdb, postgres) not found: `make setup` or `apt-get install postgresql`')


def _as_postgres() -> list[str]:
  if os.geteuid() != 0:
    return []
  import pwd

  pw = pwd.getpwnam('postgres')
  return ['setpriv', f'--reuid={pw.pw_uid}', f'--regid={pw.pw_gid}', '--clear-groups', '--']


def _chown_postgres(path: Path) -> None:
  if os.geteuid() == 0:
    import pwd

    pw = pwd.getpwnam('postgres')
    os.chown(path, pw.pw_uid, pw.pw_gid)


class PostgresServer:
  """PostgreSQL with ``trust`` auth for user ``postgres``."""

  def __init__(self) -> None:
    bin_dir = _postgres_bin()
    version = subprocess.run(
        [str(bin_dir / 'initdb'), '--version'], capture_output=True, text=True, check=True
    ).stdout.strip()
    for ch in ' ()/':
      version = version.replace(ch, '_')
    CACHE.mkdir(parents=True, exist_ok=True)
    template = CACHE / f'postgres-{version}'
    if not (template / 'PG_VERSION').is_file():
      scratch = CACHE / f'postgres-{version}.{os.getpid()}'
      shutil.rmtree(scratch, ignore_errors=True)
      scratch.mkdir()
      _chown_postgres(scratch)
      subprocess.run(
          _as_postgres() + [str(bin_dir / 'initdb'), '-D', str(scratch), '-U', 'postgres',
                            '--auth=trust', '-E', 'UTF8', '--no-sync', '--locale=C'],
          check=True, capture_output=True, stdin=subprocess.DEVNULL,
      )
      try:
        scratch.rename(template)
      except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    self.dir = Path(tempfile.mkdtemp(prefix='sessions-adk-postgres-'))
    _chown_postgres(self.dir)
    data = self.dir / 'data'
    subprocess.run(['cp', '-a', str(template), str(data)], check=True)
    self.port = free_port()
    self.log = self.dir / 'postgres.log'
    self.bin_dir = bin_dir
    with open(self.log, 'wb') as log:
      self.proc = subprocess.Popen(
          _as_postgres() + [str(bin_dir / 'postgres'), '-D', str(data), '-p', str(self.port),
                            '-k', str(self.dir), '-c', 'listen_addresses=127.0.0.1',
                            '-c', 'fsync=off', '-c', 'synchronous_commit=off',
                            '-c', 'full_page_writes=off', '-c', 'max_connections=300',
                            '-c', 'shared_buffers=32MB'],
          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
      )
    _wait(self._ready, 30, self.proc, 'postgres', self.log)

  def _ready(self) -> bool:
    return subprocess.run(
        [str(self.bin_dir / 'pg_isready'), '-h', '127.0.0.1', '-p', str(self.port), '-q'],
        check=False,
    ).returncode == 0

  def url(self, database: str) -> str:
    return f'postgres://postgres@127.0.0.1:{self.port}/{database}'

  def sql(self, statement: str, database: str = 'postgres') -> None:
    psql = _which(['psql'], [str(self.bin_dir)]) or str(self.bin_dir / 'psql')
    subprocess.run(
        [psql, '-h', '127.0.0.1', '-p', str(self.port), '-U', 'postgres', '-d', database,
         '-v', 'ON_ERROR_STOP=1', '-q', '-c', statement],
        check=True, capture_output=True,
    )

  def create_database(self, name: str) -> str:
    self.sql(f'CREATE DATABASE {name}')
    return self.url(name)

  def stop(self) -> None:
    _stop(self.proc, signal.SIGQUIT)
    shutil.rmtree(self.dir, ignore_errors=True)


# ---- mariadb -----------------------------------------------------------------


class MariaDbServer:
  """MariaDB (or MySQL) without grant tables, on 127.0.0.1 only."""

  COMMON = ['--innodb-log-file-size=8M', '--innodb-buffer-pool-size=32M',
            '--innodb-flush-log-at-trx-commit=0', '--innodb-doublewrite=0',
            '--skip-log-bin', '--character-set-server=utf8mb4',
            '--collation-server=utf8mb4_bin']

  def __init__(self) -> None:
    dirs = [os.environ.get('MARIADB_BIN_DIR', ''), '/usr/sbin', '/usr/bin', '/usr/local/bin']
    server = _which(['mariadbd', 'mysqld'], dirs)
    install = _which(['mariadb-install-db', 'mysql_install_db'], dirs)
    if server is None or install is None:
      raise RuntimeError('MariaDB (mariadbd, mariadb-install-db) not found: `make setup` or `apt-get install mariadb-server`')
    common = self.COMMON + (['--user=root'] if os.geteuid() == 0 else [])
    out = subprocess.run([server, '--version'], capture_output=True, text=True, check=True).stdout
    version = (out.split() + ['x', 'x', 'unknown'])[2].replace('/', '_').replace('(', '_').replace(')', '_')
    CACHE.mkdir(parents=True, exist_ok=True)
    template = CACHE / f'mariadb-{version}'
    if not (template / 'mysql').is_dir():
      scratch = CACHE / f'mariadb-{version}.{os.getpid()}'
      shutil.rmtree(scratch, ignore_errors=True)
      scratch.mkdir()
      subprocess.run(
          [install, '--no-defaults', f'--datadir={scratch}', '--skip-test-db',
           '--auth-root-authentication-method=normal'] + common,
          check=True, capture_output=True, stdin=subprocess.DEVNULL,
      )
      try:
        scratch.rename(template)
      except OSError:
        shutil.rmtree(scratch, ignore_errors=True)
    self.dir = Path(tempfile.mkdtemp(prefix='sessions-adk-mariadb-'))
    data = self.dir / 'data'
    subprocess.run(['cp', '-a', str(template), str(data)], check=True)
    self.port = free_port()
    self.log = self.dir / 'error.log'
    self.client = _which(['mariadb', 'mysql'], dirs)
    self.proc = subprocess.Popen(
        [server, '--no-defaults', f'--datadir={data}', f'--port={self.port}',
         '--bind-address=127.0.0.1', f'--socket={self.dir / "mysqld.sock"}',
         f'--pid-file={self.dir / "mysqld.pid"}', f'--log-error={self.log}',
         f'--tmpdir={self.dir}', '--skip-grant-tables', '--max-connections=300'] + common,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait(self._greets, 60, self.proc, 'mariadbd', self.log)

  def _greets(self) -> bool:
    with socket.create_connection(('127.0.0.1', self.port), timeout=0.5) as s:
      s.settimeout(0.5)
      head = s.recv(5)
      return len(head) == 5 and head[4] == 10

  def url(self, database: str) -> str:
    return f'mysql://root@127.0.0.1:{self.port}/{database}'

  def sql(self, statement: str, database: str | None = None) -> None:
    if self.client is None:
      raise RuntimeError('the mariadb client is needed to run SQL in the tests')
    cmd = [self.client, '-h', '127.0.0.1', '-P', str(self.port), '-u', 'root', '-e', statement]
    if database:
      cmd.append(database)
    subprocess.run(cmd, check=True, capture_output=True)

  def create_database(self, name: str) -> str:
    self.sql(f'CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin')
    return self.url(name)

  def stop(self) -> None:
    _stop(self.proc, signal.SIGKILL)
    shutil.rmtree(self.dir, ignore_errors=True)


# ---- the function ------------------------------------------------------------


SQL_TABLES = ['adk_events', 'adk_sessions', 'adk_app_states', 'adk_user_states',
              'memory_words', 'memory_entries']


def sessions_binary() -> Path:
  """``SESSIONS_BIN``, else the newest build under ``CARGO_TARGET_DIR`` or
  the repository's ``target/``."""
  if os.environ.get('SESSIONS_BIN'):
    return Path(os.environ['SESSIONS_BIN'])
  roots = [os.environ.get('CARGO_TARGET_DIR'), str(REPO / 'target')]
  candidates = [Path(r) / p / 'sessions' for r in roots if r for p in ('release', 'debug')]
  existing = [c for c in candidates if c.is_file()]
  if not existing:
    raise RuntimeError(
        'no sessions binary: run `cargo build -p sessions` (or set SESSIONS_BIN); looked at '
        + ', '.join(map(str, candidates))
    )
  return max(existing, key=lambda c: c.stat().st_mtime)


class FunctionProcess:
  """The ``sessions`` binary as a server on a free port."""

  def __init__(self, backend: str, env: dict[str, str]) -> None:
    self.backend = backend
    self.binary = sessions_binary()
    self.env = env
    self.port = free_port()
    self.dir = Path(tempfile.mkdtemp(prefix='sessions-adk-function-'))
    self.log = self.dir / 'function.log'
    self.proc: subprocess.Popen | None = None
    self.start()

  @property
  def url(self) -> str:
    return f'http://127.0.0.1:{self.port}'

  def start(self) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(('REDIS_', 'SESSION_', 'MEMORY_', 'DATABASE_', 'AUTH_'))}
    env.update(self.env)
    env['PORT'] = str(self.port)
    env.setdefault('RUST_LOG', 'warn')
    # The client's semantics are under test here; authentication is proven
    # by the Rust tests (shared/tests/security). A run may set its own mode.
    env.setdefault('AUTH_MODE', 'none')
    with open(self.log, 'ab') as log:
      self.proc = subprocess.Popen(
          [str(self.binary)], env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
      )
    _wait(self._healthy, 30, self.proc, f'sessions ({self.backend})', self.log)

  def _healthy(self) -> bool:
    try:
      with urllib.request.urlopen(f'{self.url}/healthz', timeout=1) as r:
        return r.status == 200
    except urllib.error.URLError:
      return False

  def restart(self) -> None:
    _stop(self.proc)
    self.start()

  def stop(self) -> None:
    _stop(self.proc)


class Backend:
  """The function on one backend with whatever server that backend needs.

  ``reset()`` empties the backend: ``FLUSHALL``, the SQL tables truncated,
  or (memory) the function restarted.
  """

  def __init__(self, name: str) -> None:
    self.name = name
    self.redis: RedisServer | None = None
    self.postgres: PostgresServer | None = None
    self.mariadb: MariaDbServer | None = None
    env = {'SESSION_BACKEND': name if name in ('redis', 'memory') else 'sql',
           'MEMORY_BACKEND': name if name in ('redis', 'memory') else 'sql'}
    if name == 'redis':
      self.redis = RedisServer()
      env['REDIS_URL'] = self.redis.url
    elif name == 'postgres':
      self.postgres = PostgresServer()
      env['DATABASE_URL'] = self.postgres.create_database('sessions_adk')
    elif name == 'mariadb':
      self.mariadb = MariaDbServer()
      env['DATABASE_URL'] = self.mariadb.create_database('sessions_adk')
    elif name != 'memory':
      raise ValueError(f'unknown backend {name!r} (redis, memory, postgres, mariadb)')
    if 'REDIS_URL' not in env:
      # Nothing listens there: the function's own Redis is unused on this backend.
      env['REDIS_URL'] = f'redis://127.0.0.1:{free_port()}'
    try:
      self.function = FunctionProcess(name, env)
    except Exception:
      self.stop()
      raise

  @property
  def url(self) -> str:
    return self.function.url

  def reset(self) -> None:
    if self.redis is not None:
      self.redis.reset()
    elif self.postgres is not None:
      self.postgres.sql('TRUNCATE ' + ', '.join(SQL_TABLES), database='sessions_adk')
    elif self.mariadb is not None:
      self.mariadb.sql(
          'SET FOREIGN_KEY_CHECKS=0; '
          + ' '.join(f'TRUNCATE TABLE {t};' for t in SQL_TABLES)
          + ' SET FOREIGN_KEY_CHECKS=1;',
          database='sessions_adk',
      )
    else:
      self.function.restart()

  def stop(self) -> None:
    if getattr(self, 'function', None) is not None:
      self.function.stop()
    for server in (self.redis, self.postgres, self.mariadb):
      if server is not None:
        server.stop()


def backends_from_env(default: str = 'redis,memory') -> list[str]:
  """``SESSIONS_BACKENDS``: a comma list, or ``all``."""
  raw = os.environ.get('SESSIONS_BACKENDS', default).strip()
  if raw == 'all':
    return ['redis', 'memory', 'postgres', 'mariadb']
  return [b.strip() for b in raw.split(',') if b.strip()]
