"""``voicehello pod create / invite / join / list / members / accept-name / leave``."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from voicehello.config import Settings, load_settings
from voicehello.privacy.keys import DeviceKeys, fingerprint
from voicehello.privacy.membership import choose_default
from voicehello.privacy.pods import Member, Pod, PodStore, clock_time, invite_conflict, name_holder
from voicehello.privacy.qr import invite_qr

log = logging.getLogger(__name__)

DEFAULT_HOURS = 24.0


def _store(args: argparse.Namespace) -> tuple[Settings, PodStore]:
    settings = load_settings(args.config)
    return settings, PodStore(settings.privacy.keys_dir)


def _ends(pod: Pod) -> str:
    """When the pod ends, for people."""
    return "never expires" if pod.expires is None else f"expires at {clock_time(pod.expires)}"


def _left(pod: Pod, now: float) -> str:
    """Time left, e.g. ``23h59m`` or ``never``."""
    if pod.expires is None:
        return "never"
    minutes = max(0, int((pod.expires - now) // 60))
    return f"{minutes // 60}h{minutes % 60:02d}m"


def cmd_pod_create(args: argparse.Namespace) -> int:
    """Create a pod and print its invite code."""
    settings, store = _store(args)
    keys = DeviceKeys.load_or_create(settings.privacy.keys_dir)
    hours = None if args.forever else (DEFAULT_HOURS if args.hours is None else args.hours)
    bus = settings.bus
    pod = store.create(args.name, hours, bus.host, bus.port, bus.tls)
    code = store.invite(pod, settings.device.id, keys)
    print(code)
    print(f"pod {pod.name} ({pod.id}) {_ends(pod)}; share the code above with your neighbors")
    if args.qr:
        print(invite_qr(code), end="")
    if bus.username:
        print(
            f"on a hardened broker each member needs read access: voicehello broker grant DEVICE {pod.id}",
            file=sys.stderr,
        )
    return 0


def cmd_pod_invite(args: argparse.Namespace) -> int:
    """Print the invite code of a pod this device is in (with this device's key for joiners to pin)."""
    settings, store = _store(args)
    keys = DeviceKeys.load_or_create(settings.privacy.keys_dir)
    pod = store.get(args.pod)
    code = store.invite(pod, settings.device.id, keys)
    print(code)
    print(f"pod {pod.name} ({pod.id}) {_ends(pod)}; joiners will know this device's key from the code")
    if args.qr:
        print(invite_qr(code), end="")
    return 0


def cmd_pod_join(args: argparse.Namespace) -> int:
    """Join the pod of an invite code."""
    settings, store = _store(args)
    DeviceKeys.load_or_create(settings.privacy.keys_dir)
    pod = store.join(" ".join(args.code))
    broker = f"{pod.host}:{pod.port}" if pod.host else "this device's broker"
    print(f"joined pod {pod.name} ({pod.id}), {_ends(pod)}; meets on {broker}")
    for device in pod.members:
        if device != settings.device.id:
            print(f"{device}'s key from this code is checked when {device}'s device announces its own")
    bus = settings.bus
    if pod.host and (pod.host, pod.port) != (bus.host, bus.port):
        configured = f"{bus.host}:{bus.port}" if bus.host else "no broker"
        print(
            f"note: this device is set to {configured}; set [bus] host and port to {pod.host}:{pod.port}"
            f"{' (tls = true)' if pod.tls else ''} to hear this pod",
            file=sys.stderr,
        )
    return 0


def cmd_pod_list(args: argparse.Namespace) -> int:
    """List the current pods (forgetting finished ones)."""
    settings, store = _store(args)
    pods = store.list()
    if not pods:
        print("no pods; create one with `voicehello pod create NAME` or join one with an invite")
        return 0
    now = time.time()
    default = choose_default(pods, settings.bus.pod)
    print(f"  {'NAME':32s} {'ID':16s} {'EXPIRES IN':>10s} MEMBERS")
    for pod in pods:
        mark = "*" if pod == default else " "
        print(f"{mark} {pod.name:32s} {pod.id:16s} {_left(pod, now):>10s} {len(pod.members)}")
    if default is None:
        print("(no default pod: set [bus] pod to one of these names)")
    else:
        print("(* = where this device speaks unless told otherwise: [bus] pod)")
    return 0


def cmd_pod_members(args: argparse.Namespace) -> int:
    """The devices known in a pod: pinned name, key fingerprint to compare aloud, and anything
    unconfirmed or contested."""
    settings, store = _store(args)
    pod = store.get(args.pod)
    own = DeviceKeys.load_or_create(settings.privacy.keys_dir).verify_key_b64
    print(f"this device, {settings.device.id}: {fingerprint(own)}")
    print(f"pod {pod.name} ({pod.id}): names and keys pinned here (compare them with your neighbors')")
    others = {device: member for device, member in pod.members.items() if member.key != own}
    if not others:
        print("  none yet: keys are learned when members' devices connect")
    for device, member in sorted(others.items()):
        key = member.key or member.invited_key
        name = repr(member.name) if member.name else "(no name yet)"
        print(f"  {device:24s} {name:32s} {fingerprint(key)}")
        for note in _member_notes(pod, device, member):
            print(f"      ! {note}")
    return 0


def _member_notes(pod: Pod, device: str, member: Member) -> list[str]:
    """What is unconfirmed or contested about one member, one line each."""
    notes: list[str] = []
    if not member.key:
        notes.append(f"key from an invite, unconfirmed until {device}'s device announces it")
    holder = name_holder(pod, device)
    if holder is not None:
        notes.append(
            f"{holder} was called {member.name!r} first: announced as 'someone calling themselves ...'"
        )
    if member.new_name:
        notes.append(
            f"now calls themselves {member.new_name!r}: "
            f"run `voicehello pod accept-name {pod.name} {device}` to announce them so"
        )
    if member.refused_invite_key and member.key:
        notes.append(invite_conflict(pod.name, device, member.refused_invite_key, member.key))
    return notes


def cmd_pod_accept_name(args: argparse.Namespace) -> int:
    """Announce a member by the new name it gave itself."""
    _, store = _store(args)
    member = store.accept_name(args.pod, args.device)
    print(f"{args.device} is now announced as {member.name!r}")
    return 0


def cmd_pod_leave(args: argparse.Namespace) -> int:
    """Leave a pod: its key is deleted from this device."""
    _, store = _store(args)
    pod = store.leave(args.pod)
    print(f"left pod {pod.name} ({pod.id}); its key is deleted")
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``pod create / invite / join / list / members / accept-name / leave`` to the parser."""
    pods = sub.add_parser("pod", help="circles of neighbors: create, join, list, leave").add_subparsers(
        dest="pod_command", metavar="ACTION", required=True
    )
    p = pods.add_parser("create", parents=[common], help="create a pod and print its invite code")
    p.add_argument("name", help='pod name, e.g. "block party" (stored as block-party)')
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--hours",
        type=float,
        help=f"how long the pod lasts (default {DEFAULT_HOURS:g}); then its key is deleted",
    )
    group.add_argument("--forever", action="store_true", help="a pod that never expires (the street)")
    p.add_argument("--qr", action="store_true", help="also print the invite as a QR code to scan")
    p.set_defaults(func=cmd_pod_create)

    p = pods.add_parser("invite", parents=[common], help="print the invite code of a pod you are in")
    p.add_argument("pod", metavar="NAME_OR_ID")
    p.add_argument("--qr", action="store_true", help="also print it as a QR code to scan")
    p.set_defaults(func=cmd_pod_invite)

    p = pods.add_parser("join", parents=[common], help="join a pod with an invite code")
    p.add_argument("code", nargs="+", help="the invite code (vh1-...); spaces are ignored")
    p.set_defaults(func=cmd_pod_join)

    p = pods.add_parser("list", parents=[common], help="list pods: name, id, time left, members known")
    p.set_defaults(func=cmd_pod_list)

    p = pods.add_parser(
        "members", parents=[common], help="the devices known in a pod, with key fingerprints to compare aloud"
    )
    p.add_argument("pod", metavar="NAME_OR_ID")
    p.set_defaults(func=cmd_pod_members)

    p = pods.add_parser(
        "accept-name", parents=[common], help="announce a member by the new name it gave itself"
    )
    p.add_argument("pod", metavar="NAME_OR_ID")
    p.add_argument("device", metavar="DEVICE", help="the member's device id (see `pod members`)")
    p.set_defaults(func=cmd_pod_accept_name)

    p = pods.add_parser("leave", parents=[common], help="leave a pod and delete its key")
    p.add_argument("pod", metavar="NAME_OR_ID")
    p.set_defaults(func=cmd_pod_leave)
