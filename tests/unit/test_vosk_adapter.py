"""The Vosk adapter: model loading errors with the real library, decoding logic with a test double.

No English Vosk model can be fetched on this machine (no network but package registries), so the
adapter's own logic at the library boundary (grammar building, vocabulary filtering, ``[unk]``
rejection, the full-model fallback, confidences, the audio buffer bound) is tested with a test
double for ``vosk.Model`` / ``vosk.KaldiRecognizer``: it records the grammar JSON and the audio it
was given and returns scripted result JSON. Model *loading* errors use the real ``vosk`` library.
Recognition accuracy with a real model is for tests marked ``vosk`` (``VOICEHELLO_VOSK_MODEL``).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from voicehello.errors import CatalogError, ModelError, RecognizerError
from voicehello.intents.catalog import Catalog
from voicehello.speech import vosk as adapter
from voicehello.speech.recognizer import Recognizer, recognize
from voicehello.speech.vosk import VoskRecognizer, grammar_json, merge_results, parse_result

REPO = Path(__file__).resolve().parents[2]
V2_FILES = [
    "am/final.mdl",
    "conf/model.conf",
    "conf/mfcc.conf",
    "graph/HCLr.fst",
    "graph/Gr.fst",
    "graph/disambig_tid.int",
]
ONE_SECOND = b"\x01\x00" * 16_000


def make_model(root: Path, files: list[str] = V2_FILES, words: list[str] | None = None) -> Path:
    """A directory laid out like a Vosk model (fake contents); ``words`` writes graph/words.txt."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fake")
    if words is not None:
        lines = [f"{word} {i}" for i, word in enumerate(["<eps>", "!SIL", "[unk]", *words])]
        (root / "graph" / "words.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def result(*words: tuple[str, float]) -> str:
    """Vosk result JSON for ``(word, conf)`` pairs."""
    items = [
        {"word": w, "conf": c, "start": i * 0.3, "end": i * 0.3 + 0.25} for i, (w, c) in enumerate(words)
    ]
    return json.dumps({"result": items, "text": " ".join(w for w, _ in words)})


EMPTY = json.dumps({"text": ""})


# --------------------------------------------------------------------------- the test double


@dataclass
class FakeVosk:
    """Scripts and records for the fake ``Model`` / ``KaldiRecognizer``."""

    vocabulary: set[str] | None = None
    """Words ``vosk_model_find_word`` knows; ``None`` knows every word."""
    finals: dict[str, list[str]] = field(default_factory=lambda: {"grammar": [], "full": []})
    """``FinalResult()`` documents per recognizer kind, consumed in order."""
    segments: list[str] = field(default_factory=list)
    """``Result()`` documents returned after an endpoint, in order."""
    endpoint_after_bytes: int | None = None
    """``AcceptWaveform`` reports an endpoint once this much audio was accepted."""
    fail_accept: bool = False
    models: list[dict[str, Any]] = field(default_factory=list)
    recognizers: list[FakeRecognizer] = field(default_factory=list)
    log_levels: list[int] = field(default_factory=list)

    def by_kind(self, kind: str) -> list[FakeRecognizer]:
        return [r for r in self.recognizers if r.kind == kind]


class FakeModel:
    def __init__(self, fake: FakeVosk, **kwargs: Any) -> None:
        fake.models.append(kwargs)
        self.fake = fake

    def vosk_model_find_word(self, word: str) -> int:
        known = self.fake.vocabulary
        return 1 if known is None or word in known else -1


class FakeRecognizer:
    def __init__(self, model: FakeModel, rate: int, grammar: str | None = None) -> None:
        self.fake = model.fake
        self.rate = rate
        self.grammar = grammar
        self.kind = "full" if grammar is None else "grammar"
        self.audio = bytearray()
        self.words = False
        self.resets = 0
        self.endpointed = False
        self.fake.recognizers.append(self)

    def SetWords(self, enabled: bool) -> None:  # noqa: N802 (the library's names)
        self.words = enabled

    def Reset(self) -> None:  # noqa: N802 (the library's names)
        self.resets += 1
        self.audio.clear()

    def AcceptWaveform(self, data: bytes) -> bool:  # noqa: N802 (the library's names)
        if self.fake.fail_accept:
            raise Exception("Failed to process waveform")
        self.audio += data
        limit = self.fake.endpoint_after_bytes
        if self.kind == "grammar" and limit is not None and not self.endpointed and len(self.audio) >= limit:
            self.endpointed = True
            return True
        return False

    def Result(self) -> str:  # noqa: N802 (the library's names)
        return self.fake.segments.pop(0)

    def FinalResult(self) -> str:  # noqa: N802 (the library's names)
        script = self.fake.finals[self.kind]
        return script.pop(0) if script else EMPTY


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeVosk:
    """Replace the names the adapter module uses for the library with the double."""
    state = FakeVosk()
    monkeypatch.setattr(adapter, "Model", lambda **kwargs: FakeModel(state, **kwargs))
    monkeypatch.setattr(adapter, "KaldiRecognizer", FakeRecognizer)
    monkeypatch.setattr(adapter, "SetLogLevel", state.log_levels.append)
    return state


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    return make_model(tmp_path / "vosk-model-fake")


def decode(rec: VoskRecognizer, pcm: bytes = ONE_SECOND) -> tuple[str, float, float]:
    transcript = recognize(rec, pcm)
    assert transcript.engine == "vosk"
    return transcript.text, transcript.confidence, transcript.audio_seconds


# --------------------------------------------------------------------------- loading


def test_model_is_loaded_by_path_only_and_kaldi_logging_is_quiet(fake: FakeVosk, model_dir: Path) -> None:
    rec = VoskRecognizer(model_dir)

    assert fake.models == [{"model_path": str(model_dir)}]  # never model_name / lang: no download
    assert fake.log_levels == [-1]
    assert rec.engine == "vosk"
    _: Recognizer = rec  # satisfies the protocol (checked by mypy)


def test_library_failure_is_translated_to_model_error(
    fake: FakeVosk, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(**kwargs: Any) -> None:
        raise Exception("Failed to create a model")

    monkeypatch.setattr(adapter, "Model", failing)

    with pytest.raises(ModelError, match=r"cannot load the Vosk model at .*Failed to create a model"):
        VoskRecognizer(model_dir)


@pytest.mark.parametrize("kind", ["missing", "empty", "junk"])
def test_missing_or_junk_dir_is_a_model_error_with_the_real_library(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "model"
    if kind != "missing":
        target.mkdir()
    if kind == "junk":
        (target / "notes.txt").write_text("not a model")

    with pytest.raises(ModelError) as info:
        VoskRecognizer(target)

    message = str(info.value)
    assert message.startswith(f"no Vosk model at {target};")
    assert "`voicehello models download` on a machine with internet access" in message
    assert "speech.vosk_model" in message
    assert "\n" not in message


def test_real_library_survives_a_junk_model_that_passes_validation(tmp_path: Path) -> None:
    """libvosk is given junk files with a model's names: the process must live and raise ModelError.

    Run in a child process so that an abort inside libvosk could not take the test run down.
    """
    junk = make_model(tmp_path / "junk-model")
    (junk / "am" / "final.mdl").write_bytes(os.urandom(4096))
    (junk / "conf" / "model.conf").write_text("--min-active=200\n")
    empty = tmp_path / "empty"
    empty.mkdir()
    script = textwrap.dedent(
        f"""
        import vosk
        from voicehello.errors import ModelError
        from voicehello.speech.vosk import VoskRecognizer
        vosk.SetLogLevel(-1)
        try:
            vosk.Model(model_path={str(empty)!r})
        except Exception as exc:
            print("library:", exc)
        try:
            VoskRecognizer(__import__("pathlib").Path({str(junk)!r}))
        except ModelError as exc:
            print("adapter:", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "library: Failed to create a model" in done.stdout
    assert f"adapter: cannot load the Vosk model at {junk}" in done.stdout


# --------------------------------------------------------------------------- grammar


def test_grammar_has_every_phrase_once_plus_unk(fake: FakeVosk, model_dir: Path) -> None:
    phrases = ["hey neighbor", "Borrow a  ladder", "borrow a ladder", "hey neighbor", " ", "[unk]"]

    rec = VoskRecognizer(model_dir, phrases)

    (grammar_rec,) = fake.recognizers
    assert grammar_rec.rate == 16_000
    assert grammar_rec.words is True  # per-word confidences
    assert json.loads(grammar_rec.grammar or "") == ["borrow a ladder", "hey neighbor", "[unk]"]
    assert rec.grammar == grammar_rec.grammar


def test_grammar_json_is_sorted_and_unique() -> None:
    assert json.loads(grammar_json(["b", "a", "B", "a"])) == ["a", "b", "[unk]"]


def test_phrases_with_words_missing_from_words_txt_are_dropped(
    fake: FakeVosk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model(tmp_path / "m", words=["hey", "neighbor", "borrow", "a", "ladder", "drill"])
    fake.vocabulary = set()  # words.txt wins over the model's own lookup when it exists

    with caplog.at_level(logging.WARNING, logger="voicehello.speech.vosk"):
        VoskRecognizer(model, ["borrow a ladder", "borrow a zither", "borrow a drill", "hey neighbour"])

    assert json.loads(fake.recognizers[0].grammar or "") == ["borrow a drill", "borrow a ladder", "[unk]"]
    assert "dropped 2 of 4 phrase(s)" in caplog.text
    assert "neighbour, zither" in caplog.text


def test_without_words_txt_the_models_own_vocabulary_is_used(
    fake: FakeVosk, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake.vocabulary = {"borrow", "a", "ladder"}

    with caplog.at_level(logging.WARNING, logger="voicehello.speech.vosk"):
        VoskRecognizer(model_dir, ["borrow a ladder", "borrow a theodolite"])

    assert json.loads(fake.recognizers[0].grammar or "") == ["borrow a ladder", "[unk]"]
    assert "dropped 1 of 2 phrase(s)" in caplog.text


def test_no_known_phrase_at_all_is_a_model_error(fake: FakeVosk, model_dir: Path) -> None:
    fake.vocabulary = {"something"}

    with pytest.raises(ModelError, match="none of the 2 grammar phrases"):
        VoskRecognizer(model_dir, ["borrow a ladder", "hey neighbor"])


def test_empty_phrase_list_is_a_catalog_error(fake: FakeVosk, model_dir: Path) -> None:
    with pytest.raises(CatalogError, match="no phrases"):
        VoskRecognizer(model_dir, ["", "  "])


def test_static_graph_model_ignores_the_grammar_with_a_warning(
    fake: FakeVosk, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    big = make_model(
        tmp_path / "big", ["am/final.mdl", "conf/model.conf", "conf/mfcc.conf", "graph/HCLG.fst"]
    )
    fake.finals["full"] = [result(("[unk]", 0.4), ("ladder", 0.9))]

    with caplog.at_level(logging.WARNING, logger="voicehello.speech.vosk"):
        rec = VoskRecognizer(big, ["borrow a ladder"], full_lm_fallback=True)

    assert "grammar is ignored" in caplog.text
    assert rec.grammar is None
    assert [r.kind for r in fake.recognizers] == ["full"]
    assert decode(rec)[0] == "ladder"  # no grammar: [unk] tokens are dropped, nothing is rejected
    assert rec.buffered_bytes == 0


# --------------------------------------------------------------------------- decoding


def test_in_grammar_utterance_text_and_mean_confidence(fake: FakeVosk, model_dir: Path) -> None:
    fake.finals["grammar"] = [result(("borrow", 0.5), ("a", 1.0), ("LADDER", 0.9))]
    rec = VoskRecognizer(model_dir, ["borrow a ladder"])

    text, confidence, seconds = decode(rec)

    assert text == "borrow a ladder"
    assert confidence == pytest.approx(0.8)
    assert seconds == pytest.approx(1.0)
    assert bytes(fake.recognizers[0].audio) == ONE_SECOND


def test_unk_means_out_of_domain_and_is_rejected(fake: FakeVosk, model_dir: Path) -> None:
    fake.finals["grammar"] = [result(("[unk]", 0.7), ("ladder", 0.95))]
    rec = VoskRecognizer(model_dir, ["borrow a ladder"])

    text, confidence, _ = decode(rec)
    assert (text, confidence) == ("", 0.0)
    assert fake.by_kind("full") == []  # no fallback unless asked for


def test_full_lm_fallback_decodes_the_same_audio_again(fake: FakeVosk, model_dir: Path) -> None:
    fake.finals["grammar"] = [result(("[unk]", 0.6))]
    fake.finals["full"] = [result(("Can", 0.9), ("I", 0.8), ("borrow", 0.7), ("a", 0.9), ("zither", 0.2))]
    rec = VoskRecognizer(model_dir, ["borrow a ladder"], full_lm_fallback=True)
    pcm = bytes(range(256)) * 125  # 1 s of distinct bytes

    text, confidence, seconds = decode(rec, pcm)

    assert text == "can i borrow a zither"
    assert confidence == pytest.approx(0.7)
    assert seconds == pytest.approx(1.0)
    (full,) = fake.by_kind("full")
    assert full.grammar is None
    assert full.words is True
    assert bytes(full.audio) == pcm  # exactly this utterance's audio
    assert rec.buffered_bytes == 0  # dropped once the utterance ended


def test_fallback_is_not_used_for_in_grammar_utterances(fake: FakeVosk, model_dir: Path) -> None:
    fake.finals["grammar"] = [result(("hey", 0.9), ("neighbor", 0.9))]
    rec = VoskRecognizer(model_dir, ["hey neighbor"], full_lm_fallback=True)

    assert decode(rec)[0] == "hey neighbor"
    assert fake.by_kind("full") == []


def test_fallback_buffer_is_bounded(fake: FakeVosk, model_dir: Path) -> None:
    fake.finals["grammar"] = [result(("[unk]", 0.5))]
    fake.finals["full"] = [result(("never", 1.0))]
    rec = VoskRecognizer(model_dir, ["hey neighbor"], full_lm_fallback=True, max_fallback_seconds=0.5)
    bound = 16_000  # 0.5 s of 16-bit samples
    rec.start()
    seen: list[int] = []
    for offset in range(0, len(ONE_SECOND), 3200):
        rec.feed(ONE_SECOND[offset : offset + 3200])
        seen.append(rec.buffered_bytes)

    transcript = rec.finish()

    assert max(seen) <= bound
    assert seen[-1] == 0  # over the bound: the buffer is dropped, not kept partially
    assert transcript.text == ""  # too long for a fallback: rejected like any [unk] utterance
    assert transcript.audio_seconds == pytest.approx(1.0)
    assert fake.by_kind("full") == []


def test_without_fallback_no_audio_is_kept(fake: FakeVosk, model_dir: Path) -> None:
    rec = VoskRecognizer(model_dir, ["hey neighbor"])
    rec.start()
    rec.feed(ONE_SECOND)

    assert rec.buffered_bytes == 0


def test_empty_result(fake: FakeVosk, model_dir: Path) -> None:
    rec = VoskRecognizer(model_dir, ["hey neighbor"])

    text, confidence, seconds = decode(rec, b"\x00\x00" * 8000)

    assert (text, confidence) == ("", 0.0)
    assert seconds == pytest.approx(0.5)


def test_engine_endpoint_segments_are_joined(fake: FakeVosk, model_dir: Path) -> None:
    fake.endpoint_after_bytes = 16_000
    fake.segments = [result(("hey", 0.9), ("neighbor", 0.7))]
    fake.finals["grammar"] = [result(("borrow", 0.8), ("a", 0.8), ("ladder", 0.8))]
    rec = VoskRecognizer(model_dir, ["hey neighbor", "borrow a ladder"])
    rec.start()
    rec.feed(ONE_SECOND)

    assert rec.endpoint_detected
    transcript = rec.finish()
    assert transcript.text == "hey neighbor borrow a ladder"
    assert transcript.confidence == pytest.approx(0.8)
    assert not rec.endpoint_detected  # reset for the next utterance


def test_unk_in_an_earlier_segment_rejects_the_utterance(fake: FakeVosk, model_dir: Path) -> None:
    fake.endpoint_after_bytes = 3200
    fake.segments = [result(("[unk]", 0.5))]
    fake.finals["grammar"] = [result(("hey", 0.9), ("neighbor", 0.9))]
    rec = VoskRecognizer(model_dir, ["hey neighbor"])

    assert decode(rec)[0] == ""


def test_start_discards_the_previous_utterance(fake: FakeVosk, model_dir: Path) -> None:
    rec = VoskRecognizer(model_dir, ["hey neighbor"])
    rec.start()
    rec.feed(ONE_SECOND)
    rec.start()
    rec.feed(ONE_SECOND[:16_000])

    assert rec.finish().audio_seconds == pytest.approx(0.5)
    assert fake.recognizers[0].resets == 2


def test_odd_sized_chunks_are_carried_to_whole_samples(fake: FakeVosk, model_dir: Path) -> None:
    rec = VoskRecognizer(model_dir)
    rec.start()
    rec.feed(b"\x01\x02\x03")
    rec.feed(b"\x04")

    assert bytes(fake.recognizers[0].audio) == b"\x01\x02\x03\x04"
    assert rec.finish().audio_seconds == pytest.approx(4 / 32_000)


def test_decoder_failure_is_a_recognizer_error(fake: FakeVosk, model_dir: Path) -> None:
    fake.fail_accept = True
    rec = VoskRecognizer(model_dir)
    rec.start()

    with pytest.raises(RecognizerError, match="Vosk failed to decode audio"):
        rec.feed(ONE_SECOND)


# --------------------------------------------------------------------------- result parsing


@pytest.mark.parametrize(
    ("doc", "text", "words", "confidence"),
    [
        ('{"text": ""}', "", 0, 0.0),
        ('{"text": "Hey  Neighbor"}', "hey neighbor", 0, 0.0),
        (result(("hey", 1.0), ("neighbor", 0.5)), "hey neighbor", 2, 0.75),
    ],
)
def test_parse_result(doc: str, text: str, words: int, confidence: float) -> None:
    parsed = parse_result(doc)

    assert parsed.text == text
    assert len(parsed.words) == words
    assert parsed.confidence == pytest.approx(confidence)
    assert not parsed.has_unk


def test_parse_result_detects_unk_and_keeps_timing() -> None:
    parsed = parse_result(result(("[unk]", 0.3), ("ladder", 0.9)))

    assert parsed.has_unk
    assert parsed.words[1].start == pytest.approx(0.3)


@pytest.mark.parametrize(
    "doc", ["not json", "[1, 2]", '{"text": 3}', '{"text": "a", "result": [{"conf": 1}]}']
)
def test_parse_result_rejects_malformed_documents(doc: str) -> None:
    with pytest.raises(RecognizerError):
        parse_result(doc)


def test_merge_results_skips_empty_segments() -> None:
    merged = merge_results([parse_result(EMPTY), parse_result(result(("hey", 1.0))), parse_result(EMPTY)])

    assert merged.text == "hey"
    assert len(merged.words) == 1


def test_filter_is_pure_and_reports_unknown_words() -> None:
    known: Callable[[str], bool] = {"a", "b"}.__contains__

    assert adapter.filter_phrases(["a b", "a c", "B  A", "d"], known) == (["a b", "b a"], ["c", "d"])


def test_open_slot_phrases_reach_the_grammar_and_unknown_words_are_dropped(
    fake: FakeVosk, model_dir: Path, catalog: Catalog
) -> None:
    """The engines' Vosk phrase list (catalog sentences + open-slot phrases of the broad
    vocabulary), through the adapter into the grammar the library is given."""
    from voicehello.speech.vocabulary import vosk_phrases

    phrases = vosk_phrases(catalog, size=40)
    added = phrases[len(catalog.sentences()) :]
    open_words = {word for phrase in added for word in phrase.split()} - catalog.words()
    dropped = sorted(open_words)[:5]
    fake.vocabulary = (catalog.words() | open_words) - set(dropped)

    VoskRecognizer(model_dir, phrases)

    grammar = json.loads(fake.by_kind("grammar")[0].grammar or "[]")
    kept = [phrase for phrase in added if not set(phrase.split()) & set(dropped)]
    assert kept
    assert set(kept) <= set(grammar)
    assert not any(set(phrase.split()) & set(dropped) for phrase in grammar)
