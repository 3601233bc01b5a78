#!/usr/bin/env bash
# Install PostgreSQL and the pgvector extension for the store.pgvector tests, when missing.
#   scripts/install_postgres.sh        # no-op when pg_config's server already has pgvector
# Uses Debian's packages: `postgresql` and `postgresql-server-dev-<major>` from the machine's own
# suite; pgvector itself is built from Debian's `pgvector` source package (Debian 12 ships no
# binary package of it; newer suites do, and it is installed directly when apt can find it).
# Never fails the caller: without root or apt it says so and the tests skip, naming
# RAGLINE_PG_URL (point it at a PostgreSQL server with pgvector to run them anyway).
set -uo pipefail

say() { echo "install_postgres: $*" >&2; }

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }

has_pgvector() {
  local bin; bin="$(pg_bin)"
  [ -n "$bin" ] || return 1
  local share; share="$("$bin/pg_config" --sharedir 2>/dev/null || true)"
  [ -z "$share" ] && share="/usr/share/postgresql/$(basename "$(dirname "$bin")")"
  [ -f "$share/extension/vector.control" ]
}

if has_pgvector; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  say "PostgreSQL with pgvector is not installed and cannot be installed here (needs root and"
  say "apt-get); the pgvector tests will skip unless RAGLINE_PG_URL names a server with pgvector"
  exit 0
fi

install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || return 1
  if [ -z "$(pg_bin)" ]; then
    apt-get install -y -qq postgresql >/dev/null || return 1
  fi
  local major; major="$(basename "$(dirname "$(pg_bin)")")"
  if apt-get install -y -qq "postgresql-$major-pgvector" >/dev/null 2>&1; then
    return 0
  fi
  say "no binary package postgresql-$major-pgvector; building Debian's pgvector source"
  apt-get install -y -qq "postgresql-server-dev-$major" build-essential dpkg-dev >/dev/null ||
    return 1
  local work; work="$(mktemp -d)"
  mkdir -p "$work/lists/partial"
  # A private source list: the next Debian suite's *source* of pgvector only, from the mirror
  # this machine's apt already uses; nothing of that suite is installed as a binary.
  local mirror
  mirror="$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | grep -m1 '/debian/$')"
  [ -n "$mirror" ] || { say "no Debian mirror configured for apt"; return 1; }
  echo "deb-src ${mirror} trixie main" >"$work/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$work/lists")
  (
    cd "$work" &&
      apt-get "${opts[@]}" update -qq &&
      apt-get "${opts[@]}" source -qq pgvector >/dev/null 2>&1 &&
      cd pgvector-*/ &&
      make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" OPTFLAGS="" >/dev/null &&
      make -s PG_CONFIG="/usr/lib/postgresql/$major/bin/pg_config" install >/dev/null
  )
  local status=$?
  rm -rf "$work"
  return $status
}

if install && has_pgvector; then
  say "PostgreSQL $(basename "$(dirname "$(pg_bin)")") with pgvector installed"
else
  say "could not install PostgreSQL with pgvector; the pgvector tests will skip unless"
  say "RAGLINE_PG_URL names a server with pgvector"
fi
exit 0
