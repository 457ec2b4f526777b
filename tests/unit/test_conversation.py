"""The conversation rules: read-back, confirmation, silence, replies, cancellation, close calls."""

from __future__ import annotations

import pytest
import yaml

from voicehello.announce.phrasing import readback
from voicehello.bus.messages import Message, Sender, new_message
from voicehello.config import DEFAULT_CATALOG_FILE, ConversationSettings
from voicehello.conversation import Conversation, Option, Publish, Say
from voicehello.intents.catalog import Catalog, parse_catalog

ME = Sender("kitchen-12", "Maya at number 12")
SAM = Sender("sam-4", "Sam")


class Clock:
    """A hand-moved clock."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(catalog: Catalog, clock: Clock, **settings: object) -> Conversation:
    return Conversation(ConversationSettings(**settings), ME, catalog, clock)  # type: ignore[arg-type]


def published(actions: list[Publish | Say]) -> list[Message]:
    return [action.message for action in actions if isinstance(action, Publish)]


def said(actions: list[Publish | Say]) -> list[str]:
    return [action.text for action in actions if isinstance(action, Say)]


def test_a_request_is_read_back_and_sent_on_yes(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    first = talk.heard("borrow_item", {"item": "ladder"}, "can i borrow a ladder")
    assert published(first) == []
    assert said(first) == ["Ask your neighbors to borrow a ladder?"]
    assert talk.expecting_answer()
    clock.now += 3
    second = talk.heard("reply_yes", {}, "yes")
    [message] = published(second)
    assert (message.intent, message.slots, message.sender) == ("borrow_item", {"item": "ladder"}, ME)
    assert message.text == "can i borrow a ladder"
    assert (message.kind, message.in_reply_to) == ("request", None)
    assert said(second) == ["Sent."]
    assert talk.pending is None
    assert talk.sent(message.id) == message


@pytest.mark.parametrize("answer", ["reply_no", "cancel"])
def test_no_or_cancel_drops_the_request(catalog: Catalog, clock: Clock, answer: str) -> None:
    talk = make(catalog, clock)
    talk.heard("share_food", {"item": "soup"}, "i have soup to share")
    actions = talk.heard(answer, {}, "no")
    assert published(actions) == []
    assert said(actions) == ["Okay, not sent."]
    assert talk.pending is None


def test_silence_drops_the_request(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock, confirm_window_s=8.0)
    talk.heard("say_hello", {}, "say hello")
    clock.now += 7.9
    assert talk.tick() == []
    assert talk.pending is not None
    clock.now += 0.2
    assert said(talk.tick()) == ["Not sent."]
    assert talk.pending is None
    assert published(talk.heard("reply_yes", {}, "yes")) == []  # too late: nothing to confirm


def test_confirm_off_sends_at_once(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock, confirm=False)
    [message] = published(
        talk.heard("report_issue", {"issue": "street light out"}, "the street light is out")
    )
    assert message.kind == "report"


def test_confirmed_skips_the_read_back(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    assert len(published(talk.heard("say_hello", {}, "say hello", confirmed=True))) == 1


def test_a_new_request_replaces_the_pending_one(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    talk.heard("borrow_item", {"item": "ladder"}, "can i borrow a ladder")
    talk.heard("borrow_item", {"item": "drill"}, "can i borrow a drill")
    [message] = published(talk.heard("reply_yes", {}, "yes"))
    assert message.slots == {"item": "drill"}


def neighbor_request(clock: Clock) -> Message:
    return new_message(SAM, "borrow_item", {"item": "ladder"}, "can i borrow a ladder", now=clock.now)


@pytest.mark.parametrize("intent", ["reply_yes", "reply_no", "rsvp"])
def test_an_answer_after_an_announcement_is_a_reply(catalog: Catalog, clock: Clock, intent: str) -> None:
    talk = make(catalog, clock, reply_window_s=30.0)
    request = neighbor_request(clock)
    talk.announced(request)
    assert talk.expecting_answer()
    clock.now += 10
    actions = talk.heard(intent, {}, "yes i can lend it")
    [reply] = published(actions)
    assert reply.in_reply_to == request.id
    assert (reply.intent, reply.kind) == (intent, "reply")
    assert said(actions) == ["Told Sam."]
    assert published(talk.heard(intent, {}, "yes")) == []  # one reply per announcement


def test_no_reply_after_the_window(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock, reply_window_s=30.0)
    talk.announced(neighbor_request(clock))
    clock.now += 30.5
    assert not talk.expecting_answer()
    assert talk.heard("reply_yes", {}, "yes") == []


def test_no_reply_to_replies_or_own_messages(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    request = neighbor_request(clock)
    talk.announced(new_message(SAM, "reply_yes", {}, "yes", in_reply_to=request.id, now=clock.now))
    talk.announced(new_message(ME, "say_hello", {}, "hello", now=clock.now))
    assert not talk.expecting_answer()
    assert talk.heard("reply_yes", {}, "yes") == []


def test_yes_confirms_the_pending_request_before_answering_a_neighbor(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    talk.announced(neighbor_request(clock))
    talk.heard("borrow_item", {"item": "drill"}, "can i borrow a drill")
    [message] = published(talk.heard("reply_yes", {}, "yes"))
    assert (message.intent, message.slots) == ("borrow_item", {"item": "drill"})


def test_cancel_takes_back_the_last_sent_request(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock, confirm=False)
    [request] = published(talk.heard("borrow_item", {"item": "ladder"}, "can i borrow a ladder"))
    clock.now += 60
    actions = talk.heard("cancel", {}, "never mind")
    [cancel] = published(actions)
    assert (cancel.kind, cancel.in_reply_to) == ("cancel", request.id)
    assert said(actions) == ["Cancelled."]
    assert talk.heard("cancel", {}, "never mind") == []  # nothing left to cancel


def test_not_understood_does_nothing(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    assert talk.heard(None, {}, "please pass the salt") == []


def test_replies_to_messages_sent_elsewhere_are_recognized(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    typed = new_message(ME, "borrow_item", {"item": "ladder"}, "can i borrow a ladder", now=clock.now)
    theirs = new_message(SAM, "say_hello", {}, "hello", now=clock.now)
    talk.remember_sent(theirs)
    talk.remember_sent(typed)
    assert talk.sent(typed.id) == typed
    assert talk.sent(theirs.id) is None


# ----------------------------------------------------------------------------- close calls

LADDER = {"item": "ladder"}
CLOSE = (Option("borrow_item", LADDER), Option("offer_item", LADDER))
"""What the parser hands over when "borrow" and "lend" are equally likely for a ladder."""


def asked(catalog: Catalog, clock: Clock, **settings: object) -> Conversation:
    talk = make(catalog, clock, **settings)
    actions = talk.heard(None, {}, "ladder borrow lend", options=CLOSE)
    assert said(actions) == ["Did you want to borrow or to lend?"]
    assert published(actions) == []
    assert talk.expecting_answer()
    return talk


@pytest.mark.parametrize(
    ("answer", "intent"),
    [
        ("borrow", "borrow_item"),
        ("to borrow please", "borrow_item"),
        ("I want to borrow it", "borrow_item"),
        ("the first", "borrow_item"),
        ("to lend", "offer_item"),
        ("lending", "offer_item"),
        ("the second one", "offer_item"),
    ],
)
def test_a_close_call_is_asked_and_the_answer_picks_one(
    catalog: Catalog, clock: Clock, answer: str, intent: str
) -> None:
    talk = asked(catalog, clock)
    clock.now += 2
    picked = talk.heard(None, {}, answer)  # the parser makes nothing of "borrow" on its own
    assert published(picked) == []
    question = readback(intent, LADDER, catalog)
    assert said(picked) == [question]
    [message] = published(talk.heard("reply_yes", {}, "yes"))
    assert (message.intent, message.slots, message.text) == (intent, LADDER, "ladder borrow lend")
    assert message.kind == catalog.kinds[intent]


@pytest.mark.parametrize(
    ("intent", "answer"),
    [
        ("reply_yes", "yes"),
        ("reply_no", "no"),
        (None, "both"),
        (None, "neither"),
        (None, "borrow or lend"),
        (None, "not borrow"),
        (None, "what"),
        ("cancel", "never mind"),
    ],
)
def test_anything_else_drops_the_close_call(
    catalog: Catalog, clock: Clock, intent: str | None, answer: str
) -> None:
    talk = asked(catalog, clock)
    actions = talk.heard(intent, {}, answer)
    assert published(actions) == []
    assert said(actions) == ["Okay, not sent."]
    assert not talk.expecting_answer()
    assert published(talk.heard("reply_yes", {}, "yes")) == []
    assert published(talk.heard(None, {}, "borrow")) == []


def test_a_new_request_instead_of_an_answer_is_read_back(catalog: Catalog, clock: Clock) -> None:
    talk = asked(catalog, clock)
    actions = talk.heard("say_hello", {}, "say hello")
    assert said(actions) == ["Tell your neighbors hello?"]
    [message] = published(talk.heard("reply_yes", {}, "yes"))
    assert message.intent == "say_hello"


def test_an_unanswered_close_call_is_dropped(catalog: Catalog, clock: Clock) -> None:
    talk = asked(catalog, clock, confirm_window_s=8.0)
    clock.now += 8.1
    assert said(talk.tick()) == ["Not sent."]
    assert said(talk.heard(None, {}, "borrow")) == []


def test_a_close_call_is_not_asked_without_choice_phrases(catalog: Catalog, clock: Clock) -> None:
    talk = make(catalog, clock)
    answers = (Option("reply_yes", {}), Option("rsvp", {}))
    assert talk.heard(None, {}, "yeah i'll come", options=answers) == []
    assert talk.heard(None, {}, "ladder", options=CLOSE[:1]) == []
    assert not talk.expecting_answer()


def test_a_close_call_with_confirm_off_sends_the_pick(catalog: Catalog, clock: Clock) -> None:
    talk = asked(catalog, clock, confirm=False)
    [message] = published(talk.heard(None, {}, "lend"))
    assert message.intent == "offer_item"


# ----------------------------------------------------------------------------- from the catalog


def extended(changes: dict[str, dict[str, object]]) -> Catalog:
    """The shipped catalog with some intents changed or added (a YAML edit, no Python edit)."""
    document = yaml.safe_load(DEFAULT_CATALOG_FILE.read_text(encoding="utf-8"))
    for name, keys in changes.items():
        document["intents"].setdefault(name, {}).update(keys)
    return parse_catalog(document)


def test_a_new_intent_is_read_back_and_sent_with_its_kind_and_lifetime(clock: Clock) -> None:
    catalog = extended(
        {
            "lost_pet": {
                "kind": "report",
                "slots": {"pet": "items"},
                "announce": "has lost {pet}",
                "sentences": ["i lost my {pet}"],
                "lifetime_minutes": 720,
            }
        }
    )
    talk = make(catalog, clock)
    assert said(talk.heard("lost_pet", {"pet": "tabby cat"}, "i lost my tabby cat")) == [
        "Send to your neighbors: has lost a tabby cat?"
    ]
    [message] = published(talk.heard("reply_yes", {}, "yes"))
    assert (message.intent, message.kind, message.in_reply_to) == ("lost_pet", "report", None)
    assert message.expires == clock.now + 720 * 60


def test_which_answers_send_a_read_back_is_the_catalog_s(clock: Clock) -> None:
    catalog = extended({"rsvp": {"on_readback": "send"}, "reply_no": {"on_readback": None}})
    talk = make(catalog, clock)
    talk.heard("borrow_item", LADDER, "can i borrow a ladder")
    assert published(talk.heard("reply_no", {}, "no")) == []
    assert talk.pending is not None  # "no" no longer drops it here
    [message] = published(talk.heard("rsvp", {}, "count me in"))
    assert message.intent == "borrow_item"
