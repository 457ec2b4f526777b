"""Model layout checks, discovery and downloads against a real HTTP server on 127.0.0.1.

The archives are small zips built here with the layout of a Vosk model (fake file contents):
they test downloading, verifying and unpacking, not recognition.
"""

from __future__ import annotations

import functools
import hashlib
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from voicehello.errors import ModelDownloadError, ModelError
from voicehello.speech import models
from voicehello.speech.models import (
    KNOWN_MODELS,
    KnownModel,
    check_model,
    download_model,
    find_vosk_model,
    is_vosk_model,
    list_installed,
    model_layout,
)

V2_FILES = [
    "am/final.mdl",
    "conf/model.conf",
    "conf/mfcc.conf",
    "graph/HCLr.fst",
    "graph/Gr.fst",
    "graph/disambig_tid.int",
    "ivector/final.ie",
    "README",
]
V1_FILES = ["final.mdl", "mfcc.conf", "HCLr.fst", "Gr.fst", "disambig_tid.int"]


def make_model(root: Path, files: list[str] = V2_FILES) -> Path:
    """A directory with the file names of a Vosk model and fake contents."""
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"fake " + name.encode())
    return root


def make_zip(path: Path, members: dict[str, bytes]) -> tuple[Path, str]:
    """Write a zip with ``members``; return it and its SHA-256."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def model_members(top: str = "vosk-model-test") -> dict[str, bytes]:
    prefix = f"{top}/" if top else ""
    return {f"{prefix}{name}": b"fake " + name.encode() for name in V2_FILES}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log on stderr."""


@pytest.fixture(scope="module")
def server_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served")


@pytest.fixture(scope="module")
def base_url(server_dir: Path) -> Iterator[str]:
    """A real HTTP server on a free 127.0.0.1 port serving ``server_dir``."""
    handler = functools.partial(_QuietHandler, directory=str(server_dir))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests to 127.0.0.1 must not go through a proxy from the environment."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    path = tmp_path / "models"
    path.mkdir()
    return path


def served_zip(server_dir: Path, name: str, members: dict[str, bytes]) -> str:
    """Put a zip in the served directory; return its SHA-256."""
    return make_zip(server_dir / name, members)[1]


def leftovers(models_dir: Path) -> list[str]:
    return sorted(p.name for p in models_dir.iterdir())


# --------------------------------------------------------------------------- download


def test_download_verifies_unpacks_and_installs(server_dir: Path, base_url: str, models_dir: Path) -> None:
    digest = served_zip(server_dir, "vosk-model-test.zip", model_members())

    path = download_model(f"{base_url}/vosk-model-test.zip", models_dir, digest, progress=False)

    assert path == models_dir / "vosk-model-test"
    assert is_vosk_model(path)
    assert (path / "am" / "final.mdl").read_bytes() == b"fake am/final.mdl"
    assert leftovers(models_dir) == ["vosk-model-test"]  # no temp file or directory left


def test_download_accepts_uppercase_digest_and_shows_progress(
    server_dir: Path, base_url: str, models_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = served_zip(server_dir, "progress.zip", model_members("vosk-model-progress"))

    download_model(f"{base_url}/progress.zip", models_dir, digest.upper(), progress=True)

    assert "progress.zip" in capsys.readouterr().err  # the tqdm bar
    assert is_vosk_model(models_dir / "vosk-model-progress")


def test_archive_without_top_directory_is_named_after_the_archive(
    server_dir: Path, base_url: str, models_dir: Path
) -> None:
    digest = served_zip(server_dir, "vosk-model-flat.zip", model_members(top=""))

    path = download_model(f"{base_url}/vosk-model-flat.zip", models_dir, digest, progress=False)

    assert path == models_dir / "vosk-model-flat"
    assert is_vosk_model(path)


def test_wrong_sha256_is_refused_and_nothing_is_left(
    server_dir: Path, base_url: str, models_dir: Path
) -> None:
    served_zip(server_dir, "tampered.zip", model_members("vosk-model-tampered"))

    with pytest.raises(ModelDownloadError, match="checksum mismatch"):
        download_model(f"{base_url}/tampered.zip", models_dir, "0" * 64, progress=False)

    assert leftovers(models_dir) == []


@pytest.mark.parametrize("evil", ["../evil", "vosk-model-x/../../evil", "/tmp/evil-abs", "C:/evil"])
def test_member_escaping_the_directory_is_refused(
    server_dir: Path, base_url: str, models_dir: Path, evil: str
) -> None:
    members = {**model_members("vosk-model-x"), evil: b"owned"}
    digest = served_zip(server_dir, "evil.zip", members)

    with pytest.raises(ModelDownloadError, match="refusing archive member"):
        download_model(f"{base_url}/evil.zip", models_dir, digest, progress=False)

    assert leftovers(models_dir) == []
    assert not (models_dir.parent / "evil").exists()


def test_archive_without_a_model_is_refused(server_dir: Path, base_url: str, models_dir: Path) -> None:
    digest = served_zip(server_dir, "junk.zip", {"junk/readme.txt": b"not a model"})

    with pytest.raises(ModelDownloadError, match="holds no Vosk model"):
        download_model(f"{base_url}/junk.zip", models_dir, digest, progress=False)

    assert leftovers(models_dir) == []


def test_file_that_is_not_a_zip_is_refused(server_dir: Path, base_url: str, models_dir: Path) -> None:
    (server_dir / "page.zip").write_bytes(b"<html>not found</html>")
    digest = hashlib.sha256(b"<html>not found</html>").hexdigest()

    with pytest.raises(ModelDownloadError, match="not a zip archive"):
        download_model(f"{base_url}/page.zip", models_dir, digest, progress=False)

    assert leftovers(models_dir) == []


def test_server_down_is_a_one_line_download_error(models_dir: Path) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(ModelDownloadError, match="cannot download") as info:
        download_model(f"http://127.0.0.1:{port}/m.zip", models_dir, "a" * 64, progress=False)

    assert "\n" not in str(info.value)
    assert leftovers(models_dir) == []


def test_http_error_is_a_download_error(base_url: str, models_dir: Path) -> None:
    with pytest.raises(ModelDownloadError, match="HTTP 404"):
        download_model(f"{base_url}/missing.zip", models_dir, "a" * 64, progress=False)

    assert leftovers(models_dir) == []


def test_malformed_sha256_is_refused_before_downloading(models_dir: Path) -> None:
    with pytest.raises(ModelDownloadError, match="64 hex digits"):
        download_model("http://127.0.0.1:9/m.zip", models_dir, "abc", progress=False)


def test_existing_target_is_not_overwritten(server_dir: Path, base_url: str, models_dir: Path) -> None:
    digest = served_zip(server_dir, "again.zip", model_members("vosk-model-again"))
    (models_dir / "vosk-model-again").mkdir()

    with pytest.raises(ModelDownloadError, match="already exists"):
        download_model(f"{base_url}/again.zip", models_dir, digest, progress=False)

    assert leftovers(models_dir) == ["vosk-model-again"]


def test_local_zip_path_installs_offline(tmp_path: Path, models_dir: Path) -> None:
    archive, digest = make_zip(tmp_path / "usb-copy.zip", model_members("vosk-model-usb"))

    path = download_model(str(archive), models_dir, digest, progress=False)

    assert path == models_dir / "vosk-model-usb"
    assert is_vosk_model(path)


def test_unknown_name_is_a_one_line_error(models_dir: Path) -> None:
    with pytest.raises(ModelDownloadError, match="unknown model 'no-such-model'"):
        download_model("no-such-model", models_dir, None, progress=False)


# --------------------------------------------------------------------------- the catalog


@pytest.fixture
def catalog(monkeypatch: pytest.MonkeyPatch) -> dict[str, KnownModel]:
    """An isolated copy of KNOWN_MODELS that tests may point at the local server."""
    copy = dict(KNOWN_MODELS)
    monkeypatch.setattr(models, "KNOWN_MODELS", copy)
    return copy


def test_catalog_pins_the_small_english_model() -> None:
    small = KNOWN_MODELS["vosk-model-small-en-us-0.15"]

    assert small.sha256 == "30f26242c4eb449f948e42cb302dd7a686cb29a3423a8367f99ff41780942498"
    assert small.size == 41_205_931
    assert small.url.endswith("/vosk-model-small-en-us-0.15.zip")
    assert all(m.sha256 is None or len(m.sha256) == 64 for m in KNOWN_MODELS.values())


def test_known_name_uses_the_pinned_digest_and_size(
    server_dir: Path, base_url: str, models_dir: Path, catalog: dict[str, KnownModel]
) -> None:
    archive, digest = make_zip(server_dir / "vosk-model-known.zip", model_members("vosk-model-known"))
    catalog["vosk-model-known"] = KnownModel(
        "vosk-model-known", f"{base_url}/vosk-model-known.zip", digest, archive.stat().st_size, "test"
    )

    path = download_model("vosk-model-known", models_dir, None, progress=False)

    assert path == models_dir / "vosk-model-known"
    assert is_vosk_model(path)


def test_installed_known_model_is_not_downloaded_again(
    models_dir: Path, catalog: dict[str, KnownModel], monkeypatch: pytest.MonkeyPatch
) -> None:
    catalog["vosk-model-here"] = KnownModel(
        "vosk-model-here", "http://127.0.0.1:9/x.zip", "a" * 64, None, "t"
    )
    make_model(models_dir / "vosk-model-here")

    def no_network(*args: object, **kwargs: object) -> str:
        raise AssertionError("must not download")

    monkeypatch.setattr(models, "fetch", no_network)

    assert (
        download_model("vosk-model-here", models_dir, None, progress=False) == models_dir / "vosk-model-here"
    )


def test_size_mismatch_with_catalog_is_refused(
    server_dir: Path, base_url: str, models_dir: Path, catalog: dict[str, KnownModel]
) -> None:
    _, digest = make_zip(server_dir / "vosk-model-sized.zip", model_members("vosk-model-sized"))
    catalog["vosk-model-sized"] = KnownModel(
        "vosk-model-sized", f"{base_url}/vosk-model-sized.zip", digest, 12345, "test"
    )

    with pytest.raises(ModelDownloadError, match="expected 12345"):
        download_model("vosk-model-sized", models_dir, None, progress=False)

    assert leftovers(models_dir) == []


def test_no_known_digest_requires_sha256_or_explicit_opt_out(
    server_dir: Path, base_url: str, models_dir: Path, catalog: dict[str, KnownModel]
) -> None:
    make_zip(server_dir / "vosk-model-unpinned.zip", model_members("vosk-model-unpinned"))
    catalog["vosk-model-unpinned"] = KnownModel(
        "vosk-model-unpinned", f"{base_url}/vosk-model-unpinned.zip", None, None, "test"
    )

    with pytest.raises(ModelDownloadError, match="--sha256"):
        download_model("vosk-model-unpinned", models_dir, None, progress=False)
    assert leftovers(models_dir) == []

    path = download_model("vosk-model-unpinned", models_dir, None, progress=False, allow_unverified=True)
    assert is_vosk_model(path)


def test_url_without_digest_is_refused(base_url: str, models_dir: Path) -> None:
    with pytest.raises(ModelDownloadError, match="no trusted SHA-256"):
        download_model(f"{base_url}/anything.zip", models_dir, None, progress=False)


# --------------------------------------------------------------------------- layout and discovery


def test_find_vosk_model_picks_the_first_complete_model_and_ignores_junk(models_dir: Path) -> None:
    make_model(models_dir / ".extract-abc123")  # a download in progress
    (models_dir / "a-junk").mkdir()
    (models_dir / "a-junk" / "notes.txt").write_text("hello")
    make_model(models_dir / "b-incomplete", ["am/final.mdl", "conf/model.conf", "conf/mfcc.conf"])
    make_model(models_dir / "d-model")
    make_model(models_dir / "c-model")
    (models_dir / "README.md").write_text("readme")
    (models_dir / "aa.zip").write_bytes(b"zip")

    assert find_vosk_model(models_dir) == models_dir / "c-model"
    assert [m.name for m in list_installed(models_dir)] == ["c-model", "d-model"]


def test_find_vosk_model_without_models(tmp_path: Path) -> None:
    assert find_vosk_model(tmp_path / "missing") is None
    assert find_vosk_model(tmp_path) is None
    assert list_installed(tmp_path / "missing") == []


def test_models_dir_that_is_itself_a_model(tmp_path: Path) -> None:
    make_model(tmp_path)
    assert find_vosk_model(tmp_path) == tmp_path


def test_old_flat_layout_is_a_model(tmp_path: Path) -> None:
    layout = model_layout(make_model(tmp_path / "old", V1_FILES))

    assert layout is not None
    assert layout.version == "v1"
    assert layout.graph_dir == tmp_path / "old"
    assert layout.runtime_grammar


def test_static_graph_model_has_no_runtime_grammar(tmp_path: Path) -> None:
    files = ["am/final.mdl", "conf/model.conf", "conf/mfcc.conf", "graph/HCLG.fst", "graph/words.txt"]
    layout = model_layout(make_model(tmp_path / "big", files))

    assert layout is not None
    assert layout.static_graph
    assert not layout.runtime_grammar
    assert layout.words_file == tmp_path / "big" / "graph" / "words.txt"


def test_list_installed_reports_grammar_support_and_size(models_dir: Path) -> None:
    make_model(models_dir / "m")

    (installed,) = list_installed(models_dir)

    assert installed.runtime_grammar
    assert installed.size_bytes == sum(len(b"fake " + n.encode()) for n in V2_FILES)


def test_check_model_messages_say_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(
        ModelError, match=r"^no Vosk model at .*voicehello models download.*speech\.vosk_model"
    ):
        check_model(tmp_path / "nowhere")

    make_model(tmp_path / "half", ["am/final.mdl", "conf/model.conf", "conf/mfcc.conf"])
    with pytest.raises(ModelError, match=r"incomplete Vosk model .*missing graph/HCLr\.fst"):
        check_model(tmp_path / "half")

    make_model(tmp_path / "parent" / "vosk-model-x")
    with pytest.raises(ModelError, match=r"there is one at .*vosk-model-x"):
        check_model(tmp_path / "parent")
