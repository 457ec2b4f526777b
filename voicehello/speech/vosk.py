"""The Vosk (Kaldi) engine behind the :class:`~voicehello.speech.recognizer.Recognizer` protocol.

The model is always loaded from a local directory (``vosk.Model(model_path=...)``), never by name
or language, so libvosk never downloads anything. With ``phrases`` the recognizer decodes against a
runtime grammar of those phrases plus ``[unk]``; an utterance heard as ``[unk]`` is out of domain
and rejected (empty text), unless ``full_lm_fallback`` decodes the same audio again without the
grammar. That audio is held in memory only, bounded, and dropped when the utterance ends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vosk import KaldiRecognizer, Model, SetLogLevel

from voicehello.errors import CatalogError, ModelError, RecognizerError
from voicehello.speech.models import ModelLayout, check_model
from voicehello.speech.recognizer import SAMPLE_RATE, SAMPLE_WIDTH, Transcript

logger = logging.getLogger(__name__)

ENGINE = "vosk"
UNK = "[unk]"
"""Vosk's token for speech outside the grammar."""

DEFAULT_MAX_FALLBACK_SECONDS = 15.0
"""Most audio kept in memory for the full-model fallback (utterances are cut at 10 s by default)."""

_FALLBACK_CHUNK_BYTES = 8000


# --------------------------------------------------------------------------- pure helpers


@dataclass(frozen=True)
class Word:
    """One recognized word with Vosk's per-word confidence and timing (seconds)."""

    word: str
    conf: float
    start: float
    end: float


@dataclass(frozen=True)
class VoskResult:
    """A parsed ``Result()``/``FinalResult()`` JSON document."""

    text: str
    """Lower-case words separated by single spaces (may contain ``[unk]``)."""
    words: tuple[Word, ...]
    """Per-word details (present when ``SetWords(True)``)."""

    @property
    def tokens(self) -> list[str]:
        """The words of ``text``."""
        return self.text.split()

    @property
    def has_unk(self) -> bool:
        """True if any part of the utterance was heard as out-of-grammar speech."""
        return UNK in self.tokens or any(w.word == UNK for w in self.words)

    @property
    def confidence(self) -> float:
        """Mean word confidence, 0 when there are no words."""
        return sum(w.conf for w in self.words) / len(self.words) if self.words else 0.0


def normalize_text(text: str) -> str:
    """Lower case with single spaces."""
    return " ".join(text.lower().split())


def _word(item: Any) -> Word:
    if not isinstance(item, dict) or not isinstance(item.get("word"), str):
        raise RecognizerError(f"unexpected word entry in Vosk result: {item!r}")
    return Word(
        word=item["word"].lower(),
        conf=float(item.get("conf", 0.0)),
        start=float(item.get("start", 0.0)),
        end=float(item.get("end", 0.0)),
    )


def parse_result(json_text: str) -> VoskResult:
    """Parse one Vosk result document (``{"text": ..., "result": [{"word", "conf", ...}]}``)."""
    try:
        doc = json.loads(json_text)
    except json.JSONDecodeError as exc:
        raise RecognizerError(f"Vosk returned a result that is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise RecognizerError("Vosk returned a result that is not a JSON object")
    text = doc.get("text", "")
    items = doc.get("result", [])
    if not isinstance(text, str) or not isinstance(items, list):
        raise RecognizerError("Vosk result has an unexpected shape")
    return VoskResult(text=normalize_text(text), words=tuple(_word(item) for item in items))


def merge_results(results: Iterable[VoskResult]) -> VoskResult:
    """Join the segments of one utterance (Vosk may end a segment at its own endpoint)."""
    parts = list(results)
    text = " ".join(part.text for part in parts if part.text)
    return VoskResult(text=text, words=tuple(w for part in parts for w in part.words))


def grammar_json(phrases: Iterable[str]) -> str:
    """The grammar document for ``KaldiRecognizer``: sorted unique phrases, then ``[unk]``."""
    unique = {normalize_text(p) for p in phrases} - {"", UNK}
    return json.dumps([*sorted(unique), UNK])


def filter_phrases(phrases: Iterable[str], known: Callable[[str], bool]) -> tuple[list[str], list[str]]:
    """Split normalized phrases into (all words known, unknown words) using ``known(word)``."""
    kept: list[str] = []
    unknown: set[str] = set()
    for phrase in {normalize_text(p) for p in phrases} - {"", UNK}:
        missing = [word for word in phrase.split() if not known(word)]
        if missing:
            unknown.update(missing)
        else:
            kept.append(phrase)
    return sorted(kept), sorted(unknown)


def read_words_file(path: Path) -> frozenset[str]:
    """The words of a Kaldi ``words.txt`` symbol table (``word id`` per line)."""
    try:
        with path.open(encoding="utf-8") as lines:
            return frozenset(line.split(maxsplit=1)[0] for line in lines if line.strip())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read the vocabulary {path}: {exc}") from exc


def to_transcript(result: VoskResult, audio_seconds: float) -> Transcript:
    """The protocol's :class:`Transcript` for a decode without ``[unk]``."""
    return Transcript(
        text=result.text, confidence=result.confidence, engine=ENGINE, audio_seconds=audio_seconds
    )


# --------------------------------------------------------------------------- library boundary


def _load_model(model_dir: Path) -> Any:
    """Load the (already validated) model at ``model_dir``; libvosk failures become ModelError."""
    SetLogLevel(-1)
    try:
        return Model(model_path=str(model_dir))
    except Exception as exc:  # libvosk raises a bare Exception("Failed to create a model")
        raise ModelError(
            f"cannot load the Vosk model at {model_dir} ({exc}); it may be damaged or from an "
            "incompatible Vosk version: download it again with `voicehello models download`"
        ) from exc


def _new_recognizer(model: Any, grammar: str | None, model_dir: Path) -> Any:
    try:
        rec = (
            KaldiRecognizer(model, SAMPLE_RATE)
            if grammar is None
            else KaldiRecognizer(model, SAMPLE_RATE, grammar)
        )
        rec.SetWords(True)
    except Exception as exc:  # libvosk raises a bare Exception("Failed to create a recognizer")
        raise ModelError(f"cannot create a Vosk recognizer for {model_dir}: {exc}") from exc
    return rec


def _vocabulary(model: Any, layout: ModelLayout) -> Callable[[str], bool] | None:
    """A word lookup: ``words.txt`` when shipped, else the model's own symbol table."""
    if layout.words_file is not None:
        words = read_words_file(layout.words_file)
        return words.__contains__
    find_word = getattr(model, "vosk_model_find_word", None)
    if find_word is None:
        return None
    return lambda word: int(find_word(word)) >= 0


def _grammar_for(model: Any, layout: ModelLayout, phrases: Sequence[str]) -> str | None:
    """The grammar to decode with, or ``None`` when the model cannot take one (logged)."""
    if not layout.runtime_grammar:
        logger.warning(
            "Vosk model %s has a static decoding graph (HCLG.fst): the %d-phrase grammar is ignored "
            "and the full vocabulary is used",
            layout.root,
            len(phrases),
        )
        return None
    unique = {normalize_text(p) for p in phrases} - {"", UNK}
    if not unique:
        raise CatalogError("no phrases to build a Vosk grammar from")
    known = _vocabulary(model, layout)
    if known is None:
        logger.info("Vosk model %s has no word list; phrases are not checked against it", layout.root)
        return grammar_json(unique)
    kept, unknown = filter_phrases(unique, known)
    if len(kept) < len(unique):
        logger.warning(
            "dropped %d of %d phrase(s) with words the Vosk model does not know: %s",
            len(unique) - len(kept),
            len(unique),
            ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""),
        )
    if not kept:
        raise ModelError(f"none of the {len(unique)} grammar phrases are in the vocabulary of {layout.root}")
    return grammar_json(kept)


# --------------------------------------------------------------------------- the recognizer


class VoskRecognizer:
    """Decodes one utterance at a time with Vosk; see the module docstring."""

    def __init__(
        self,
        model_dir: Path,
        phrases: Sequence[str] | None = None,
        full_lm_fallback: bool = False,
        *,
        max_fallback_seconds: float = DEFAULT_MAX_FALLBACK_SECONDS,
    ) -> None:
        """Load the model in ``model_dir`` (raises :class:`ModelError` if missing or damaged)."""
        self._model_dir = Path(model_dir)
        layout = check_model(self._model_dir)
        self._model = _load_model(self._model_dir)
        grammar = _grammar_for(self._model, layout, phrases) if phrases is not None else None
        self._grammar = grammar
        self._rec = _new_recognizer(self._model, grammar, self._model_dir)
        self._full_rec: Any = None
        self._fallback = full_lm_fallback and grammar is not None
        self._max_buffer = int(max_fallback_seconds * SAMPLE_RATE) * SAMPLE_WIDTH
        self._buffer = bytearray()
        self._overflow = False
        self._segments: list[VoskResult] = []
        self._carry = b""
        self._bytes = 0
        self._endpoint = False

    @property
    def engine(self) -> str:
        """``"vosk"``."""
        return ENGINE

    @property
    def grammar(self) -> str | None:
        """The grammar JSON in use, or ``None`` when decoding with the full model."""
        return self._grammar

    @property
    def endpoint_detected(self) -> bool:
        """True once Vosk's own endpointer has ended a segment in this utterance."""
        return self._endpoint

    @property
    def buffered_bytes(self) -> int:
        """Audio held in memory for the fallback decode (0 when the fallback is off)."""
        return len(self._buffer)

    def start(self) -> None:
        """Begin a new utterance, discarding any state of the previous one."""
        self._reset()
        try:
            self._rec.Reset()
        except Exception as exc:
            raise RecognizerError(f"Vosk failed to reset: {exc}") from exc

    def feed(self, pcm: bytes) -> None:
        """Decode a chunk of 16 kHz mono int16 PCM."""
        data = self._carry + pcm
        cut = len(data) - len(data) % SAMPLE_WIDTH
        data, self._carry = data[:cut], data[cut:]
        if not data:
            return
        self._bytes += len(data)
        self._remember(data)
        try:
            ended = bool(self._rec.AcceptWaveform(data))
            if ended:
                self._endpoint = True
                self._segments.append(parse_result(self._rec.Result()))
        except RecognizerError:
            raise
        except Exception as exc:
            raise RecognizerError(f"Vosk failed to decode audio: {exc}") from exc

    def finish(self) -> Transcript:
        """End the utterance and return what was heard (empty text when out of domain)."""
        try:
            final = parse_result(self._rec.FinalResult())
        except RecognizerError:
            self._reset()
            raise
        except Exception as exc:
            self._reset()
            raise RecognizerError(f"Vosk failed to finish the utterance: {exc}") from exc
        result = merge_results([*self._segments, final])
        seconds = self._bytes / (SAMPLE_RATE * SAMPLE_WIDTH)
        try:
            return self._transcript(result, seconds)
        finally:
            self._reset()

    # -- internals

    def _reset(self) -> None:
        self._buffer.clear()
        self._overflow = False
        self._segments = []
        self._carry = b""
        self._bytes = 0
        self._endpoint = False

    def _remember(self, data: bytes) -> None:
        """Keep the utterance's audio in memory for the fallback, up to the bound."""
        if not self._fallback or self._overflow:
            return
        if len(self._buffer) + len(data) > self._max_buffer:
            self._overflow = True
            self._buffer.clear()
            logger.debug("utterance longer than the fallback buffer; no full-model fallback for it")
            return
        self._buffer += data

    def _transcript(self, result: VoskResult, seconds: float) -> Transcript:
        if self._grammar is None:
            words = tuple(w for w in result.words if w.word != UNK)
            clean = VoskResult(" ".join(t for t in result.tokens if t != UNK), words)
            return to_transcript(clean, seconds)
        if not result.has_unk:
            return to_transcript(result, seconds)
        if self._fallback and not self._overflow and self._buffer:
            return to_transcript(self._decode_full(bytes(self._buffer)), seconds)
        return Transcript(text="", confidence=0.0, engine=ENGINE, audio_seconds=seconds)

    def _decode_full(self, pcm: bytes) -> VoskResult:
        """Decode ``pcm`` again with the grammar-free model."""
        if self._full_rec is None:
            self._full_rec = _new_recognizer(self._model, None, self._model_dir)
        rec = self._full_rec
        segments: list[VoskResult] = []
        try:
            rec.Reset()
            for offset in range(0, len(pcm), _FALLBACK_CHUNK_BYTES):
                if rec.AcceptWaveform(pcm[offset : offset + _FALLBACK_CHUNK_BYTES]):
                    segments.append(parse_result(rec.Result()))
            segments.append(parse_result(rec.FinalResult()))
        except RecognizerError:
            raise
        except Exception as exc:
            raise RecognizerError(f"Vosk failed in the full-model fallback: {exc}") from exc
        merged = merge_results(segments)
        words = tuple(w for w in merged.words if w.word != UNK)
        return VoskResult(" ".join(t for t in merged.tokens if t != UNK), words)
