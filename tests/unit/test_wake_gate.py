"""The live wake-phrase gate: woken in one breath, or by a wake phrase said just before."""

from __future__ import annotations

from voicehello.app import Heard, WakeGate
from voicehello.intents.parser import IntentParser
from voicehello.speech.recognizer import Transcript


def heard(parser: IntentParser, text: str) -> Heard:
    transcript = Transcript(text=text, confidence=1.0, engine="typed", audio_seconds=1.0)
    return Heard(transcript=transcript, parse=parser.parse(text))


def test_request_with_wake_phrase_is_admitted(parser: IntentParser) -> None:
    gate = WakeGate()
    assert gate.admit(heard(parser, "hey neighbor can someone help me move a couch"), 1.0)


def test_request_without_wake_phrase_is_ignored(parser: IntentParser) -> None:
    gate = WakeGate()
    assert not gate.admit(heard(parser, "can someone help me move a couch"), 1.0)


def test_wake_phrase_alone_opens_a_window_for_the_next_utterance(parser: IntentParser) -> None:
    gate = WakeGate(window_s=5.0)
    assert not gate.admit(heard(parser, "hey neighbor"), 10.0)
    assert gate.admit(heard(parser, "can someone help me move a couch"), 13.0)
    # The window is used up by one utterance.
    assert not gate.admit(heard(parser, "count me in"), 14.0)


def test_window_expires_on_audio_time(parser: IntentParser) -> None:
    gate = WakeGate(window_s=5.0)
    assert not gate.admit(heard(parser, "hey neighbor"), 10.0)
    assert not gate.admit(heard(parser, "can someone help me move a couch"), 15.5)


def test_gate_off_admits_everything(parser: IntentParser) -> None:
    gate = WakeGate(required=False)
    assert gate.admit(heard(parser, "count me in"), 0.0)
