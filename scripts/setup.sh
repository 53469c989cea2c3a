#!/usr/bin/env bash
# Sets up tfvae on a Debian machine: Debian's Fashion-MNIST package, a venv in
# .venv with tfvae installed editable (plus test tools). Safe to rerun.
#   scripts/setup.sh            # as root, or with sudo available
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

packages=()
[ -d /usr/share/datasets/fashion-mnist ] || packages+=(dataset-fashion-mnist)
"$PYTHON" -c "import ensurepip, venv" 2>/dev/null || packages+=(python3-venv)
if [ ${#packages[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}"
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,serving]"
.venv/bin/python -c "import tfvae, tensorflow as tf, tensorflow_probability as tfp, keras; \
print(f'tfvae ready: tensorflow {tf.__version__}, keras {keras.__version__}, tfp {tfp.__version__}')"
