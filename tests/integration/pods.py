"""Pods for tests: one real pod (real keys, real invite code) that devices join on first use.

Each device gets a key directory of its own under ``root`` (``root/<device>``), as on separate
kitchens: the first device to ask creates the pod, the others join with its invite code.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from voicehello.bus.messages import Message
from voicehello.bus.seen import SeenIds
from voicehello.config import DeviceSettings
from voicehello.privacy import envelope
from voicehello.privacy.keys import DeviceKeys
from voicehello.privacy.membership import Membership
from voicehello.privacy.pods import Pod, PodStore


@dataclass
class Circle:
    """One pod shared by any number of test devices."""

    root: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:12]}")
    hours: float | None = None
    host: str = ""
    port: int = 1883
    _pod: Pod | None = None
    _invite: str = ""

    @property
    def pod(self) -> Pod:
        """The pod (created on first use, by ``root/owner``)."""
        if self._pod is None:
            store = PodStore(self.root / "owner")
            self._pod = store.create(self.name, self.hours, self.host, self.port)
            self._invite = store.invite(self._pod)
        return self._pod

    @property
    def id(self) -> str:
        """The pod id: its topic level."""
        return self.pod.id

    @property
    def invite(self) -> str:
        """The pod's invite code."""
        _ = self.pod
        return self._invite

    def keys_dir(self, device: str) -> Path:
        """``device``'s key directory, a member of the pod."""
        keys_dir = self.root / device
        if not (keys_dir / "pods" / f"{self.id}.json").exists():
            PodStore(keys_dir).join(self.invite)
        return keys_dir

    def join(self, keys_dir: Path) -> Path:
        """Join the pod from an existing key directory (a device in several pods)."""
        PodStore(keys_dir).join(self.invite)
        return keys_dir

    def membership(
        self, device: str, name: str | None = None, *, clock: Callable[[], float] = time.time
    ) -> Membership:
        """``device``'s membership (key made on first use), its default pod this one."""
        keys_dir = self.keys_dir(device)
        settings = DeviceSettings(id=device, name=name or device)
        membership = Membership(
            PodStore(keys_dir, clock),
            DeviceKeys.load_or_create(keys_dir),
            settings,
            default_pod=self.name,
            clock=clock,
        )
        membership.refresh()
        return membership

    def open(self, payload: bytes, keys_dir: Path, *, topic_device: str | None = None) -> Message:
        """A sealed intent payload of this pod, opened as the device of ``keys_dir`` would: with
        the pod key and the keys pinned there (raises ``EnvelopeError`` for anything wrong)."""
        pod = PodStore(keys_dir).get(self.id)
        return envelope.open_message(
            payload, pod, pod.roster, time.time(), 300.0, SeenIds(), topic_device=topic_device
        )
