#!/bin/sh
# Installs lsbackup on one host: the program, a config skeleton, the systemd units.
#
#   scripts/install.sh [options]                 from this checkout (dist/ must be built)
#   scripts/install.sh --tarball lsbackup-X.tgz  from `npm pack` output
#
# It never overwrites an existing config and never enables or starts a unit; it prints what to
# do next. Run it as root for a real install. See docs/OPERATIONS.md.
set -eu

usage() {
  cat <<'EOF'
usage: install.sh [options]

  --tarball FILE        install from an `npm pack` tarball instead of this checkout
  --reuse-node-modules  copy this checkout's node_modules and prune the dev packages instead of
                        `npm ci --omit=dev` (offline; the checkout must have been installed on the
                        same OS, CPU architecture and Node.js major version: better-sqlite3 is native)
  --prefix DIR          the program (default /opt/lsbackup)
  --bindir DIR          the commands lsbackup, lambdastack, lsbackup-agent, lsbackup-coordinator
                        (default /usr/local/bin)
  --sysconfdir DIR      configs and the pki/ directory (default /etc/lsbackup)
  --unitdir DIR         systemd units (default /etc/systemd/system)
  --statedir DIR        the agent's state_dir (default /var/lib/lsbackup)
  --target DIR          the shared backup location, mounted at the same path on every node
                        (default /srv/lsbackup); the coordinator may write only there
  --build-dir DIR       the cluster's LambdaStack build directory, for the daily backup
  --node-name NAME      this host's inventory name, for agent.yaml (default: hostname -s)
  --node-bin FILE       the node binary the commands run (default: node on PATH)
  --destdir DIR         stage everything under DIR (also $DESTDIR); paths written into files
                        stay the final ones
  -h, --help            this text
EOF
}

die() { echo "install.sh: $*" >&2; exit 2; }

PREFIX=/opt/lsbackup
BINDIR=/usr/local/bin
SYSCONFDIR=/etc/lsbackup
UNITDIR=/etc/systemd/system
STATEDIR=/var/lib/lsbackup
TARGET=/srv/lsbackup
BUILD_DIR=
NODE_NAME=
NODE_BIN=
TARBALL=
REUSE=no
DESTDIR=${DESTDIR:-}

need_arg() { [ $# -ge 2 ] && [ -n "$2" ] && [ "${2#--}" = "$2" ] || die "$1 needs a value"; }
while [ $# -gt 0 ]; do
  case $1 in
    --tarball) need_arg "$@"; TARBALL=$2; shift ;;
    --reuse-node-modules) REUSE=yes ;;
    --prefix) need_arg "$@"; PREFIX=$2; shift ;;
    --bindir) need_arg "$@"; BINDIR=$2; shift ;;
    --sysconfdir) need_arg "$@"; SYSCONFDIR=$2; shift ;;
    --unitdir) need_arg "$@"; UNITDIR=$2; shift ;;
    --statedir) need_arg "$@"; STATEDIR=$2; shift ;;
    --target) need_arg "$@"; TARGET=$2; shift ;;
    --build-dir) need_arg "$@"; BUILD_DIR=$2; shift ;;
    --node-name) need_arg "$@"; NODE_NAME=$2; shift ;;
    --node-bin) need_arg "$@"; NODE_BIN=$2; shift ;;
    --destdir) need_arg "$@"; DESTDIR=$2; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done

for v in "$PREFIX" "$BINDIR" "$SYSCONFDIR" "$UNITDIR" "$STATEDIR" "$TARGET"; do
  case $v in /*) ;; *) die "'$v' is not an absolute path" ;; esac
  case $v in *[!A-Za-z0-9/._+-]*) die "'$v': use only letters, digits and / . _ + - in install paths" ;; esac
done
[ -z "$BUILD_DIR" ] || case $BUILD_DIR in /*) ;; *) die "--build-dir '$BUILD_DIR' is not an absolute path" ;; esac
[ -z "$TARBALL" ] || [ "$REUSE" = no ] || die "--reuse-node-modules works only from a checkout, not with --tarball"

# ---- what we install from ----------------------------------------------------------------------
SRC=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$NODE_BIN" ]; then NODE_BIN=$(command -v node || true); fi
[ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || die "node not found: install Node.js 20 or newer, or give --node-bin"
case $NODE_BIN in /*) ;; *) die "--node-bin '$NODE_BIN' is not an absolute path" ;; esac
case $NODE_BIN in *[!A-Za-z0-9/._+-]*) die "--node-bin '$NODE_BIN': use only letters, digits and / . _ + -" ;; esac
NODE_MAJOR=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" -ge 20 ] || die "$NODE_BIN is Node.js $NODE_MAJOR; lsbackup needs 20 or newer"
if [ -z "$NODE_NAME" ]; then NODE_NAME=$(hostname -s 2>/dev/null || hostname); fi
case $NODE_NAME in *[!A-Za-z0-9._-]*|'') die "--node-name '$NODE_NAME' may hold only letters, digits, '.', '_' and '-'" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lsbackup-install.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
STAGE=$WORK/app

if [ -n "$TARBALL" ]; then
  [ -f "$TARBALL" ] || die "tarball '$TARBALL' not found"
  mkdir -p "$WORK/unpack"
  tar -xzf "$TARBALL" -C "$WORK/unpack" || die "'$TARBALL' is not an npm pack tarball"
  [ -f "$WORK/unpack/package/dist/cli/main.js" ] || die "'$TARBALL' has no dist/: build before packing (npm run build && npm pack)"
  mv "$WORK/unpack/package" "$STAGE"
else
  [ -f "$SRC/package.json" ] && [ -f "$SRC/package-lock.json" ] || die "$SRC is not an lsbackup checkout"
  for m in agent cli coordinator; do
    [ -f "$SRC/dist/$m/main.js" ] || die "$SRC/dist/$m/main.js is missing: run 'npm ci && npm run build' first"
  done
  mkdir -p "$STAGE/dist"
  cp "$SRC/package.json" "$SRC/package-lock.json" "$STAGE/"
  [ ! -f "$SRC/README.md" ] || cp "$SRC/README.md" "$STAGE/"
  for d in agent cli common coordinator proto; do cp -R "$SRC/dist/$d" "$STAGE/dist/"; done
  mkdir -p "$STAGE/proto"
  cp "$SRC/proto/lsbackup.proto" "$STAGE/proto/"
  for d in docs monitoring systemd; do [ ! -d "$SRC/$d" ] || cp -R "$SRC/$d" "$STAGE/"; done
fi
# Source maps are for developers; the stack traces of an installed copy do not need them.
find "$STAGE/dist" -name '*.map' -exec rm -f {} +

echo "installing npm dependencies into $PREFIX"
if [ "$REUSE" = yes ]; then
  [ -f "$SRC/node_modules/.package-lock.json" ] || die "$SRC/node_modules is missing: run 'npm ci' first or leave out --reuse-node-modules"
  cp -R "$SRC/node_modules" "$STAGE/"
  (cd "$STAGE" && npm prune --omit=dev --offline --no-audit --no-fund --loglevel=error >/dev/null) || die "npm prune --omit=dev failed in $STAGE"
elif [ -f "$STAGE/package-lock.json" ]; then
  (cd "$STAGE" && npm ci --omit=dev --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci --omit=dev failed (registry unreachable? better-sqlite3 needs python3, make and g++ when no prebuilt binary matches)"
else
  (cd "$STAGE" && npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null) || die "npm install --omit=dev failed (registry unreachable? better-sqlite3 needs python3, make and g++ when no prebuilt binary matches)"
fi
"$NODE_BIN" "$STAGE/dist/cli/main.js" --version >/dev/null || die "the staged program does not start: $NODE_BIN $STAGE/dist/cli/main.js --version"
VERSION=$("$NODE_BIN" "$STAGE/dist/cli/main.js" --version)

# ---- the program -------------------------------------------------------------------------------
D=$DESTDIR
umask 022
mkdir -p "$D$(dirname "$PREFIX")"
# Swap the whole tree: running daemons keep the modules they loaded, the next start gets the new ones.
rm -rf "$D$PREFIX.new" "$D$PREFIX.old"
cp -R "$STAGE" "$D$PREFIX.new"
mkdir -p "$D$PREFIX.new/bin"
ln -s ../dist/cli/main.js "$D$PREFIX.new/bin/lambdastack"
if [ -e "$D$PREFIX" ]; then mv "$D$PREFIX" "$D$PREFIX.old"; fi
mv "$D$PREFIX.new" "$D$PREFIX"
rm -rf "$D$PREFIX.old"

mkdir -p "$D$BINDIR"
wrapper() { # name, script under $PREFIX
  tmp="$D$BINDIR/.$1.tmp"
  printf '#!/bin/sh\n# lsbackup %s, installed by scripts/install.sh\nexec %s %s "$@"\n' "$VERSION" "$NODE_BIN" "$PREFIX/$2" > "$tmp"
  chmod 0755 "$tmp"
  mv "$tmp" "$D$BINDIR/$1"
}
wrapper lsbackup dist/cli/main.js
wrapper lambdastack bin/lambdastack
wrapper lsbackup-agent dist/agent/main.js
wrapper lsbackup-coordinator dist/coordinator/main.js

# ---- configs: owner-only, never overwritten -----------------------------------------------------
mkdir -p "$D$SYSCONFDIR" "$D$SYSCONFDIR/pki" "$D$STATEDIR"
chmod 0755 "$D$SYSCONFDIR"
chmod 0700 "$D$SYSCONFDIR/pki" "$D$STATEDIR"
umask 077
PKI=$SYSCONFDIR/pki
DOC=$PREFIX/docs/OPERATIONS.md
KEPT=
config() { # file; the body comes on stdin
  if [ -e "$D$SYSCONFDIR/$1" ]; then
    cat > /dev/null
    KEPT="$KEPT $1"
  else
    cat > "$D$SYSCONFDIR/$1"
  fi
  chmod 0600 "$D$SYSCONFDIR/$1"
}

config agent.yaml <<EOF
# lsbackup agent on this node. Checked at start: a wrong key or type stops the agent with exit 2
# and one line naming this file, the key and what was expected (journalctl -u lsbackup-agent).
# Every key and its default: $DOC

# This host's name in the Ansible inventory ("node1" in "node1 ansible_host=10.0.0.5").
node: $NODE_NAME
listen: 0.0.0.0:50551
# Locks, rollback copies of what a restore replaced, scratch files. Never on the shared location.
state_dir: $STATEDIR
# 0-9; 0 stores (for data that is compressed already).
compression_level: 6
log_level: info
# Issued with: lsbackup certs issue $NODE_NAME --role agent --host <this node's IP> --dir $PKI
tls:
  ca: $PKI/ca.crt
  cert: $PKI/$NODE_NAME.crt
  key: $PKI/$NODE_NAME.key
# A component is backed up on this node when its key is present; {} takes every default.
components: {}
# components:
#   haproxy: {}           # /etc/haproxy, /etc/ssl/haproxy; haproxy -c -f checks a restored config
#   kibana: {}            # /etc/kibana/kibana.yml
#   elasticsearch:        # snapshot into an fs repository on the shared location
#     ca_file: /etc/elasticsearch/certs/ca.pem
#     username: lsbackup
#     password_file: /etc/lsbackup/elasticsearch.password
#   prometheus: {}        # TSDB snapshot (admin API) and /etc/prometheus
#   alertmanager: {}      # silences, data and alertmanager.yml
#   grafana: {}           # grafana.db (online SQLite backup) and /var/lib/grafana
#   postgresql: {}        # pg_dumpall --globals-only, one pg_dump -Fc per database, config files
#   rabbitmq:             # definitions through the management API, config files
#     user: lsbackup
#     password_file: /etc/lsbackup/rabbitmq.password
EOF

config coordinator.yaml <<EOF
# lsbackup coordinator (on the master). Checked at start like agent.yaml.
# Every key and its default: $DOC

# Where the CLI reaches it; 127.0.0.1 only when every operator works on this host.
listen: 0.0.0.0:50550
# Agent port for hosts without lsbackup_agent_port in the inventory.
agent_port: 50551
# Seconds to wait for an agent before calling it unreachable.
agent_timeout_s: 10
# Free room to leave on the target beyond the agents' estimate, as a fraction of it.
space_margin: 0.1
log_level: info
# Issued with: lsbackup certs issue coordinator --role coordinator --host <master IP> --dir $PKI
tls:
  ca: $PKI/ca.crt
  cert: $PKI/coordinator.crt
  key: $PKI/coordinator.key
# Prometheus metrics (plain HTTP, /metrics); off when absent. Alert rules: $PREFIX/monitoring/
# metrics_listen: 127.0.0.1:50552
# Encryption (docs/FORMAT.md "Format 4"). Make the keys on a machine off the cluster:
#   lsbackup keys init --dir <dir>
# keep its identity.txt there, copy its backup-key.json here (0600), and uncomment:
# backup_key_file: $SYSCONFDIR/backup-key.json
# Until then backups are refused; 'unencrypted: true' backs up in the clear instead.
EOF

config cli.yaml <<EOF
# lsbackup CLI. Also read from \$LSBACKUP_CONFIG, --config or ~/.config/lsbackup/cli.yaml.
coordinator: 127.0.0.1:50550
# The name on the coordinator's certificate, checked when coordinator is an IP address.
coordinator_name: coordinator
# Issued with: lsbackup certs issue operator --role operator --dir $PKI
tls:
  ca: $PKI/ca.crt
  cert: $PKI/operator.crt
  key: $PKI/operator.key
EOF

config backup.env <<EOF
# Settings of lsbackup-backup.service (started daily by lsbackup-backup.timer).
# KEY=value lines, no quotes needed; see systemd.exec(5), EnvironmentFile=.

# The cluster's LambdaStack build directory: its inventory names the nodes. Required.
LSBACKUP_BUILD_DIR=${BUILD_DIR:-/CHANGE-ME/lambdastack/build/CLUSTER}

# The shared location, mounted at this same path on every node. Required. The coordinator's
# unit may write only here (lsbackup-coordinator.service.d/target.conf).
LSBACKUP_TARGET=$TARGET

# More arguments for "lsbackup backup", split at spaces, e.g. "--component postgresql --force".
LSBACKUP_BACKUP_ARGS=

# Retention after each complete backup ("lsbackup prune"); 0 turns a rule off, at least one must
# be above 0. The newest complete set is never removed.
# Keep the N newest complete sets.
LSBACKUP_KEEP_LAST=7
# Keep the newest complete set of each of the last N days.
LSBACKUP_KEEP_DAILY=14
# Keep the newest complete set of each of the last N ISO weeks.
LSBACKUP_KEEP_WEEKLY=8
# Keep the newest complete set of each of the last N months.
LSBACKUP_KEEP_MONTHLY=12
# Sets without a manifest (a run that never finished) are removed once older than this many hours.
LSBACKUP_INCOMPLETE_GRACE_HOURS=24

# The CLI config with the coordinator's address and the operator certificate.
LSBACKUP_CONFIG=$SYSCONFDIR/cli.yaml
EOF

# ---- systemd units -----------------------------------------------------------------------------
umask 022
mkdir -p "$D$UNITDIR"
esc() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }
for u in lsbackup-agent.service lsbackup-coordinator.service lsbackup-backup.service lsbackup-backup.timer; do
  [ -f "$STAGE/systemd/$u" ] || die "$STAGE/systemd/$u is missing"
  sed -e "s|/usr/local/bin/|$(esc "$BINDIR")/|g" \
      -e "s|/etc/lsbackup|$(esc "$SYSCONFDIR")|g" \
      -e "s|/opt/lsbackup|$(esc "$PREFIX")|g" \
      "$STAGE/systemd/$u" > "$D$UNITDIR/$u"
  chmod 0644 "$D$UNITDIR/$u"
done
mkdir -p "$D$UNITDIR/lsbackup-coordinator.service.d" "$D$UNITDIR/lsbackup-agent.service.d"
cat > "$D$UNITDIR/lsbackup-coordinator.service.d/target.conf" <<EOF
# Written by scripts/install.sh --target. Add a line per further target the coordinator serves.
[Unit]
RequiresMountsFor=$TARGET

[Service]
ReadWritePaths=-$TARGET
EOF
cat > "$D$UNITDIR/lsbackup-agent.service.d/target.conf" <<EOF
# Written by scripts/install.sh --target: start the agent once the shared location is mounted.
[Unit]
RequiresMountsFor=$TARGET
EOF
chmod 0644 "$D$UNITDIR/lsbackup-coordinator.service.d/target.conf" "$D$UNITDIR/lsbackup-agent.service.d/target.conf"

if [ "$(id -u)" = 0 ] && [ -z "$D" ]; then
  chown -R root:root "$PREFIX" "$SYSCONFDIR" "$STATEDIR"
  if [ -d /run/systemd/system ] && [ "$UNITDIR" = /etc/systemd/system ]; then systemctl daemon-reload; fi
fi

# ---- what next ---------------------------------------------------------------------------------
cat <<EOF
lsbackup $VERSION installed in $D$PREFIX (commands in $D$BINDIR, configs in $D$SYSCONFDIR, units in $D$UNITDIR)
EOF
[ -z "$KEPT" ] || echo "kept the existing configs:$KEPT (compare with $DOC)"
cat <<EOF

Next steps:
 1. Once per cluster, on the master (keep ca.key there, owner-only):
      lsbackup certs init --dir $PKI
      lsbackup certs issue coordinator --role coordinator --host <master IP> --dir $PKI
      lsbackup certs issue operator --role operator --dir $PKI
      lsbackup certs issue <node> --role agent --host <node IP> --dir $PKI    # each inventory host
    Copy ca.crt, <node>.crt and <node>.key to $PKI on each node (0600, root).
 2. Edit $SYSCONFDIR/agent.yaml (node name, components) on every node, and on the master
    $SYSCONFDIR/coordinator.yaml, cli.yaml and backup.env (LSBACKUP_BUILD_DIR, LSBACKUP_TARGET).
 3. Mount the shared location at $TARGET on every node.
 4. systemctl daemon-reload
    systemctl enable --now lsbackup-agent                      # every node
    systemctl enable --now lsbackup-coordinator lsbackup-backup.timer   # the master
 5. lsbackup agents -b <build dir> -t $TARGET                  # every agent reachable?
    systemctl start lsbackup-backup && journalctl -u lsbackup-backup   # a first backup now
EOF
