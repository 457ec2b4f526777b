"""Choosing and building the speech engine the settings ask for."""

from __future__ import annotations

import logging
from pathlib import Path

from voicehello.config import SpeechSettings
from voicehello.errors import ModelError
from voicehello.intents.catalog import Catalog
from voicehello.speech import models
from voicehello.speech.recognizer import Recognizer

log = logging.getLogger(__name__)


def vosk_model_dir(settings: SpeechSettings) -> Path | None:
    """The Vosk model to use: the configured one, else the first under ``models_dir``."""
    if settings.vosk_model is not None:
        return settings.vosk_model
    return models.find_vosk_model(settings.models_dir)


def choose_engine(settings: SpeechSettings) -> str:
    """``auto`` means Vosk when a Vosk model is installed, else PocketSphinx."""
    if settings.engine != "auto":
        return settings.engine
    model = vosk_model_dir(settings)
    return "vosk" if model is not None and models.is_vosk_model(model) else "pocketsphinx"


def create_recognizer(settings: SpeechSettings, catalog: Catalog) -> Recognizer:
    """Build the configured recognizer with the catalog's grammar."""
    engine = choose_engine(settings)
    log.info("speech engine: %s", engine)
    if engine == "vosk":
        from voicehello.speech.vosk import VoskRecognizer

        model = vosk_model_dir(settings)
        if model is None:
            raise ModelError(f"no Vosk model under {settings.models_dir}; {models.HOW_TO_GET_ONE}")
        from voicehello.speech.vocabulary import vosk_phrases

        return VoskRecognizer(model, vosk_phrases(catalog), full_lm_fallback=settings.vosk_full_lm_fallback)
    from voicehello.speech.grammar import compile_catalog
    from voicehello.speech.lm import catalog_model
    from voicehello.speech.pocketsphinx import PocketSphinxRecognizer, dictionary_path

    words = catalog.words()
    if settings.pocketsphinx_search == "grammar":
        return PocketSphinxRecognizer(
            words,
            graph=compile_catalog(catalog),
            adaptation=settings.adaptation,
            streaming=settings.streaming,
        )
    language = catalog_model(catalog, dictionary=dictionary_path())
    return PocketSphinxRecognizer(
        words,
        arpa=language.arpa,
        classes=language.classes,
        adaptation=settings.adaptation,
        streaming=settings.streaming,
    )
