"""The one exception hierarchy of voicehello.

Every error a user can cause (bad file, missing model, unknown device, bad config) is a
:class:`VoicehelloError` with a one-line message meant to be printed as is. Errors from
third-party libraries are translated at the boundary (``raise ... from exc``).
"""


class VoicehelloError(Exception):
    """Base class: a problem the user can fix, with a one-line explanation."""


class ConfigError(VoicehelloError):
    """The configuration file is missing, unreadable or invalid."""


class CatalogError(VoicehelloError):
    """The intent catalog is invalid (bad template, unknown list, missing intent)."""


class AudioError(VoicehelloError):
    """Audio could not be read: a missing, non-WAV, empty or unreadable file."""


class SilentAudioError(AudioError):
    """The audio holds no speech at all."""


class DeviceError(AudioError):
    """An audio device is unknown or cannot be opened."""


class ModelError(VoicehelloError):
    """A speech model is missing, incomplete or fails to load."""


class ModelDownloadError(ModelError):
    """A model download failed or its checksum did not match."""


class RecognizerError(VoicehelloError):
    """The speech engine failed while decoding."""


class AdaptationError(VoicehelloError):
    """Speaker adaptation (``voicehello enroll``) could not be made, was refused as worse,
    or an adaptation file cannot be used."""


class MessageError(VoicehelloError):
    """A bus message is malformed, oversized, of an unknown version or against the schema."""


class BusError(VoicehelloError):
    """The MQTT broker cannot be reached or refused the connection."""


class SpeakerError(VoicehelloError):
    """The text-to-speech engine or the audio output failed."""


class PrivacyError(VoicehelloError):
    """Keys or pods cannot be read, written or trusted (bad permissions, unknown pod)."""


class InviteError(PrivacyError):
    """An invite code is garbled, mistyped (bad checksum) or expired."""


class EnvelopeError(PrivacyError):
    """A sealed payload cannot be opened: bad shape, not a member, bad signature, unknown
    sender, replayed or outside the timestamp window."""


class UnknownSenderError(EnvelopeError):
    """A pod member's message whose sender has no key pinned yet (its announcement may follow)."""

    def __init__(self, message: str, device: str) -> None:
        super().__init__(message)
        self.device = device


class ReplayError(EnvelopeError):
    """A message id already received: a replay, or a QoS 1 duplicate after a reconnect."""
