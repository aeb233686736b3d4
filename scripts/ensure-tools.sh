#!/usr/bin/env bash
# Provides the two external binaries rewind drives: the `temporal` CLI (its `server start-dev`
# is the Temporal dev server with SQLite persistence and the Web UI) and restic >= 0.17.
#
# Order, per tool: $REWIND_TEMPORAL_BIN / $REWIND_RESTIC_BIN, then PATH, then the cache folder,
# then the official release binary (checksum verified), then `go install` of the pinned tag.
# src/platform/tools.ts resolves the binaries at run time in the same order.
#
# Usage: scripts/ensure-tools.sh [--quiet]
# Environment: REWIND_TOOLS_DIR (cache), REWIND_TOOLS_MIRROR (release mirror),
#              REWIND_TOOLS_NO_DOWNLOAD=1 (skip release downloads), REWIND_TEMPORAL_BIN, REWIND_RESTIC_BIN.
set -euo pipefail

TEMPORAL_CLI_VERSION=1.5.1 # newest tag whose go.mod has no replace directive, so `go install` takes it
RESTIC_VERSION=0.19.1
RESTIC_MIN=0.17 # restore --overwrite if-changed --delete
CACHE_DIR="${REWIND_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rewind/bin}"
# Where release binaries come from; point it at an internal mirror of GitHub releases if needed.
RELEASES="${REWIND_TOOLS_MIRROR:-https://github.com}"
QUIET=0
[ "${1:-}" = "--quiet" ] && QUIET=1

say() { [ "$QUIET" = 1 ] || printf 'tools: %s\n' "$*" >&2; }
die() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE_DIR"

# One run at a time per cache: two parallel runs (npm test and npm start, say) would otherwise
# both build the same tool for minutes. The second waits, then finds the first one's binaries.
if command -v flock >/dev/null 2>&1; then
  exec 9>"$CACHE_DIR/.lock"
  if ! flock -n 9; then
    say "waiting for another ensure-tools run to finish (lock $CACHE_DIR/.lock)"
    flock 9
  fi
fi

version_at_least() { # version_at_least 0.19.1 0.17
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

restic_ok() { # restic_ok BINARY: prints nothing, succeeds when the binary is restic >= RESTIC_MIN
  local v
  v=$("$1" version 2>/dev/null | awk '/^restic /{print $2}') || return 1
  [ -n "$v" ] && version_at_least "$v" "$RESTIC_MIN"
}

temporal_ok() { "$1" server start-dev --help >/dev/null 2>&1; }

arch() {
  case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) echo unknown ;;
  esac
}

os() { uname -s | tr '[:upper:]' '[:lower:]'; }

fetch() { # fetch URL FILE: fails fast where the network is closed
  command -v curl >/dev/null 2>&1 || return 1
  curl --fail --silent --show-error --location --connect-timeout 5 --max-time 600 -o "$2" "$1" 2>/dev/null
}

verify_sha256() { # verify_sha256 FILE SUMS_FILE NAME_IN_SUMS
  local want got
  want=$(awk -v n="$3" '$2 == n || $2 == "*"n {print $1}' "$2")
  got=$(sha256sum "$1" | awk '{print $1}')
  [ -n "$want" ] && [ "$want" = "$got" ]
}

download_temporal() {
  local tmp name base
  tmp=$(mktemp -d)
  name="temporal_cli_${TEMPORAL_CLI_VERSION}_$(os)_$(arch).tar.gz"
  base="$RELEASES/temporalio/cli/releases/download/v${TEMPORAL_CLI_VERSION}"
  if fetch "$base/temporal_cli_${TEMPORAL_CLI_VERSION}_checksums.txt" "$tmp/sums" &&
    fetch "$base/$name" "$tmp/$name" && verify_sha256 "$tmp/$name" "$tmp/sums" "$name" &&
    tar -xzf "$tmp/$name" -C "$tmp" temporal && temporal_ok "$tmp/temporal"; then
    mv "$tmp/temporal" "$CACHE_DIR/temporal"
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  return 1
}

download_restic() {
  local tmp name base
  tmp=$(mktemp -d)
  name="restic_${RESTIC_VERSION}_$(os)_$(arch).bz2"
  base="$RELEASES/restic/restic/releases/download/v${RESTIC_VERSION}"
  if fetch "$base/SHA256SUMS" "$tmp/sums" && fetch "$base/$name" "$tmp/$name" &&
    verify_sha256 "$tmp/$name" "$tmp/sums" "$name" && bunzip2 "$tmp/$name" &&
    chmod +x "$tmp/${name%.bz2}" && restic_ok "$tmp/${name%.bz2}"; then
    mv "$tmp/${name%.bz2}" "$CACHE_DIR/restic"
    rm -rf "$tmp"
    return 0
  fi
  rm -rf "$tmp"
  return 1
}

go_build() { # go_build MODULE@VERSION
  command -v go >/dev/null 2>&1 || return 1
  say "building $1 with go (a few minutes, once; cached in $CACHE_DIR)"
  GOBIN="$CACHE_DIR" GOFLAGS="${GOFLAGS:-} -buildvcs=false" go install "$1"
}

ensure_temporal() {
  if [ -n "${REWIND_TEMPORAL_BIN:-}" ]; then
    temporal_ok "$REWIND_TEMPORAL_BIN" || die "REWIND_TEMPORAL_BIN=$REWIND_TEMPORAL_BIN is not a temporal CLI with 'server start-dev'"
    say "temporal: $REWIND_TEMPORAL_BIN (REWIND_TEMPORAL_BIN)"
    return
  fi
  local onpath
  onpath=$(command -v temporal 2>/dev/null || true)
  if [ -n "$onpath" ] && temporal_ok "$onpath"; then say "temporal: $onpath (PATH)"; return; fi
  if [ -x "$CACHE_DIR/temporal" ] && temporal_ok "$CACHE_DIR/temporal"; then say "temporal: $CACHE_DIR/temporal (cached)"; return; fi
  if [ "${REWIND_TOOLS_NO_DOWNLOAD:-0}" != 1 ] && download_temporal; then say "temporal: downloaded v$TEMPORAL_CLI_VERSION"; return; fi
  say "temporal: no verified release download (unreachable, or checksum mismatch); trying the Go build"
  go_build "github.com/temporalio/cli/cmd/temporal@v${TEMPORAL_CLI_VERSION}" && temporal_ok "$CACHE_DIR/temporal" && return
  die "the temporal CLI is missing. Install it (https://docs.temporal.io/cli, or 'brew install temporal'), or install Go >= 1.23 so this script can build it, or point REWIND_TEMPORAL_BIN at it."
}

ensure_restic() {
  if [ -n "${REWIND_RESTIC_BIN:-}" ]; then
    restic_ok "$REWIND_RESTIC_BIN" || die "REWIND_RESTIC_BIN=$REWIND_RESTIC_BIN is not restic >= $RESTIC_MIN"
    say "restic: $REWIND_RESTIC_BIN (REWIND_RESTIC_BIN)"
    return
  fi
  local onpath old=""
  onpath=$(command -v restic 2>/dev/null || true)
  if [ -n "$onpath" ] && restic_ok "$onpath"; then say "restic: $onpath (PATH)"; return; fi
  if [ -n "$onpath" ]; then
    old="restic $("$onpath" version 2>/dev/null | awk '/^restic /{print $2}') at $onpath"
    say "restic: $old is too old (rewind needs >= $RESTIC_MIN); looking for a newer one"
  fi
  if [ -x "$CACHE_DIR/restic" ] && restic_ok "$CACHE_DIR/restic"; then say "restic: $CACHE_DIR/restic (cached)"; return; fi
  if [ "${REWIND_TOOLS_NO_DOWNLOAD:-0}" != 1 ] && download_restic; then say "restic: downloaded v$RESTIC_VERSION"; return; fi
  say "restic: no verified release download (unreachable, or checksum mismatch); trying the Go build"
  go_build "github.com/restic/restic/cmd/restic@v${RESTIC_VERSION}" && restic_ok "$CACHE_DIR/restic" && return
  if [ -n "$old" ]; then
    die "$old is too old: rewind needs restic >= $RESTIC_MIN (for restore --overwrite if-changed --delete; Debian 12's package is 0.14). Install a newer one from https://restic.net, or install Go >= 1.23 so this script can build it, or point REWIND_RESTIC_BIN at it."
  fi
  die "restic >= $RESTIC_MIN is missing (Debian 12's package is 0.14, too old). Install it from https://restic.net, or install Go >= 1.23 so this script can build it, or point REWIND_RESTIC_BIN at it."
}

ensure_temporal
ensure_restic
