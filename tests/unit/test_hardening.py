"""The hardened broker's files: certificates, modes, ACL and the device's settings snippet."""

from __future__ import annotations

import ipaddress
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from voicehello.bus import hardening, mqtt
from voicehello.config import load_settings
from voicehello.errors import VoicehelloError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


@pytest.fixture
def files(tmp_path: Path) -> hardening.BrokerFiles:
    """A broker initialised for ``kitchen.local`` and ``192.168.1.20``."""
    return hardening.init_broker(tmp_path / "broker", ["kitchen.local", "192.168.1.20"], port=8884)


def test_init_writes_private_files_and_a_tls_only_config(files: hardening.BrokerFiles) -> None:
    assert _mode(files.directory) == 0o700
    for key in (files.ca_key, files.server_key, files.password_file, files.acl_file, files.conf):
        assert _mode(key) == 0o600, key
    assert files.password_file.read_text() == ""
    conf = files.conf.read_text().splitlines()
    for line in (
        f"cafile {files.ca_cert}",
        f"certfile {files.server_cert}",
        f"keyfile {files.server_key}",
        "tls_version tlsv1.2",
        "allow_anonymous false",
        f"password_file {files.password_file}",
        f"acl_file {files.acl_file}",
        f"persistence_location {files.directory}/",
        "persistent_client_expiration 1h",
        f"pid_file {files.directory / hardening.PID_FILE}",
    ):
        assert line in conf
    assert "allow_anonymous true" not in conf


def test_the_ca_key_is_kept_out_of_the_brokers_directory(files: hardening.BrokerFiles) -> None:
    assert files.ca_key == files.directory.with_name("broker-ca") / "ca.key"
    assert files.ca_key.is_file()
    assert _mode(files.ca_key.parent) == 0o700
    assert not (files.directory / "ca.key").exists()
    assert files.ca_key.stat().st_uid == os.geteuid(), "the CA key is not given to the broker's user"


def test_the_config_bounds_what_a_device_may_cost(files: hardening.BrokerFiles) -> None:
    """Every limit on its own line, with the numbers documented in hardening.py."""
    conf = files.conf.read_text().splitlines()
    for line in (
        "max_packet_size 65536",
        "max_queued_messages 1000",
        "max_queued_bytes 1048576",
        "max_inflight_messages 20",
        "autosave_on_changes true",
        "autosave_interval 1",
        "check_retain_source true",
    ):
        assert line in conf, line
    assert hardening.MAX_PACKET_BYTES == mqtt.MAX_PACKET_BYTES, "the broker's limit is the client's"
    assert not [line for line in conf if line.startswith("message_size_limit")]


def test_each_host_gets_a_listener_with_the_client_id_bound_to_the_user(tmp_path: Path) -> None:
    """One listener per host (duplicates by address dropped), each with TLS and
    use_username_as_clientid after it: before the first listener it would open port 1883."""
    files = hardening.init_broker(tmp_path / "b", ["127.0.0.1", "localhost", "kitchen.local"], port=8884)
    conf = files.conf.read_text().splitlines()
    listeners = [line for line in conf if line.startswith("listener")]
    assert listeners == ["listener 8884 127.0.0.1", "listener 8884 kitchen.local"]  # localhost is 127.0.0.1
    for index in (conf.index(listener) for listener in listeners):
        assert conf[index + 1] == "use_username_as_clientid true"
        assert f"keyfile {files.server_key}" in conf[index : index + 6]
    assert conf.index("use_username_as_clientid true") > conf.index(listeners[0])
    alone = hardening.init_broker(tmp_path / "alone", [], port=8884).conf.read_text().splitlines()
    assert [line for line in alone if line.startswith("listener")] == ["listener 8884 127.0.0.1"]


def test_the_broker_runs_as_mosquitto_when_root_and_it_can_reach_the_directory(tmp_path: Path) -> None:
    home = tmp_path / "closed"  # pytest's directories are closed to other users
    files = hardening.init_broker(home / "broker", [])
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert f"user {me}" in files.conf.read_text().splitlines(), "fell back to the current user"
    if os.geteuid() != 0:
        return
    open_home = Path(tempfile.mkdtemp(prefix="vh-unit-"))
    try:
        os.chmod(open_home, 0o711)
        files = hardening.init_broker(open_home / "broker", [])
        assert "user mosquitto" in files.conf.read_text().splitlines()
        owner = pwd.getpwnam("mosquitto")
        for path in (files.directory, *files.directory.iterdir()):
            assert path.stat().st_uid == owner.pw_uid, path
        assert files.ca_key.stat().st_uid == 0
        hardening.add_device(files.directory, "maya", ["street"])  # written by root, handed over
        for name in (hardening.PASSWORD_FILE, hardening.ACL_FILE, hardening.DEVICES_FILE):
            assert (files.directory / name).stat().st_uid == owner.pw_uid, name
    finally:
        shutil.rmtree(open_home)


def test_server_certificate_names_every_host_and_is_signed_by_the_ca(files: hardening.BrokerFiles) -> None:
    ca, server = _cert(files.ca_cert), _cert(files.server_cert)
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ca.not_valid_after_utc - ca.not_valid_before_utc).days >= 3650
    server.verify_directly_issued_by(ca)  # raises if not signed by the CA
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(san.get_values_for_type(x509.DNSName)) == {"kitchen.local", "localhost"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("192.168.1.20"),
        ipaddress.ip_address("127.0.0.1"),
    }
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert not server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_init_refuses_a_directory_with_a_broker_unless_forced(files: hardening.BrokerFiles) -> None:
    before = files.ca_cert.read_bytes()
    with pytest.raises(VoicehelloError, match="already holds a broker") as caught:
        hardening.init_broker(files.directory, [])
    assert "\n" not in str(caught.value)
    assert files.ca_cert.read_bytes() == before
    hardening.init_broker(files.directory, [], force=True)
    assert files.ca_cert.read_bytes() != before


def test_acl_lets_devices_write_as_themselves_and_read_granted_pods(files: hardening.BrokerFiles) -> None:
    creds = hardening.add_device(files.directory, "maya", ["street", "garden"])
    hardening.add_device(files.directory, "bob", [])
    hardening.grant(files.directory, "bob", "garden")
    assert creds.pods == ("street", "garden")
    assert len(creds.password) >= 24
    acl = files.acl_file.read_text()
    assert not [line for line in acl.splitlines() if line.startswith("pattern")], "no write to any pod id"
    assert "user maya\ntopic read voicehello/v1/garden/#\ntopic read voicehello/v1/street/#\n" in acl
    for pod in ("garden", "street"):
        for kind in ("msg", "key", "status"):
            assert f"topic write voicehello/v1/{pod}/maya/{kind}\n" in acl
    assert "user bob\ntopic read voicehello/v1/garden/#\n" in acl, "no pod unless granted"
    assert "topic write voicehello/v1/street/bob/" not in acl
    passwd = files.password_file.read_text()
    assert passwd.startswith("bob:") or "\nbob:" in passwd
    assert creds.password not in passwd  # only a hash
    assert _mode(files.acl_file) == 0o600

    hardening.add_device(files.directory, "lee", [hardening.ALL_PODS])
    acl = files.acl_file.read_text()
    assert "user lee\ntopic read voicehello/v1/+/#\n" in acl, "reads every pod..."
    assert "voicehello/v1/+/lee" not in acl, "...but writes to none it was not granted by id"
    hardening.grant(files.directory, "lee", "garden")
    assert "topic write voicehello/v1/garden/lee/msg" in files.acl_file.read_text()

    hardening.revoke(files.directory, "maya")
    assert "maya" not in files.acl_file.read_text()
    assert "maya:" not in files.password_file.read_text()
    assert hardening.load_devices(files.directory) == {
        "bob": ["garden"],
        "lee": [hardening.ALL_PODS, "garden"],
    }


@pytest.mark.parametrize("name", ["Maya", "maya/#", "+", "", "a" * 33, "maya\nuser admin"])
def test_bad_device_names_are_refused(files: hardening.BrokerFiles, name: str) -> None:
    with pytest.raises(VoicehelloError, match="device name"):
        hardening.add_device(files.directory, name, ["street"])
    assert hardening.load_devices(files.directory) == {}


def test_devices_need_a_broker_and_unique_names(tmp_path: Path, files: hardening.BrokerFiles) -> None:
    with pytest.raises(VoicehelloError, match="no broker"):
        hardening.add_device(tmp_path / "nothing", "maya", ["street"])
    hardening.add_device(files.directory, "maya", ["street"])
    with pytest.raises(VoicehelloError, match="already exists"):
        hardening.add_device(files.directory, "maya", ["street"])
    with pytest.raises(VoicehelloError, match="unknown device"):
        hardening.grant(files.directory, "bob", "street")
    with pytest.raises(VoicehelloError, match="pod"):
        hardening.grant(files.directory, "maya", "Bad Pod")


def test_config_snippet_loads_as_voicehello_settings(files: hardening.BrokerFiles, tmp_path: Path) -> None:
    creds = hardening.add_device(files.directory, "maya", ["garden", "street"])
    config = tmp_path / "voicehello.toml"
    config.write_text(hardening.config_snippet(creds, "kitchen.local", 8884, files.ca_cert), encoding="utf-8")
    settings = load_settings(config)
    assert settings.device.id == "maya"
    bus = settings.bus
    assert (bus.host, bus.port, bus.tls) == ("kitchen.local", 8884, True)
    assert bus.ca_file == files.ca_cert
    assert (bus.username, bus.password) == ("maya", creds.password)
