"""ADK session and memory services on the ``sessions`` HTTP function.

```python
from google.adk.runners import Runner
from sessions_adk import HttpMemoryService, HttpSessionService

runner = Runner(
    app_name="concierge",
    agent=agent,
    session_service=HttpSessionService("http://127.0.0.1:8080"),
    memory_service=HttpMemoryService("http://127.0.0.1:8080"),
)
```
"""

from __future__ import annotations

from .errors import SessionsHttpError
from .errors import SessionsRequestError
from .errors import SessionsUnavailableError
from .memory_service import HttpMemoryService
from .session_service import HttpSessionService
from .session_service import StaleSessionError

__all__ = [
    'HttpMemoryService',
    'HttpSessionService',
    'SessionsHttpError',
    'SessionsRequestError',
    'SessionsUnavailableError',
    'StaleSessionError',
]

__version__ = '0.1.0'
