"""The statistical half of the text parser, in the manner of Snips NLU (Coucke et al. 2018).

Trained from the catalog on first use (or with ``voicehello catalog --train``) and cached by the
catalog's hash:

* :mod:`.features`: gazetteer spans (catalog values and times), intent and token features;
* :mod:`.data`: training sentences generated from the templates, with known and unknown slot
  values, and "none" sentences (everyday talk, negations, narration, questions to the room);
* :mod:`.model`: a logistic-regression intent classifier (scikit-learn at training time, plain
  numpy when parsing) and one CRF slot tagger per intent (python-crfsuite);
* :mod:`.cache`: where the trained model lives and when it is retrained.

Nothing users say is trained on or stored: the training data comes from the catalog and the
files under ``voicehello/intents/data/`` only.
"""
