"""Privacy: this device's signing key, pods (shared secret-box keys handed out as invite codes)
and the sealed envelope every message travels in.

* :mod:`voicehello.privacy.keys`: the device's Ed25519 signing key (``keys_dir/device.key``).
* :mod:`voicehello.privacy.pods`: pods, invite codes and the per-pod roster of pinned keys.
* :mod:`voicehello.privacy.envelope`: seal/open messages and key announcements.
"""
