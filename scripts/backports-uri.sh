#!/usr/bin/env bash
# Print the Debian mirror URI that serves <codename> according to this machine's apt sources (deb822 *.sources
# files first, then one-line sources.list entries). Used by setup.sh to add <codename>-backports from the same
# mirror; no host is hard-coded. Usage: scripts/backports-uri.sh <codename> [apt-etc-dir (default /etc/apt)]
set -euo pipefail
codename=$1
etc=${2:-/etc/apt}
uri=$(cat "$etc"/sources.list.d/*.sources 2>/dev/null | awk -v c="$codename" '
        /^URIs:/ {u=$2} /^Suites:/ {for (i=2;i<=NF;i++) if ($i==c) {print u; exit}}' || true)
if [ -z "$uri" ]; then
  uri=$(cat "$etc"/sources.list "$etc"/sources.list.d/*.list 2>/dev/null |
        awk -v c="$codename" '$1=="deb" {for (i=2;i<=NF;i++) if ($i==c) {print $(i-1); exit}}' || true)
fi
[ -n "$uri" ] || { echo "no apt source for '$codename' in $etc" >&2; exit 1; }
echo "$uri"
