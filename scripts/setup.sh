#!/usr/bin/env bash
# One-command set-up for vla-gen-bench on a bare machine (idempotent; a second run takes seconds).
#
#   scripts/setup.sh            # venv in .venv, all extras, Vulkan check (+ lavapipe from backports if needed),
#                               # low-poly Panda meshes
#
# Environment knobs:
#   VGB_VENV=path        where the virtualenv lives (default: .venv in the repository)
#   VGB_TORCH=auto|cpu|pypi
#                        cpu  = torch==2.13.0 (resolves to the local +cpu wheel where one exists)
#                        pypi = torch===2.13.0 from PyPI (CUDA build; also runs on CPU, ~5 GB venv)
#                        auto = pypi when `nvidia-smi -L` lists a GPU, else cpu (default)
#   VGB_SKIP_APT=1       never touch apt (then a missing Vulkan device is an error with the command to run)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${VGB_VENV:-$root/.venv}
py=${PYTHON:-python3}
log() { printf '[setup] %s\n' "$*" >&2; }

# ---------------------------------------------------------------- 1. virtualenv + pinned packages
torch_mode=${VGB_TORCH:-auto}
if [ "$torch_mode" = auto ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then torch_mode=pypi; else torch_mode=cpu; fi
fi
case "$torch_mode" in cpu|pypi) ;; *) log "VGB_TORCH must be auto, cpu or pypi (got '$torch_mode')"; exit 2;; esac

stamp_src=$(cat pyproject.toml scripts/constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)-$torch_mode
stamp=$venv/.vgb-setup-stamp
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_src" ] && [ -x "$venv/bin/python" ]; then
  log "python environment up to date ($venv)"
else
  if [ ! -x "$venv/bin/python" ]; then
    log "creating virtualenv $venv"
    "$py" -m venv "$venv"
  fi
  constraints=$(mktemp)
  trap 'rm -f "$constraints"' EXIT
  if [ "$torch_mode" = pypi ]; then
    sed 's/^torch==/torch===/' scripts/constraints.txt >"$constraints"
  else
    cp scripts/constraints.txt "$constraints"
  fi
  log "installing vla-gen-bench with all extras (torch: $torch_mode); first run takes a few minutes"
  # torch and torchvision come from the same constraints file in the same pip call: an unpinned timm or
  # controlnet_aux would otherwise replace the CPU torch with a CUDA build.
  # pip's output goes to a log that is shown only when an install fails
  piplog=$venv/pip-install.log
  if ! { "$venv/bin/python" -m pip install --upgrade pip setuptools wheel &&
         "$venv/bin/python" -m pip install -c "$constraints" -e ".[all]"; } >"$piplog" 2>&1; then
    tail -n 40 "$piplog" >&2
    log "pip install failed (full log: $piplog)"; exit 1
  fi
  echo "$stamp_src" >"$stamp"
fi
vpy=$venv/bin/python

# ---------------------------------------------------------------- 2. a usable Vulkan device for SAPIEN
probe_vulkan() { "$vpy" -m vla_gen_bench.envs.probe >/dev/null 2>&1; }

install_backports_mesa() {
  # Derive the Debian mirror from the machine's own apt sources (deb822 or one-line format); never hard-code a host.
  local codename uri sudo=""
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
  [ -n "$codename" ] || { log "cannot read VERSION_CODENAME from /etc/os-release"; return 1; }
  uri=$(scripts/backports-uri.sh "$codename") || return 1
  [ "$(id -u)" = 0 ] || sudo=sudo
  log "adding $codename-backports from $uri and installing Mesa (lavapipe Vulkan driver)"
  echo "deb $uri $codename-backports main" | $sudo tee /etc/apt/sources.list.d/vgb-backports.list >/dev/null
  $sudo apt-get update -qq -o Dir::Etc::sourcelist=sources.list.d/vgb-backports.list \
        -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq -t "$codename-backports" \
        mesa-vulkan-drivers libvulkan1 >/dev/null
}

if probe_vulkan; then
  log "Vulkan rendering device OK"
elif [ "${VGB_SKIP_APT:-0}" = 1 ]; then
  log "no usable Vulkan device, and VGB_SKIP_APT=1: install Mesa >= 23 (mesa-vulkan-drivers libvulkan1) yourself"
  exit 1
else
  install_backports_mesa || { log "could not install lavapipe; see README 'Set-up' for the manual steps"; exit 1; }
  if ! probe_vulkan; then
    "$vpy" -m vla_gen_bench.envs.probe || true
    log "Vulkan still unusable after installing backports Mesa"; exit 1
  fi
  log "Vulkan rendering device OK (lavapipe)"
fi

# ---------------------------------------------------------------- 3. derived assets (cached, deterministic)
"$vpy" -m vla_gen_bench.envs.lowpoly
log "done: activate with 'source $venv/bin/activate' or run '$venv/bin/vgb --help'"
