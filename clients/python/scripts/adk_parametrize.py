"""Adds ``HttpSessionService`` to the parametrisation of ADK's own
``tests/unittests/sessions/test_session_service.py``, and changes nothing else.

    python adk_parametrize.py SOURCE DEST

Three edits, each checked to apply (the script fails otherwise, so a new
layout of ADK's file is noticed, not silently skipped):

1. ``class SessionServiceType(enum.Enum)`` gets ``HTTP = 'HTTP'``;
2. ``get_session_service`` returns ``adk_http_service.make_service()`` for it
   (the function under test, started by the ``adk_http_service`` pytest
   plugin);
3. every list of ``SessionServiceType`` members used to parametrise tests
   (``@pytest.mark.parametrize(...)`` lists, or the ``params=[...]`` of a
   ``session_service`` fixture) gets ``SessionServiceType.HTTP``.

The unified diff is printed, so a run's log shows exactly what was run.
"""

from __future__ import annotations

import difflib
import re
import sys


def patch(text: str) -> str:
  out = text

  # 1. The enum member, after the last member of the enum.
  enum = re.search(r'class SessionServiceType\(enum\.Enum\):\n((?:[ \t]+\w+ = .+\n)+)', out)
  if not enum:
    raise SystemExit('no `class SessionServiceType(enum.Enum)` with members found')
  members = enum.group(1)
  indent = re.match(r'[ \t]+', members).group(0)
  out = out[: enum.end(1)] + f"{indent}HTTP = 'HTTP'\n" + out[enum.end(1) :]

  # 2. The factory branch, first thing in get_session_service's body.
  factory = re.search(r'def get_session_service\([^)]*\)[^:]*:\n', out)
  if not factory:
    raise SystemExit('no `def get_session_service(...)` found')
  body_start = factory.end()
  first = re.match(r'([ \t]+)("""[\s\S]*?"""\n)?', out[body_start:])
  indent = first.group(1)
  insert_at = body_start + (len(first.group(0)) if first.group(2) else 0)
  branch = (
      f'{indent}if service_type == SessionServiceType.HTTP:\n'
      f'{indent}  import adk_http_service\n'
      f'{indent}  return adk_http_service.make_service()\n'
  )
  out = out[:insert_at] + branch + out[insert_at:]

  # 3. Every list of members that parametrises: add HTTP to it.
  count = 0

  def add_http(match: re.Match) -> str:
    nonlocal count
    items = match.group(2)
    if 'SessionServiceType.HTTP' in items:
      return match.group(0)
    count += 1
    stripped = items.rstrip()
    trailing = items[len(stripped) :]
    if stripped.endswith(','):
      # A multi-line list: one more line like the last.
      last_line = stripped.rsplit('\n', 1)[-1]
      item_indent = re.match(r'[ \t]*', last_line).group(0)
      return f'{match.group(1)}{stripped}\n{item_indent}SessionServiceType.HTTP,{trailing}]'
    return f'{match.group(1)}{stripped}, SessionServiceType.HTTP{trailing}]'

  out = re.sub(
      r"((?:parametrize\(\s*'service_type',\s*|params=)\[)((?:\s*SessionServiceType\.\w+,?)+\s*)\]",
      add_http,
      out,
  )
  if count == 0:
    raise SystemExit('no parametrisation over SessionServiceType found')
  return out


def main() -> None:
  source, dest = sys.argv[1], sys.argv[2]
  with open(source, encoding='utf-8') as f:
    text = f.read()
  patched = patch(text)
  with open(dest, 'w', encoding='utf-8') as f:
    f.write(patched)
  sys.stdout.writelines(
      difflib.unified_diff(
          text.splitlines(keepends=True),
          patched.splitlines(keepends=True),
          fromfile=source,
          tofile=dest,
      )
  )


if __name__ == '__main__':
  main()
