#!/bin/bash
# Install what sfexport needs on a Debian 12 machine (run as root):
# the packages in scripts/packages.txt, Node.js and npm when missing, and
# the npm packages of the test stand-ins.  Safe to run again.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup-machine.sh: not root, skipping package installation" >&2
	exit 0
fi

mapfile -t pkgs < <(grep -v '^#' "$REPO/scripts/packages.txt" | grep -v '^$')
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== apt-get install ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -f "$REPO/test/emulators/s3rver/package.json" ] &&
   [ ! -d "$REPO/test/emulators/s3rver/node_modules/s3rver" ]; then
	echo "== npm ci (s3rver)"
	(cd "$REPO/test/emulators/s3rver" && npm ci --no-audit --no-fund --loglevel=error)
fi
