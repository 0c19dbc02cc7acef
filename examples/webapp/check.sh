#!/bin/sh
# Browser check: serve the app on the sandbox's loopback, load it in headless Chromium (which runs app.js)
# and look at the page it rendered. The HTML file alone contains no count, so only a browser can tell.
set -u
port=8765
python3 -m http.server "$port" --bind 127.0.0.1 --directory app >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null' EXIT
i=0
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 1)" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 50 ] && { echo "the app server did not start"; exit 1; }; sleep 0.1
done
dom=$(chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --virtual-time-budget=2000 --dump-dom "http://127.0.0.1:$port/" 2>/dev/null)
echo "$dom" | grep -o '<p id="count"[^<]*</p>'
echo "$dom" | grep -q '<p id="count" role="status">3 items</p>' || { echo "the page does not say 3 items"; exit 1; }
