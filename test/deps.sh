#!/usr/bin/env bash
# Installs (as root, from Debian) whatever pkonline needs to build, demo and test, when missing.
set -euo pipefail
need=(build-essential postgresql-15 postgresql-server-dev-15 postgresql-common libboost-dev
      postgresql-15-cron postgresql-15-partman libipc-run-perl valgrind clang-format)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "pkonline: missing packages: ${missing[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "pkonline: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's postgresql package creates a 'main' cluster we do not use; tests run in throwaway ones.
