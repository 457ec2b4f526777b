"""The pods this device is in, as the bus uses them: where to speak, how to seal and open.

:class:`Membership` keeps the current pods in memory (reloaded by :meth:`Membership.refresh`,
which the bus calls every second, so a pod joined, left or over while the daemon runs is
picked up), pins this device's own key in each of them, seals outgoing messages and opens
incoming ones against the pinned keys, learns neighbors' keys and names from their
announcements, and tells the name to speak for a neighbor (:meth:`Membership.display_name`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from voicehello.bus.messages import Message
from voicehello.config import DeviceSettings, Settings
from voicehello.errors import EnvelopeError, PrivacyError
from voicehello.privacy import envelope
from voicehello.privacy.envelope import Seen
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.pods import POD_ID, Pod, PodStore, clean_name, pod_name, spoken_name

log = logging.getLogger(__name__)

NOT_IN_A_POD = (
    "this device is in no pod: create one with `voicehello pod create street --forever` "
    "and share its invite, or join one with `voicehello pod join CODE`"
)
MAX_NAME = 60
"""Longest name a key announcement carries."""
EARLIEST_PLAUSIBLE = 1_767_225_600.0
"""2026-01-01 UTC: a clock before this was never set (a Pi without a real-time clock or network)."""


@dataclass(frozen=True)
class PodChanges:
    """What :meth:`Membership.refresh` found."""

    joined: tuple[Pod, ...] = ()
    left: tuple[Pod, ...] = ()


def warn_if_clock_unset(now: float, window_s: float) -> bool:
    """Log a warning (and say True) when this device's clock was plainly never set."""
    if now >= EARLIEST_PLAUSIBLE:
        return False
    log.warning(
        "this device's clock says %s: its messages look long expired to neighbors, and theirs look "
        "dated more than %g s ahead to it, so both are refused; set the time (an NTP server on the "
        "broker's machine keeps a street in step)",
        time.strftime("%Y-%m-%d %H:%M", time.gmtime(now)),
        window_s,
    )
    return True


def choose_default(pods: list[Pod], wanted: str) -> Pod | None:
    """The pod named (or with the id) ``wanted``, else the only pod, else ``None``."""
    named = [pod for pod in pods if wanted in {pod.id, pod.name}]
    if named:
        return named[0]
    return pods[0] if len(pods) == 1 else None


class Membership:
    """This device's pods, its key, and the checks every sealed payload goes through.

    Thread-safe: the bus refreshes it from its sender thread and opens messages on paho's
    network thread.
    """

    def __init__(
        self,
        store: PodStore,
        keys: DeviceKeys,
        device: DeviceSettings,
        *,
        default_pod: str = "",
        window_s: float = 300.0,
        broker: tuple[str, int] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.keys = keys
        self.device = device
        self.default_pod = default_pod
        self.window_s = window_s
        self._broker = broker
        self._clock = clock
        self._lock = threading.Lock()
        self._pods: dict[str, Pod] = {}

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Membership:
        """This device's key (made on first use) and pods; :class:`PrivacyError` when it is in none."""
        keys_dir = settings.privacy.keys_dir
        store = PodStore(keys_dir, clock)
        if not store.list():  # before the key is made: refusing to start writes nothing
            raise PrivacyError(NOT_IN_A_POD)
        membership = cls(
            store,
            DeviceKeys.load_or_create(keys_dir),
            settings.device,
            default_pod=settings.bus.pod,
            window_s=settings.privacy.timestamp_window_s,
            broker=(settings.bus.host, settings.bus.port),
            clock=clock,
        )
        membership.refresh()
        if not membership.pods:
            raise PrivacyError(NOT_IN_A_POD)
        warn_if_clock_unset(clock(), settings.privacy.timestamp_window_s)
        return membership

    # -- which pods ---------------------------------------------------------------------------
    @property
    def pods(self) -> list[Pod]:
        """The current pods, by name."""
        now = self._clock()
        with self._lock:
            current = [pod for pod in self._pods.values() if not pod.expired(now)]
        return sorted(current, key=lambda pod: (pod.name, pod.id))

    def get(self, pod_id: str) -> Pod | None:
        """The current pod with this id (``None`` when not a member, or its time is over)."""
        with self._lock:
            pod = self._pods.get(pod_id)
        return None if pod is None or pod.expired(self._clock()) else pod

    def resolve(self, name_or_id: str) -> Pod:
        """The current pod with this name or id (:class:`PrivacyError` when there is none)."""
        for pod in self.pods:
            if name_or_id == pod.id or pod_name(name_or_id) == pod.name:
                return pod
        raise PrivacyError(f"this device is in no pod {name_or_id!r} (see `voicehello pod list`)")

    def default(self) -> Pod:
        """Where this device speaks unless told otherwise: ``[bus] pod`` (a name or an id) when
        it is in that pod, else its only pod."""
        pods = self.pods
        if not pods:
            raise PrivacyError(NOT_IN_A_POD)
        chosen = choose_default(pods, self.default_pod)
        if chosen is None:
            names = ", ".join(pod.name for pod in pods)
            raise PrivacyError(f"set [bus] pod to the pod to speak in by default (one of: {names})")
        return chosen

    def refresh(self) -> PodChanges:
        """Reload the pods from disk (finished ones are forgotten there) and say what changed."""
        loaded = {pod.id: self._pin_own_key(pod) for pod in self.store.list()}
        with self._lock:
            before, self._pods = self._pods, loaded
        joined = tuple(pod for pod_id, pod in loaded.items() if pod_id not in before)
        left = tuple(pod for pod_id, pod in before.items() if pod_id not in loaded)
        for pod in joined:
            self._check_broker(pod)
        for pod in left:
            log.info(
                "no longer in pod %s (%s): its key is forgotten and nobody listens to it", pod.name, pod.id
            )
        return PodChanges(joined, left)

    def _pin_own_key(self, pod: Pod) -> Pod:
        """``pod`` with this device's own key and name in its roster (so its own messages open
        too, and no neighbor's device can take its name here)."""
        own = self.keys.verify_key_b64
        member = pod.members.get(self.device.id)
        if member is not None and member.key == own and member.name == clean_name(self.device.name):
            return pod
        if member is not None and member.key and member.key != own:
            log.error(
                "pod %s has another key pinned for this device's id %r: neighbors will not accept its "
                "messages there; pick another [device] id, or leave and rejoin the pod",
                pod.name,
                self.device.id,
            )
            return pod
        if not self.store.pin_own(pod.id, self.device.id, own, self.device.name):
            return pod
        try:
            return self.store.get(pod.id)
        except PrivacyError:
            return pod

    def _check_broker(self, pod: Pod) -> None:
        if self._broker is None or not pod.host or (pod.host, pod.port) == self._broker:
            return
        log.warning(
            "pod %s was made on the broker %s:%d but this device talks to %s:%d; "
            "its members are heard only if they use the same broker",
            pod.name,
            pod.host,
            pod.port,
            *self._broker,
        )

    # -- sealing and opening --------------------------------------------------------------------
    def seal(self, message: Message, pod: Pod) -> bytes:
        """``message`` signed by this device and encrypted for ``pod``."""
        return envelope.seal(message, pod, self.keys)

    def open(self, payload: bytes, pod: Pod, topic_device: str, seen: Seen) -> Message:
        """The message in a payload published as ``topic_device`` in ``pod``, every check passed.

        Raises :class:`~voicehello.errors.EnvelopeError` (``UnknownSenderError`` when the
        sender's key is not pinned yet, ``ReplayError`` for an id already received)."""
        return envelope.open_message(
            payload, pod, pod.roster, self._clock(), self.window_s, seen, topic_device=topic_device
        )

    def key_announcement(self, pod: Pod) -> bytes:
        """This device's sealed key announcement for ``pod`` (published retained)."""
        name = self.device.name[:MAX_NAME]
        return envelope.seal_key_announcement(pod, self.keys, self.device.id, name, self._clock())

    def learn(self, payload: bytes, pod: Pod, topic_device: str) -> str | None:
        """Pin the key and name a member announced on its key topic in ``pod`` (trust on first
        use; a provisional invite key gives way to it, see :meth:`PodStore.learn`).

        Returns the device whose key is now pinned, ``None`` when a different key was already
        pinned for it (logged by the store); :class:`EnvelopeError` when the payload is bad."""
        announced = envelope.open_key_announcement(payload, pod, self._clock(), topic_device=topic_device)
        device = announced.device
        if device == self.device.id:
            if announced.key != self.keys.verify_key_b64:
                raise EnvelopeError(f"a key announcement claims this device's id {device!r} with another key")
            return device
        member = pod.members.get(device)
        name = clean_name(announced.name)
        if member is not None and member.key == announced.key and name in {member.name, member.new_name}:
            return device  # nothing new (announcements come again on every reconnect)
        if not self.store.learn(pod.id, device, announced.key, announced.name):
            return None
        self._reload(pod.id)
        return device

    def display_name(self, pod_id: str, device: str) -> str:
        """The name to speak for ``device``'s messages in the pod ``pod_id``: the name pinned with
        its key, marked ("someone calling themselves Maya") when another device of the pod held
        it first; the device id when none is pinned or the pod is unknown. Never a name carried
        inside a message."""
        pod = self.get(pod_id)
        return device if pod is None else spoken_name(pod, device)

    def _reload(self, pod_id: str) -> None:
        """Read one pod again (its roster changed)."""
        if not POD_ID.match(pod_id):
            return
        try:
            pod = self.store.get(pod_id)
        except PrivacyError:
            return
        with self._lock:
            if pod_id in self._pods:
                self._pods[pod_id] = pod
