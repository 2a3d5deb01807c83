"""Every field of ADK's ``Event`` comes back equal after a round trip through
the function, on every backend."""

from __future__ import annotations

import random
import struct
import time

from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.events.event_actions import EventCompaction
from google.adk.auth.auth_credential import AuthCredential
from google.adk.auth.auth_credential import AuthCredentialTypes
from google.adk.auth.auth_tool import AuthConfig
from google.adk.tools.tool_confirmation import ToolConfirmation
from fastapi.openapi.models import OAuth2
from fastapi.openapi.models import OAuthFlowAuthorizationCode
from fastapi.openapi.models import OAuthFlows
from google.genai import types
import pytest


def rich_event(**overrides) -> Event:
  """An event with every field ADK defines set to something."""
  fields = dict(
      invocation_id='e-3f2a',
      author='concierge',
      branch='concierge.booking',
      model_version='scripted-1',
      content=types.Content(
          role='model',
          parts=[
              types.Part(text='Here is the map; booking now.'),
              types.Part.from_bytes(data=bytes(range(256)) * 4, mime_type='image/png'),
              types.Part(function_call=types.FunctionCall(id='call-1', name='book_tour', args={'city': 'Paris', 'people': 2, 'when': None})),
              types.Part(function_response=types.FunctionResponse(id='call-0', name='find_tours', response={'tours': [{'id': 7, 'price': 12.5}]})),
              types.Part(thought=True, text='thinking…', thought_signature=b'\x00\x01sig'),
              types.Part(executable_code=types.ExecutableCode(code='print(1)', language=types.Language.PYTHON)),
              types.Part(code_execution_result=types.CodeExecutionResult(outcome=types.Outcome.OUTCOME_OK, output='1\n')),
              types.Part(file_data=types.FileData(file_uri='gs://bucket/a.pdf', mime_type='application/pdf')),
          ],
      ),
      grounding_metadata=types.GroundingMetadata(
          web_search_queries=['tours paris'],
          search_entry_point=types.SearchEntryPoint(rendered_content='<div/>', sdk_blob=b'\xffblob'),
          grounding_chunks=[types.GroundingChunk(web=types.GroundingChunkWeb(uri='https://example.com', title='Example'))],
      ),
      partial=False,
      turn_complete=True,
      finish_reason=types.FinishReason.STOP,
      error_code='E42',
      error_message='model said no',
      interrupted=False,
      custom_metadata={'trace': {'id': 'abc', 'ratio': 0.1, 'n': 3, 'flags': [True, None]}},
      usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=11, candidates_token_count=7, total_token_count=18),
      input_transcription=types.Transcription(text='in', finished=True),
      output_transcription=types.Transcription(text='out', finished=False),
      avg_logprobs=-0.123456789012345,
      citation_metadata=types.CitationMetadata(citations=[types.Citation(start_index=0, end_index=4, uri='https://example.com')]),
      actions=EventActions(
          skip_summarization=True,
          state_delta={'step': 2, 'app:theme': 'dark', 'user:lang': 'pt', 'nested': {'a': [1, 2.5, 'x', None, True]}},
          artifact_delta={'map.png': 3},
          transfer_to_agent='booking_agent',
          transfer_reason='the user wants to book',
          escalate=True,
          requested_tool_confirmations={'call-1': ToolConfirmation(hint='confirm?', confirmed=False, payload={'x': 1})},
          compaction=EventCompaction(start_timestamp=1.5, end_timestamp=2.5, compacted_content=types.Content(role='model', parts=[types.Part(text='summary')])),
          end_of_agent=True,
          agent_state={'phase': 'booking'},
          rewind_before_invocation_id='e-0001',
      ),
      long_running_tool_ids={'call-1', 'call-2'},
      output={'result': [1, 2, 3]},
  )
  fields.update(overrides)
  return Event(**fields)


async def round_trip(service, app, event: Event, same_session: bool = True) -> tuple[Event, Event]:
  session = await service.create_session(app_name=app, user_id='u')
  sent = event.model_copy(deep=True)
  await service.append_event(session, event)
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert len(got.events) == 1
  if same_session:
    assert got == session, 'the session the caller holds equals a fresh read'
  return sent, got.events[0]


def differences(a: Event, b: Event) -> dict:
  da, db = a.model_dump(mode='json'), b.model_dump(mode='json')
  return {k: (da.get(k), db.get(k)) for k in set(da) | set(db) if da.get(k) != db.get(k)}


async def test_every_event_field_survives_a_round_trip(service, app):
  # partial left unset and a timestamp with whole microseconds: what today's
  # function keeps (see the proposed_api tests below for the rest).
  event = rich_event(partial=None, timestamp=1_790_000_000.123456)
  sent, back = await round_trip(service, app, event)
  assert differences(sent, back) == {}
  assert back == sent
  assert back.content.parts[1].inline_data.data == bytes(range(256)) * 4
  assert back.grounding_metadata.search_entry_point.sdk_blob == b'\xffblob'
  assert back.long_running_tool_ids == {'call-1', 'call-2'}
  assert back.get_function_calls()[0].args == {'city': 'Paris', 'people': 2, 'when': None}


async def test_requested_auth_configs_come_back_as_through_adks_own_sql_service(service, app):
  # ADK's JSON form of an AuthConfig does not give back the same object even
  # in ADK's DatabaseSessionService (the scheme's aliases): the reference is
  # ADK's own round trip, Event.model_validate(event.model_dump(mode="json")).
  config = AuthConfig(
      auth_scheme=OAuth2(flows=OAuthFlows(authorizationCode=OAuthFlowAuthorizationCode(
          authorizationUrl='https://example.com/auth', tokenUrl='https://example.com/token', scopes={'read': 'r'}))),
      raw_auth_credential=AuthCredential(auth_type=AuthCredentialTypes.OAUTH2),
  )
  event = rich_event(partial=None, timestamp=1_790_000_000.5, actions=EventActions(requested_auth_configs={'call-9': config}))
  reference = Event.model_validate(event.model_dump(mode='json', exclude_none=True))
  _, back = await round_trip(service, app, event, same_session=False)
  assert differences(reference, back) == {}


async def test_a_minimal_event_survives_a_round_trip(service, app):
  sent, back = await round_trip(service, app, Event(author='user', timestamp=1_790_000_000.5))
  assert back == sent
  assert back.invocation_id == '' and back.content is None and back.partial is None


@pytest.mark.proposed_api
async def test_partial_false_is_kept(service, app):
  sent, back = await round_trip(service, app, rich_event(timestamp=1_790_000_000.25))
  assert back.partial is False
  assert back == sent


@pytest.mark.proposed_api
async def test_a_timestamp_is_kept_to_the_last_bit(service, app):
  # time.time() has more digits than microseconds.
  ts = 1_790_000_000.1234567
  event = Event(author='user', timestamp=ts)
  _, back = await round_trip(service, app, event)
  assert event.timestamp == ts, 'the caller\'s event is not rewritten'
  assert back.timestamp == ts


@pytest.mark.proposed_api
async def test_an_older_timestamp_than_the_last_event_is_kept(service, app):
  session = await service.create_session(app_name=app, user_id='u')
  now = time.time()
  await service.append_event(session, Event(author='user', timestamp=now))
  older = Event(author='user', timestamp=now - 60)
  await service.append_event(session, older)
  assert older.timestamp == now - 60
  got = await service.get_session(app_name=app, user_id='u', session_id=session.id)
  assert [e.timestamp for e in got.events] == [now, now - 60]


@pytest.mark.proposed_api
async def test_every_float_is_kept_to_the_last_bit(service, app):
  # Any double, as Python writes it (the shortest text that reads back the
  # same): the function must read it back exactly, not to within one ulp.
  rng = random.Random(7)
  values = [rng.uniform(-1, 1) * 10 ** rng.randint(-20, 25) for _ in range(300)]
  values += [struct.unpack('d', struct.pack('Q', rng.getrandbits(62)))[0] for _ in range(100)]
  event = Event(author='user', timestamp=1_790_000_000.0, avg_logprobs=values[0], custom_metadata={'v': values})
  _, back = await round_trip(service, app, event, same_session=False)
  changed = [(a, b) for a, b in zip(values, back.custom_metadata['v']) if a != b]
  assert changed == []
  assert back.avg_logprobs == values[0]


@pytest.mark.proposed_api
async def test_integers_beyond_64_bits_are_kept(service, app):
  metadata = {'big': 2**70 + 1, 'neg': -(2**65) - 1, 'max': 2**64 - 1}
  _, back = await round_trip(
      service, app, Event(author='user', timestamp=1_790_000_000.0, custom_metadata=metadata), same_session=False
  )
  assert back.custom_metadata == metadata
  assert all(isinstance(v, int) for v in back.custom_metadata.values())


@pytest.mark.proposed_api
async def test_an_image_of_two_megabytes_is_kept(service, app):
  data = bytes(range(256)) * (2 * 4096)
  event = Event(
      author='user', timestamp=1_790_000_000.0,
      content=types.Content(role='user', parts=[types.Part.from_bytes(data=data, mime_type='image/png')]),
  )
  _, back = await round_trip(service, app, event)
  assert back.content.parts[0].inline_data.data == data


async def test_unicode_and_control_characters_in_text_survive(service, app):
  text = 'olá 👋 \u0000 \u2028 "quoted" \\ back\nline\t tab ' + 'é' * 1000
  sent, back = await round_trip(
      service, app,
      Event(author='user', timestamp=1_790_000_000.0, content=types.Content(role='user', parts=[types.Part(text=text)]),
            actions=EventActions(state_delta={'note': text})),
  )
  assert back == sent
  assert back.content.parts[0].text == text
