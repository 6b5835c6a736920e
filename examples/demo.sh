#!/usr/bin/env bash
# The README's main job (`make demo`). It grows with the toolkit: today it shows the plugin
# platform and the run store; parse / extract / train / retrieve join as they land.
set -euo pipefail
cd "$(dirname "$0")/.."
VDI=".venv/bin/vdi"
export VDI_HOME="${VDI_HOME:-$PWD/demo-out}"
echo "== vdi $($VDI --version)"
echo "== installed plugins"
$VDI plugins
echo "== sequence models for the spatial-dynamic branch"
$VDI sequence-models
$VDI sequence-models show transformer
echo "== recorded runs ($VDI_HOME/vdi.db)"
$VDI runs list
