#!/usr/bin/env bash
# LeRobot's own environment for vgb's LeRobot bridge (idempotent; a second run takes a second).
#
#   scripts/setup_lerobot.sh           create (or update) .venv-lerobot at the repository root
#   scripts/setup_lerobot.sh --check   exit 0 if it is there and current, 1 if not (installs nothing)
#
# lerobot 0.4.4 pins torch < 2.11 (vgb runs torch 2.13), so it cannot share vgb's environment. PyPI's Linux torch
# 2.10 wheel brings its CUDA libraries (a CPU-only torch build is not on PyPI): measured on the 2-core machine, a
# first run downloads about 3 GB and leaves an 8.3 GB environment in 10.5 minutes (21 minutes while other jobs
# shared the cores).
#
# Environment knobs:
#   VGB_LEROBOT_VENV=path   where the environment lives (default: .venv-lerobot in the repository)
#   PYTHON=python3.11       the interpreter to create it with (lerobot 0.4.4 needs Python 3.10-3.12)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VGB_LEROBOT_VENV:-$root/.venv-lerobot}
py=${PYTHON:-python3}
log() { printf '[setup-lerobot] %s\n' "$*" >&2; }

# The pins: lerobot and what vgb's two scripts in vla_gen_bench/lerobot/ import (server.py, export_worker.py).
pins=(lerobot==0.4.4 torch==2.10.0 torchvision==0.25.0 av==15.1.0 numpy==2.2.6 websockets==17.4 msgpack==1.2.4)
smoke='import av, msgpack, torch, websockets; from lerobot.datasets.lerobot_dataset import LeRobotDataset; from lerobot.policies.factory import make_pre_post_processors'
stamp_src=$(printf '%s\n' "${pins[@]}" "$smoke" | sha256sum | cut -c1-16)
stamp=$venv/.vgb-lerobot-stamp

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_src" ] && [ -x "$venv/bin/python" ]; then
  log "LeRobot environment up to date ($venv)"
  exit 0
fi
if [ "${1:-}" = "--check" ]; then
  log "LeRobot environment missing or out of date ($venv); create it with 'make lerobot' or 'vgb setup lerobot'"
  exit 1
fi

if ! "$py" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 12)))' 2>/dev/null; then
  log "lerobot 0.4.4 needs Python 3.10-3.12; '$py' is $("$py" --version 2>&1 || echo missing). Install one" \
      "(apt-get install python3.11 python3.11-venv) and run again with PYTHON=python3.11"
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtualenv $venv"
  if ! "$py" -m venv "$venv"; then
    log "'$py -m venv' failed: install the venv module (apt-get install python3-venv) or set PYTHON"
    exit 1
  fi
fi
log "installing ${pins[*]} (first run: ~3 GB download, 8.3 GB on disk, 10-20 minutes)"
piplog=$venv/pip-install.log
t0=$(date +%s)
if ! { "$venv/bin/python" -m pip install --upgrade pip &&
       "$venv/bin/python" -m pip install "${pins[@]}"; } >"$piplog" 2>&1; then
  tail -n 30 "$piplog" >&2
  log "pip install failed (full log: $piplog). It needs PyPI (or a mirror in pip.conf) and ~9 GB of free disk;" \
      "then run this script again"
  exit 1
fi
if ! "$venv/bin/python" -c "$smoke" 2>"$venv/smoke.log"; then
  tail -n 5 "$venv/smoke.log" >&2
  log "the LeRobot environment installed but does not import (log: $venv/smoke.log); remove $venv and run again"
  exit 1
fi
echo "$stamp_src" >"$stamp"
log "LeRobot environment ready in $(( $(date +%s) - t0 )) s: $venv ($(du -sh "$venv" | cut -f1))"
