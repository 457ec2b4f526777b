"""Topic names: built in one place, parsed back, and hostile topics refused."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest

from voicehello.bus import topics
from voicehello.bus.messages import KIND_OF_INTENT
from voicehello.bus.topics import TopicParts, parse_topic


def test_topic_names() -> None:
    assert topics.message_topic("street", "kitchen-12") == "voicehello/v1/street/kitchen-12/msg"
    assert topics.status_topic("street", "kitchen-12") == "voicehello/v1/street/kitchen-12/status"
    assert topics.key_topic("street", "kitchen-12") == "voicehello/v1/street/kitchen-12/key"
    assert topics.message_subscription("street") == "voicehello/v1/street/+/msg"
    assert topics.status_subscription("street") == "voicehello/v1/street/+/status"
    assert topics.key_subscription("street") == "voicehello/v1/street/+/key"
    assert topics.pod_subscriptions("street") == (
        "voicehello/v1/street/+/msg",
        "voicehello/v1/street/+/key",
        "voicehello/v1/street/+/status",
    )
    assert (topics.ONLINE, topics.OFFLINE) == (b"online", b"offline")


def test_no_topic_names_what_is_said() -> None:
    """The intent travels sealed inside the message: no topic carries it."""
    for intent in KIND_OF_INTENT:
        for topic in (
            topics.message_topic("street", "kitchen-12"),
            *topics.pod_subscriptions("street"),
        ):
            assert intent not in topic


@pytest.mark.parametrize("kind", ["msg", "status", "key"])
@pytest.mark.parametrize("device", ["kitchen-12", "a", "0", "k" * 32])
def test_topics_parse_back(device: str, kind: str) -> None:
    topic = {"msg": topics.message_topic, "status": topics.status_topic, "key": topics.key_topic}[kind](
        "0123456789abcdef", device
    )
    assert parse_topic(topic) == TopicParts(pod="0123456789abcdef", device=device, kind=kind)


def test_subscriptions_match_exactly_their_topics() -> None:
    """Checked with paho's own matcher, not ours."""
    said = topics.message_topic("street", "kitchen-12")
    status = topics.status_topic("street", "kitchen-12")
    key = topics.key_topic("street", "kitchen-12")
    subscriptions = {
        said: topics.message_subscription("street"),
        status: topics.status_subscription("street"),
        key: topics.key_subscription("street"),
    }
    for topic, subscription in subscriptions.items():
        assert mqtt.topic_matches_sub(subscription, topic)
        others = [other for other in subscriptions if other != topic]
        assert not any(mqtt.topic_matches_sub(subscription, other) for other in others)
    assert not mqtt.topic_matches_sub(topics.message_subscription("other"), said)


def test_longest_allowed_level() -> None:
    assert parse_topic(topics.message_topic("p" * 40, "d" * 40)) is not None
    assert parse_topic(topics.message_topic("street", "d" * 41)) is None


HOSTILE = [
    "",
    "/",
    "#",
    "+",
    "voicehello",
    "voicehello/v1",
    "voicehello/v1/street",
    "voicehello/v1/street/kitchen",
    "voicehello/v1/street/kitchen/intent",
    "voicehello/v1/street/kitchen/intent/",
    "voicehello/v1/street/kitchen/intent/borrow_item/extra",
    "voicehello/v1/street/kitchen/status/extra",
    "voicehello/v1/street/kitchen/status/",
    "voicehello/v1/street/kitchen/other",
    "voicehello/v1/street/kitchen/intent/borrow_item/",
    "/voicehello/v1/street/kitchen/status",
    "voicehello//v1/street/kitchen/status",
    "voicehello/v2/street/kitchen/status",
    "Voicehello/v1/street/kitchen/status",
    "hermes/intent/borrow_item",
    "voicehello/v1/street/kitchen/intent/borrow_item",  # v1's first layout named the intent: no more
    "voicehello/v1/street/kitchen/msg/borrow_item",
    "voicehello/v1/street/kitchen/msg/",
    "voicehello/v1/street/kitchen/Msg",
    "$SYS/broker/uptime",
    "voicehello/v1//kitchen/status",
    "voicehello/v1/street//status",
    "voicehello/v1/street/+/intent/+",
    "voicehello/v1/street/+/status",
    "voicehello/v1/street/#",
    "voicehello/v1/street/kitchen/intent/#",
    "voicehello/v1/street/Kitchen/status",
    "voicehello/v1/street/kitchen 12/status",
    "voicehello/v1/street/kitchén/status",
    "voicehello/v1/street/../status",
    "voicehello/v1/street/-kitchen/status",
    "voicehello/v1/street/_kitchen/status",
    "voicehello/v1/street/kitchen\x00/status",
    "voicehello/v1/street/kitchen/intent/Borrow",
    "voicehello/v1/street/kitchen/intent/borrow item",
    "voicehello/v1/street/" + "k" * 10_000 + "/status",
    "voicehello/v1/street/kitchen/intent/" + "/".join(["x"] * 1000),
]


@pytest.mark.parametrize("topic", HOSTILE, ids=[repr(topic[:60]) for topic in HOSTILE])
def test_hostile_topics_are_refused(topic: str) -> None:
    assert parse_topic(topic) is None


@pytest.mark.parametrize(
    "topic", ["voicehello/v1/street/kitchen\n/status", "voicehello/v1/street/kitchen/intent/borrow_item\n"]
)
def test_a_level_with_a_trailing_newline_is_refused(topic: str) -> None:
    assert parse_topic(topic) is None
