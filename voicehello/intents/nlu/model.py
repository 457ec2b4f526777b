"""The trained model: an intent classifier and one CRF slot tagger per intent with slots.

Training uses scikit-learn (``LogisticRegression``) and python-crfsuite. Parsing needs neither
scikit-learn nor its import time: the classifier is stored as its weight matrix and applied with
numpy (the same ``softmax(W x + b)`` that scikit-learn computes).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycrfsuite

from voicehello.errors import CatalogError
from voicehello.intents import templates
from voicehello.intents.catalog import Catalog
from voicehello.intents.nlu.data import NONE, Example, phrasings, training_examples
from voicehello.intents.nlu.features import Gazetteer, Span, intent_features, token_features

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bumped whenever features or the stored layout change (old caches are then retrained)."""

INTENT_FILE = "intent.npz"
META_FILE = "meta.json"
CRF_PATTERN = "slots-{intent}.crfsuite"
REGULARIZATION_C = 16.0
"""Inverse L2 strength of the intent classifier, chosen by 3-fold cross-validation on the generated
training data with folds grouped by sentence frame, so a held-out fold holds phrasings the model
never saw (log-loss: C=1 0.082, C=4 0.064, C=16 0.057, C=64 0.058)."""
CRF_ITERATIONS = 60


@dataclass(frozen=True)
class Tagged:
    """A slot span found by the tagger: ``words[start:end]`` fill ``slot``."""

    slot: str
    start: int
    end: int


def frame_words(catalog: Catalog) -> frozenset[str]:
    """The literal words of the templates and of the training phrasings (``data/phrasings.yaml``)."""
    extra = {word for patterns in phrasings(catalog).values() for p in patterns for word in p.split()}
    return template_words(catalog) | frozenset(word for word in extra if not word.startswith("{"))


def template_words(catalog: Catalog) -> frozenset[str]:
    """Every literal word of the intents' sentence templates (not of the value lists)."""
    return frozenset(
        word for intent in catalog.intents.values() for tree in intent.trees for word in templates.words(tree)
    )


class NluModel:
    """Intent probabilities and slot spans for one catalog."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        labels: list[str],
        features: list[str],
        weights: np.ndarray,
        bias: np.ndarray,
        taggers: dict[str, pycrfsuite.Tagger],
    ) -> None:
        self.catalog = catalog
        self.labels = labels
        self.index = {name: position for position, name in enumerate(features)}
        self.weights = weights
        self.bias = bias
        self.taggers = taggers
        self.gazetteer = Gazetteer(catalog)
        self.template_words = template_words(catalog)
        self.frame_words = frame_words(catalog)

    def intent_scores(self, words: Sequence[str], spans: Sequence[Span]) -> dict[str, float]:
        """Intent (or ``none``) -> probability."""
        columns = sorted(
            {self.index[f] for f in intent_features(words, spans, self.frame_words) if f in self.index}
        )
        logits = self.bias + (self.weights[:, columns].sum(axis=1) if columns else 0.0)
        logits = logits - logits.max()
        probabilities = np.exp(logits)
        probabilities /= probabilities.sum()
        return {label: float(p) for label, p in zip(self.labels, probabilities, strict=True)}

    def tag(self, intent: str, words: Sequence[str], spans: Sequence[Span]) -> list[Tagged]:
        """The slot spans of ``intent`` in ``words`` (empty when the intent has no slots)."""
        tagger = self.taggers.get(intent)
        if tagger is None or not words:
            return []
        labels = tagger.tag(token_features(words, spans, self.template_words))
        found: list[Tagged] = []
        for position, label in enumerate(labels):
            kind, _, slot = label.partition("-")
            if kind == "B" or (
                kind == "I" and (not found or found[-1].slot != slot or found[-1].end != position)
            ):
                found.append(Tagged(slot, position, position + 1))
            elif kind == "I":
                found[-1] = Tagged(slot, found[-1].start, position + 1)
        return found

    # ------------------------------------------------------------------ storage

    def save(self, directory: Path, key: str) -> None:
        """Write the classifier and the metadata (the taggers were written while training)."""
        np.savez(directory / INTENT_FILE, weights=self.weights, bias=self.bias)
        meta = {
            "format": FORMAT_VERSION,
            "key": key,
            "labels": self.labels,
            "features": sorted(self.index, key=self.index.__getitem__),
            "taggers": sorted(self.taggers),
        }
        (directory / META_FILE).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, catalog: Catalog, directory: Path, key: str) -> NluModel:
        """Read a model written by :meth:`save`; :class:`CatalogError` when it is unusable."""
        try:
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            if meta.get("format") != FORMAT_VERSION or meta.get("key") != key:
                raise CatalogError(f"model in {directory} is for another catalog or format")
            with np.load(directory / INTENT_FILE) as stored:
                weights, bias = stored["weights"], stored["bias"]
            labels, features = list(meta["labels"]), list(meta["features"])
            if weights.shape != (len(labels), len(features)) or bias.shape != (len(labels),):
                raise CatalogError(f"model in {directory} has inconsistent shapes")
            taggers = {}
            for intent in meta["taggers"]:
                tagger = pycrfsuite.Tagger()
                tagger.open(str(directory / CRF_PATTERN.format(intent=intent)))
                taggers[intent] = tagger
        except CatalogError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CatalogError(f"model in {directory} is unreadable: {exc}") from exc
        return cls(catalog, labels=labels, features=features, weights=weights, bias=bias, taggers=taggers)


def train(catalog: Catalog, directory: Path, key: str, examples: list[Example] | None = None) -> NluModel:
    """Train on data generated from ``catalog`` and save the model into ``directory``."""
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    examples = examples if examples is not None else training_examples(catalog)
    gazetteer = Gazetteer(catalog)
    words_of = template_words(catalog)
    known = frame_words(catalog)
    spans = [gazetteer.spans(example.words) for example in examples]
    index: dict[str, int] = {}
    rows: list[int] = []
    columns: list[int] = []
    for row, (example, found) in enumerate(zip(examples, spans, strict=True)):
        for feature in set(intent_features(example.words, found, known)):
            rows.append(row)
            columns.append(index.setdefault(feature, len(index)))
    matrix = csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, columns)), shape=(len(examples), len(index))
    )
    labels = sorted({example.intent for example in examples})
    if NONE not in labels:
        raise CatalogError("training needs sentences of the none class")
    targets = np.array([labels.index(example.intent) for example in examples])
    classifier = LogisticRegression(C=REGULARIZATION_C, max_iter=300, class_weight="balanced")
    classifier.fit(matrix, targets)
    weights = classifier.coef_.astype(np.float32)
    bias = classifier.intercept_.astype(np.float32)
    taggers = _train_taggers(catalog, examples, spans, words_of, directory)
    features = sorted(index, key=index.__getitem__)
    model = NluModel(catalog, labels=labels, features=features, weights=weights, bias=bias, taggers=taggers)
    model.save(directory, key)
    log.info(
        "trained the intent model on %d sentences (%d features) in %.1f s",
        len(examples),
        len(features),
        time.perf_counter() - started,
    )
    return model


def _train_taggers(
    catalog: Catalog,
    examples: list[Example],
    spans: list[list[Span]],
    words_of: frozenset[str],
    directory: Path,
) -> dict[str, pycrfsuite.Tagger]:
    taggers: dict[str, pycrfsuite.Tagger] = {}
    for intent in catalog.intents.values():
        if not intent.slots:
            continue
        trainer = pycrfsuite.Trainer(verbose=False)
        for example, found in zip(examples, spans, strict=True):
            if example.intent == intent.name:
                trainer.append(
                    token_features(example.words, _dropout(found, example), words_of), list(example.tags)
                )
        trainer.set_params({"c1": 0.05, "c2": 0.01, "max_iterations": CRF_ITERATIONS})
        path = directory / CRF_PATTERN.format(intent=intent.name)
        trainer.train(str(path))
        tagger = pycrfsuite.Tagger()
        tagger.open(str(path))
        taggers[intent.name] = tagger
    return taggers


def _dropout(spans: list[Span], example: Example) -> list[Span]:
    """Hide the gazetteer from a third of the sentences (chosen by a hash of the words, so
    training stays deterministic) so the tagger also learns slots from context alone."""
    if hash_words(example.words) % 3 == 0:
        return []
    return spans


def hash_words(words: Sequence[str]) -> int:
    """A stable small hash of a word sequence (Python's own ``hash`` is salted per process)."""
    total = 0
    for word in words:
        for char in word:
            total = (total * 31 + ord(char)) % 1_000_003
    return total
