#!/usr/bin/env bash
# Install the system programs omnicurate runs (ffmpeg, espeak-ng, tesseract, chromium for page tests).
# Installs through apt-get when run as root and something is missing; otherwise says what to install.
set -euo pipefail
need=()
command -v ffmpeg >/dev/null || need+=(ffmpeg)
command -v ffprobe >/dev/null || need+=(ffmpeg)
command -v espeak-ng >/dev/null || need+=(espeak-ng)
command -v tesseract >/dev/null || need+=(tesseract-ocr)
if [ "${OMNICURATE_BROWSER:-1}" = 1 ]; then command -v chromium >/dev/null || need+=(chromium); fi
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "omnicurate needs these system packages: ${need[*]}" >&2
  echo "install them with your package manager (as root: apt-get install ${need[*]})" >&2
  exit 1
fi
