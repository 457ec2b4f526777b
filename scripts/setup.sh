#!/usr/bin/env bash
# Install everything voicehello needs on Debian (as root), then run one job:
#   bash scripts/setup.sh demo    install, then run the main job
#   bash scripts/setup.sh test    install, then lint, type-check and run the whole test suite
#   bash scripts/setup.sh bench   install, then run the speech benchmark and refresh the README's numbers
#   bash scripts/setup.sh bench-bus install, then run the bus/announcement benchmark (README numbers)
#   bash scripts/setup.sh install install only
set -euo pipefail
cd "$(dirname "$0")/.."

job="${1:-install}"
shift || true

DEBIAN_PACKAGES=(
  python3-venv python3-dev         # the virtual environment
  libportaudio2                    # sounddevice's PortAudio
  pulseaudio pulseaudio-utils      # virtual microphones and speakers (null sinks) for tests
  libasound2-plugins alsa-utils    # ALSA's pulse plugin: PortAudio reaches PulseAudio through it
  espeak-ng libespeak-ng1          # pyttsx3's voice on Linux; synthesized test speech
  sox                              # audio conversion and noise for tests and benchmarks
  pocketsphinx-testdata            # real human recordings for tests
  sphinxtrain sphinxbase-utils pocketsphinx  # `voicehello enroll`: bw, mllr_solve, map_adapt, sphinx_fe, mdef convert
  mosquitto mosquitto-clients      # the local MQTT broker
  zbar-tools                       # tests scan the printed invite QR codes (zbarimg)
)

install_debian_packages() {
  local missing=()
  for package in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if ((${#missing[@]})); then
    echo "==> installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # The Debian service would hold port 1883; voicehello starts its own brokers.
  if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mosquitto >/dev/null 2>&1 || true; fi
}

install_python() {
  if [[ ! -x .venv/bin/python ]]; then
    echo "==> creating .venv"
    python3 -m venv .venv
  fi
  echo "==> installing voicehello into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
}

install_debian_packages
install_python

case "$job" in
  install) echo "==> installed; try: .venv/bin/voicehello --help" ;;
  demo) exec .venv/bin/voicehello demo "$@" ;;
  test)
    echo "==> ruff"; .venv/bin/ruff check voicehello tests bench scripts
    .venv/bin/ruff format --check voicehello tests bench scripts
    echo "==> mypy"; .venv/bin/mypy
    .venv/bin/mypy --strict tests/conftest.py tests/unit tests/contract
    MYPYPATH=tests/integration .venv/bin/mypy --strict tests/integration  # its modules import each other
    echo "==> pytest"; exec .venv/bin/python -m pytest "$@"
    ;;
  bench) exec .venv/bin/python bench/run.py "$@" ;;
  bench-bus) exec .venv/bin/python bench/bus.py "$@" ;;
  *) echo "usage: bash scripts/setup.sh [install|demo|test|bench|bench-bus]" >&2; exit 2 ;;
esac
