#!/usr/bin/env bash
# Install or upgrade meterchat on a Debian 12 host. Run as root from a checkout:
#
#     bash deploy/install.sh --domain chat.example.com
#
# What it does, each step safe to repeat (a second run changes nothing that is in place):
#  1. Debian packages: python3, python3-venv, caddy, coturn, openssl, sqlite3, curl.
#  2. A system user and group `meterchat` without a login shell (/usr/sbin/nologin).
#  3. Builds the wheel from this checkout (or takes --wheel FILE) and installs it into a new
#     virtualenv /opt/meterchat/venvs/VERSION-ID; /opt/meterchat/current points at the one
#     in use, /opt/meterchat/previous at the one before (for a rollback). All root-owned,
#     read-only to the service. The same wheel again is not reinstalled.
#  4. /usr/local/bin/meterchat: the command line for the operator. Run as root, it runs the
#     program as the service user with /etc/meterchat/meterchat.toml and the secrets, from
#     /var/lib/meterchat, so nothing it creates is owned by root.
#  5. /etc/meterchat (root:meterchat 0750): meterchat.toml (0640, written from
#     config.example.toml only when absent: every relative path resolved in
#     /var/lib/meterchat, the public and TURN URLs of --domain) and secrets.env (root 0600,
#     read by systemd only: a generated TURN_SECRET, and TRONGRID_API_KEY, HOT_WALLET_KEY for
#     you to fill in). A config with a path outside /var/lib/meterchat stops the install.
#  6. /var/lib/meterchat (meterchat 0700, the unit's StateDirectory=) with backups/ in it.
#  7. Upgrade: when another version is installed and the database exists, an online backup
#     by the old version (backups/pre-upgrade-...sqlite3) before the switch; a failed
#     backup stops the upgrade. Migrations run when the new version starts.
#  8. systemd units: meterchat.service (LimitNOFILE = 2 x server.max_ws_connections + 1024
#     from the config), the hourly meterchat-backup.timer and meterchat-turn-cert.timer,
#     and a drop-in that keeps coturn from starting without its certificate.
#  9. /etc/caddy/Caddyfile and /etc/turnserver.conf for --domain (the files they replace are
#     kept as *.before-meterchat; files that are already meterchat's are left alone).
# 10. Enables and (re)starts meterchat, Caddy and the timers, waits for /api/health, and
#     gives coturn Caddy's certificate once Caddy has it (then starts coturn).
#
# Options:
#   --domain NAME   the host name users open (DNS A/AAAA record pointing here); needed for a
#                   first install with Caddy and coturn
#   --wheel FILE    install this wheel instead of building one from the checkout
#   --root DIR      install everything under DIR instead of / (for tests: no packages, no
#                   systemctl, no Caddy or coturn service, files under DIR)
#   --user NAME     the service user (default meterchat)
#   --no-packages   skip apt-get
set -euo pipefail
umask 022

domain=""
wheel=""
root=""
user=meterchat
packages=yes
while [ $# -gt 0 ]; do
    case "$1" in
        --domain) domain=$2; shift ;;
        --wheel) wheel=$(readlink -f "$2"); shift ;;
        --root) root=$(readlink -f "$2"); shift ;;
        --user) user=$2; shift ;;
        --no-packages) packages=no ;;
        -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run me as root (sudo bash deploy/install.sh ...)"
src=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$src/config.example.toml" ] || die "run me from a meterchat checkout ($src has no config.example.toml)"

opt=$root/opt/meterchat
etc=$root/etc/meterchat
state=$root/var/lib/meterchat
bindir=$root/usr/local/bin
unitdir=$root/etc/systemd/system
config=$etc/meterchat.toml
secrets=$etc/secrets.env
systemd=no
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemd=yes; fi

# 1. Packages
if [ -z "$root" ] && [ "$packages" = yes ]; then
    say "Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq python3 python3-venv caddy coturn openssl sqlite3 curl \
        ca-certificates >/dev/null
fi
# Debian's Python: the virtualenvs point at it, so it must be one the service user can run.
python=${PYTHON:-/usr/bin/python3}
[ -x "$python" ] || die "$python is missing: apt-get install python3 python3-venv"

# 2. The service user: a system account with no login shell, home = its state directory.
if ! getent group "$user" >/dev/null; then
    groupadd --system "$user"
fi
if ! getent passwd "$user" >/dev/null; then
    say "system user $user"
    useradd --system --gid "$user" --home-dir "$state" --no-create-home \
        --shell /usr/sbin/nologin --comment "meterchat service" "$user"
elif [ "$(getent passwd "$user" | cut -d: -f7)" != /usr/sbin/nologin ]; then
    say "system user $user: no login shell"
    usermod --shell /usr/sbin/nologin "$user"
fi

# 3. The wheel, in a virtualenv of its own.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -z "$wheel" ]; then
    say "building the wheel from $src"
    "$python" -m venv "$work/build"
    "$work/build/bin/pip" wheel --quiet --no-deps --wheel-dir "$work/dist" "$src" \
        >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; die "the wheel did not build"; }
    wheel=$(ls "$work"/dist/meterchat-*.whl)
fi
[ -f "$wheel" ] || die "no wheel at $wheel"
# The same files make the same id, however often the wheel is rebuilt (its RECORD lists each
# file's hash; zip timestamps do not count).
wheel_id=$("$python" - "$wheel" <<'PY'
import hashlib, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    record = next(n for n in z.namelist() if n.endswith(".dist-info/RECORD"))
    version = record.split("/")[0].removesuffix(".dist-info").split("-", 1)[1]
    print(f"{version}-{hashlib.sha256(z.read(record)).hexdigest()[:12]}")
PY
)
venv=$opt/venvs/$wheel_id
install -d -m 0755 "$opt" "$opt/venvs" "$opt/bin"
if [ ! -f "$venv/.installed" ]; then
    say "installing meterchat $wheel_id into $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # An upgrade starts from the packages of the version it replaces (same Python only): pip
    # then reinstalls meterchat and adds or changes only what its requirements ask, instead
    # of unpacking and compiling every dependency again. The running version's venv is not
    # touched, so a rollback to it still works.
    purelib='import sysconfig; print(sysconfig.get_paths()["purelib"])'
    if [ -L "$opt/current" ] && [ -f "$opt/current/.installed" ] \
        && [ "$("$opt/current/bin/python" -c 'import sys; print(sys.version)')" \
             = "$("$venv/bin/python" -c 'import sys; print(sys.version)')" ]; then
        cp -a "$("$opt/current/bin/python" -c "$purelib")/." "$("$venv/bin/python" -c "$purelib")/"
        "$venv/bin/pip" install --quiet --no-deps --force-reinstall "$wheel" \
            >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; die "pip could not install $wheel"; }
    fi
    # With the `fast` extra (uvloop, orjson) where it installs; without it meterchat runs on
    # asyncio's own loop and the standard json module.
    if ! "$venv/bin/pip" install --quiet "$wheel[fast]" >"$work/pip.log" 2>&1; then
        say "the fast extra (uvloop, orjson) did not install; installing without it"
        "$venv/bin/pip" install --quiet "$wheel" >"$work/pip.log" 2>&1 \
            || { cat "$work/pip.log" >&2; die "pip could not install $wheel"; }
    fi
    touch "$venv/.installed"
else
    say "meterchat $wheel_id is installed already"
fi
old=""
if [ -L "$opt/current" ]; then old=$(readlink -f "$opt/current"); fi
install -m 0755 "$src/deploy/meterchat-backup" "$opt/bin/meterchat-backup"
install -m 0755 "$src/deploy/meterchat-turn-cert" "$opt/bin/meterchat-turn-cert"
sed -i -e "s#/opt/meterchat#$opt#g; s#/etc/meterchat#$etc#g; s#/var/lib/meterchat#$state#g" \
    "$opt/bin/meterchat-backup"

# 4. The operator's command line.
install -d -m 0755 "$bindir"
cat >"$work/meterchat" <<EOF
#!/bin/sh
# meterchat for the operator (installed by deploy/install.sh): the installed program, as the
# service user $user, with $config, from $state (relative paths are relative to it).
set -eu
program=$opt/current/bin/meterchat
config=$config
secrets=$secrets
user=$user
umask 077
has_config=no
for arg in "\$@"; do
    case "\$arg" in --config|--config=*) has_config=yes ;; esac
done
[ "\$has_config" = yes ] || set -- "\$@" --config "\$config"
if [ "\$(id -u)" = 0 ]; then
    # The service's environment: the secrets systemd gives it (KEY=value lines).
    if [ -r "\$secrets" ]; then
        while IFS= read -r line || [ -n "\$line" ]; do
            case "\$line" in ''|'#'*) continue ;; *=*) export "\$line" ;; esac
        done <"\$secrets"
    fi
    cd $state
    exec setpriv --reuid="\$user" --regid="\$user" --init-groups --no-new-privs \\
        env HOME=$state "\$program" "\$@"
fi
if [ "\$(id -un)" = "\$user" ]; then
    cd $state
    exec "\$program" "\$@"
fi
echo "meterchat: run this as root (sudo meterchat ...) or as \$user" >&2
exit 1
EOF
install -m 0755 "$work/meterchat" "$bindir/meterchat"
ln -sfn "$opt/bin/meterchat-turn-cert" "$bindir/meterchat-turn-cert"

# 5. Config and secrets.
install -d -m 0750 -o root -g "$user" "$etc"
if [ ! -f "$config" ]; then
    say "writing $config"
    "$venv/bin/python" "$src/deploy/render_config.py" render "$src/config.example.toml" \
        "$state" ${domain:+"$domain"} >"$work/meterchat.toml"
    install -m 0640 -o root -g "$user" "$work/meterchat.toml" "$config"
else
    chown root:"$user" "$config"
    chmod 0640 "$config"
fi
"$venv/bin/python" "$src/deploy/render_config.py" check "$config" "$state" \
    || die "fix $config (the service can write only under $state)"
if [ ! -f "$secrets" ]; then
    say "writing $secrets (root only)"
    (umask 077; {
        echo "# meterchat's secrets, read by systemd (root only, mode 0600): KEY=value lines,"
        echo "# no quotes. The TURN secret must equal static-auth-secret in /etc/turnserver.conf."
        echo "TURN_SECRET=$(openssl rand -hex 32)"
        echo "# TronGrid API key (mainnet; nile works without one):"
        echo "#TRONGRID_API_KEY="
        echo "# The hot wallet's private key (hex) for withdrawals (chain.hot_wallet_key_env):"
        echo "#HOT_WALLET_KEY="
    } >"$secrets")
fi
chown root:root "$secrets"
chmod 0600 "$secrets"

# 6. State.
install -d -m 0700 -o "$user" -g "$user" "$state" "$state/backups"

# 7. Upgrade: a backup by the old version, then the switch.
db=$("$venv/bin/python" "$src/deploy/render_config.py" value "$config" database.path)
if [ -n "$old" ] && [ "$old" != "$(readlink -f "$venv")" ] && [ -f "$db" ]; then
    backup="$state/backups/pre-upgrade-$(date -u +%Y%m%dT%H%M%SZ)-from-$(basename "$old").sqlite3"
    say "backing up the database before the upgrade: $backup"
    (umask 077; cd "$state" && setpriv --reuid="$user" --regid="$user" --init-groups \
        --no-new-privs "$old/bin/meterchat" backup --config "$config" "$backup") \
        || die "the backup failed: nothing was changed"
fi
if [ "$old" != "$(readlink -f "$venv")" ]; then
    if [ -n "$old" ]; then ln -sfn "$old" "$opt/previous"; fi
    ln -sfn "$venv" "$opt/current.new"
    mv -T "$opt/current.new" "$opt/current"
    say "meterchat $wheel_id is the current version"
fi
# Keep the current and the previous virtualenvs only.
for dir in "$opt"/venvs/*; do
    real=$(readlink -f "$dir")
    if [ "$real" != "$(readlink -f "$opt/current")" ] \
        && { [ ! -L "$opt/previous" ] || [ "$real" != "$(readlink -f "$opt/previous")" ]; }; then
        rm -rf "$dir"
    fi
done

# 8. systemd units.
install -d -m 0755 "$unitdir" "$unitdir/coturn.service.d"
max_ws=$("$venv/bin/python" "$src/deploy/render_config.py" value "$config" server.max_ws_connections)
nofile=$((2 * max_ws + 1024))
render_unit() {
    sed -e "s#/opt/meterchat#$opt#g; s#/etc/meterchat#$etc#g" \
        -e "s#^User=meterchat#User=$user#; s#^Group=meterchat#Group=$user#" \
        -e "s#^LimitNOFILE=.*#LimitNOFILE=$nofile#" "$1" >"$work/unit"
    if [ -n "$root" ]; then
        # StateDirectory= is always under /var/lib: a unit under another root names its
        # state directory as the one writable path instead.
        sed -i -e "s#/var/lib/meterchat#$state#g" "$work/unit"
        sed -i -e "s#^StateDirectory=.*#ReadWritePaths=$state#; /^StateDirectoryMode=/d" \
            "$work/unit"
    fi
    install -m 0644 "$work/unit" "$2"
}
render_unit "$src/deploy/meterchat.service" "$unitdir/meterchat.service"
render_unit "$src/deploy/meterchat-backup.service" "$unitdir/meterchat-backup.service"
render_unit "$src/deploy/meterchat-turn-cert.service" "$unitdir/meterchat-turn-cert.service"
install -m 0644 "$src/deploy/meterchat-backup.timer" "$src/deploy/meterchat-turn-cert.timer" "$unitdir/"
render_unit "$src/deploy/coturn-meterchat.conf" "$unitdir/coturn.service.d/meterchat.conf"

# 9. Caddy and coturn for the domain.
replace_config() {  # file, new content file: keep an operator's own file once, aside
    if [ -f "$1" ] && grep -q meterchat "$1"; then return 1; fi
    if [ -f "$1" ] && [ ! -f "$1.before-meterchat" ]; then cp -p "$1" "$1.before-meterchat"; fi
    install -m "$3" -o root -g "$4" "$2" "$1"
}
if [ -n "$domain" ]; then
    install -d -m 0755 "$root/etc/caddy"
    sed "s/chat\.example\.com/$domain/g" "$src/deploy/Caddyfile" >"$work/Caddyfile"
    if replace_config "$root/etc/caddy/Caddyfile" "$work/Caddyfile" 0644 root; then
        say "wrote $root/etc/caddy/Caddyfile for $domain"
    fi
    turn_secret=$(sed -n 's/^TURN_SECRET=//p' "$secrets" | tail -n 1)
    sed -e "s/chat\.example\.com/$domain/g" \
        -e "s/^static-auth-secret=.*/static-auth-secret=$turn_secret/" \
        "$src/deploy/turnserver.conf" >"$work/turnserver.conf"
    turn_group=root
    if getent group turnserver >/dev/null; then turn_group=turnserver; fi
    if replace_config "$root/etc/turnserver.conf" "$work/turnserver.conf" 0640 "$turn_group"; then
        say "wrote $root/etc/turnserver.conf for $domain"
    fi
fi

# 10. Services.
if [ "$systemd" = no ]; then
    say "installed under ${root:-/}; systemd is not running here, so nothing was started"
    exit 0
fi
systemctl daemon-reload
systemctl enable --quiet meterchat.service meterchat-backup.timer meterchat-turn-cert.timer
systemctl restart meterchat.service
systemctl start meterchat-backup.timer meterchat-turn-cert.timer
port=$("$venv/bin/python" "$src/deploy/render_config.py" value "$config" server.port)
say "waiting for meterchat to answer on 127.0.0.1:$port"
for _ in $(seq 1 60); do
    if curl -fs "http://127.0.0.1:$port/api/health" >/dev/null; then break; fi
    sleep 1
done
curl -fs "http://127.0.0.1:$port/api/health" >/dev/null \
    || die "meterchat does not answer: journalctl -u meterchat -n 50"
say "meterchat answers on 127.0.0.1:$port"
if [ -n "$domain" ]; then
    caddy validate --adapter caddyfile --config /etc/caddy/Caddyfile >/dev/null 2>&1 \
        || die "caddy validate refuses /etc/caddy/Caddyfile"
    systemctl enable --quiet caddy
    systemctl reload-or-restart caddy
    say "waiting for Caddy's certificate for $domain (needs DNS and ports 80/443 open)"
    for _ in $(seq 1 24); do
        if "$opt/bin/meterchat-turn-cert" >/dev/null 2>&1; then break; fi
        sleep 5
    done
    systemctl enable --quiet coturn
    if "$opt/bin/meterchat-turn-cert"; then
        systemctl restart coturn
        say "coturn runs with the certificate for $domain"
    else
        # Not with Debian's default config either: it starts again, with ours, once the
        # hourly meterchat-turn-cert.timer finds Caddy's certificate.
        systemctl stop coturn || true
        echo "install.sh: coturn waits for Caddy's certificate; once https://$domain works," \
             "run: meterchat-turn-cert (or wait an hour)" >&2
    fi
fi
say "done: https://${domain:-your-host}/ (journalctl -u meterchat for the logs)"
