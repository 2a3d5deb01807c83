"""A real ADK ``Runner`` conversation on ``HttpSessionService`` and
``HttpMemoryService``: an ``LlmAgent`` on a scripted model (a ``BaseLlm``
that answers from a list: a function call, a text, ...), three turns, the
function process restarted between turns two and three. The third turn's
model request holds the whole history and the state; memory search finds the
earlier turns."""

from __future__ import annotations

from typing import Any
from typing import AsyncGenerator

from google.adk.agents.llm_agent import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.tools.tool_context import ToolContext
from google.genai import types
import pytest

from sessions_adk import HttpMemoryService
from sessions_adk import HttpSessionService


class ScriptedLlm(BaseLlm):
  """Answers each request with the next response of its script and keeps
  the requests it was sent."""

  model: str = 'scripted'
  script: list[LlmResponse] = []
  requests: list[LlmRequest] = []

  async def generate_content_async(
      self, llm_request: LlmRequest, stream: bool = False
  ) -> AsyncGenerator[LlmResponse, None]:
    self.requests.append(llm_request.model_copy(deep=True))
    if not self.script:
      raise AssertionError('the model was asked more than its script answers')
    yield self.script.pop(0)


def says(text: str) -> LlmResponse:
  return LlmResponse(content=types.Content(role='model', parts=[types.Part(text=text)]))


def calls(name: str, **args: Any) -> LlmResponse:
  return LlmResponse(
      content=types.Content(role='model', parts=[types.Part(function_call=types.FunctionCall(name=name, args=args))])
  )


def book_tour(city: str, tool_context: ToolContext) -> dict:
  """Books a tour in a city."""
  booking = f'B-{city.upper()}-1'
  tool_context.state['booking'] = booking
  tool_context.state['user:home_city'] = city
  return {'booking': booking, 'city': city}


def texts(request: LlmRequest) -> list[str]:
  out = []
  for content in request.contents:
    for part in content.parts or []:
      if part.text:
        out.append(f'{content.role}: {part.text}')
      if part.function_call:
        out.append(f'call {part.function_call.name}({dict(part.function_call.args or {})})')
      if part.function_response:
        out.append(f'result {part.function_response.name}: {part.function_response.response}')
  return out


async def turn(runner: Runner, session_id: str, text: str) -> list[str]:
  replies = []
  async for event in runner.run_async(
      user_id='U123',
      session_id=session_id,
      new_message=types.Content(role='user', parts=[types.Part(text=text)]),
  ):
    if event.content and event.content.parts:
      replies += [p.text for p in event.content.parts if p.text]
  return replies


async def test_a_conversation_survives_a_restart_of_the_function(backend):
  if backend.name in ('memory', 'external'):
    pytest.skip('the memory backend forgets everything when the function restarts')
  model = ScriptedLlm(script=[
      calls('book_tour', city='Paris'),
      says('Booked a tour of Paris: B-PARIS-1.'),
      says('You booked B-PARIS-1.'),
      says('Your Paris tour B-PARIS-1 is on Saturday.'),
  ])
  agent = LlmAgent(
      name='concierge',
      model=model,
      instruction='You are a concierge. Current booking: {booking?}. Home: {user:home_city?}.',
      tools=[book_tour],
  )
  sessions = HttpSessionService(backend.url)
  memory = HttpMemoryService(backend.url)
  runner = Runner(app_name='concierge', agent=agent, session_service=sessions, memory_service=memory)
  session = await sessions.create_session(app_name='concierge', user_id='U123')

  assert await turn(runner, session.id, 'Book me a tour in Paris') == ['Booked a tour of Paris: B-PARIS-1.']
  assert await turn(runner, session.id, 'What did I book?') == ['You booked B-PARIS-1.']

  backend.function.restart()

  assert await turn(runner, session.id, 'When is it?') == ['Your Paris tour B-PARIS-1 is on Saturday.']
  last = model.requests[-1]
  assert texts(last) == [
      'user: Book me a tour in Paris',
      "call book_tour({'city': 'Paris'})",
      "result book_tour: {'booking': 'B-PARIS-1', 'city': 'Paris'}",
      'model: Booked a tour of Paris: B-PARIS-1.',
      'user: What did I book?',
      'model: You booked B-PARIS-1.',
      'user: When is it?',
  ]
  assert 'Current booking: B-PARIS-1. Home: Paris.' in last.config.system_instruction

  stored = await sessions.get_session(app_name='concierge', user_id='U123', session_id=session.id)
  assert stored.state == {'booking': 'B-PARIS-1', 'user:home_city': 'Paris'}
  # Three user messages, the call, its response and three answers.
  assert [e.author for e in stored.events] == ['user', 'concierge', 'concierge', 'concierge', 'user', 'concierge', 'user', 'concierge']
  await memory.add_session_to_memory(stored)
  found = (await memory.search_memory(app_name='concierge', user_id='U123', query='Paris booked')).memories
  found_texts = {p.text for m in found for p in m.content.parts if p.text}
  assert {'Book me a tour in Paris', 'Booked a tour of Paris: B-PARIS-1.', 'You booked B-PARIS-1.'} <= found_texts
  await sessions.close()
  await memory.close()
