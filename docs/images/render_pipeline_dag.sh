#!/usr/bin/env bash
# Regenerate docs/images/pipeline_dag.png from a real `kedro viz build` (README, "See the pipeline").
# Needs the `viz` extra (pip install -e ".[viz]") and Chromium (apt-get install chromium).
# Offline: kedro-viz writes a static site to build/, served here on 127.0.0.1 because the
# page fetches its api/ JSON; a seed page sets kedro-viz's saved settings (light theme,
# left-to-right layout, no sidebar, minimap or feature tour) before the app loads.
set -euo pipefail
cd "$(dirname "$0")/../.."
export KEDRO_DISABLE_TELEMETRY=1 DO_NOT_TRACK=1
port="${PORT:-8765}"
out="${1:-docs/images/pipeline_dag.png}"
site="$(mktemp -d)"
profile="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$site" "$profile"' EXIT

kedro viz build
cp -r build/. "$site/"
cat > "$site/seed.html" <<'HTML'
<!DOCTYPE html><script>
localStorage.setItem("KedroViz", JSON.stringify({
  theme: "light", orientation: "vertical", showFeatureHints: false, textLabels: true,
  visible: {sidebar: false, miniMap: false}}));
location.replace("/");
</script>
HTML
python -m http.server "$port" --bind 127.0.0.1 --directory "$site" >/dev/null 2>&1 &
server=$!
sleep 1
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --virtual-time-budget=20000 --window-size="${WINDOW:-1000,1900}" \
  --screenshot="$out" "http://127.0.0.1:$port/seed.html"
echo "wrote $out ($(du -k "$out" | cut -f1) KiB)"
