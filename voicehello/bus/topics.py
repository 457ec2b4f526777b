"""MQTT topic names: the one place they are spelled out.

* ``voicehello/v1/<pod>/<device>/msg``: what a device says (QoS 1, never retained).
* ``voicehello/v1/<pod>/<device>/status``: retained ``online``/``offline`` presence (last will).
* ``voicehello/v1/<pod>/<device>/key``: the device's retained, sealed key announcement.

``<pod>`` is the pod's id (16 hex digits) and every message and key payload is sealed with the
pod key (:mod:`voicehello.privacy.envelope`): the broker sees which device talks in which pod,
and when, but not what is said, not even the intent (it is inside the sealed message, not in
the topic).

The ``<device>`` level lets a broker ACL allow each device to publish only as itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ROOT = "voicehello/v1"
ONLINE, OFFLINE = b"online", b"offline"
_LEVEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class TopicParts:
    """What a topic says about the message on it."""

    pod: str
    device: str
    kind: str
    """``msg``, ``status`` or ``key``."""


def message_topic(pod: str, device: str) -> str:
    """Where ``device`` publishes its (sealed) messages in ``pod``."""
    return f"{ROOT}/{pod}/{device}/msg"


def status_topic(pod: str, device: str) -> str:
    """The device's retained presence topic."""
    return f"{ROOT}/{pod}/{device}/status"


def key_topic(pod: str, device: str) -> str:
    """The retained topic where ``device`` announces its verify key in ``pod``."""
    return f"{ROOT}/{pod}/{device}/key"


def message_subscription(pod: str) -> str:
    """Every message said in ``pod``."""
    return f"{ROOT}/{pod}/+/msg"


def status_subscription(pod: str) -> str:
    """Every device's presence in ``pod``."""
    return f"{ROOT}/{pod}/+/status"


def key_subscription(pod: str) -> str:
    """Every member's key announcement in ``pod``."""
    return f"{ROOT}/{pod}/+/key"


def pod_subscriptions(pod: str) -> tuple[str, str, str]:
    """Everything a member of ``pod`` listens to."""
    return message_subscription(pod), key_subscription(pod), status_subscription(pod)


def parse_topic(topic: str) -> TopicParts | None:
    """Split a voicehello topic into its parts; ``None`` for anything else."""
    parts = topic.split("/")
    if len(parts) < 5 or "/".join(parts[:2]) != ROOT:
        return None
    levels = parts[2:]
    if not all(_LEVEL.fullmatch(level) for level in levels):
        return None
    if len(levels) == 3 and levels[2] in {"msg", "status", "key"}:
        return TopicParts(pod=levels[0], device=levels[1], kind=levels[2])
    return None
