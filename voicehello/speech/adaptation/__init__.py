"""Speaker and microphone adaptation of the PocketSphinx model (``voicehello enroll``).

:mod:`.prompts` chooses the sentences, :mod:`.enroll` records and adapts, :mod:`.sphinxtrain`
runs Debian's SphinxTrain tools, :mod:`.store` checks, loads and saves the adaptation file.
"""
