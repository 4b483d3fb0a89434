#!/usr/bin/env bash
# Installs the peer FTP servers used by `npm run bench`. Idempotent; safe to re-run.
#  - vsftpd, python3-pyftpdlib: apt (installed system-wide)
#  - FTPS scenarios: python3-openssl (pyftpdlib's TLS_FTPHandler needs PyOpenSSL), curl (the
#    FTPS client), openssl (makes the self-signed certificate)
#  - proftpd, pure-ftpd: conflict with vsftpd in dpkg, so their .debs are downloaded
#    into .bench/debs and unpacked with `dpkg -x` into .bench/root (not installed);
#    proftpd's mod_tls is not in proftpd-core but in proftpd-mod-crypto, unpacked the same way
#  - ftp-srv: npm, into .bench (never into the root project)
set -u
cd "$(dirname "$0")/.."
ROOT_DIR=$PWD
B="$ROOT_DIR/.bench"
mkdir -p "$B/debs" "$B/root"

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

updated=0
apt_update_once() {
  if [ $updated = 0 ]; then
    echo "[setup] apt-get update"
    $SUDO apt-get update -qq || echo "[setup] WARNING: apt-get update failed"
    updated=1
  fi
}

# 1. apt peers
missing=()
for p in vsftpd python3-pyftpdlib python3-openssl curl openssl gcc libc6-dev libssl-dev; do have_pkg "$p" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt_update_once
  echo "[setup] apt-get install ${missing[*]}"
  # vsftpd's postinst may try to start the service; that is harmless (the bench never uses it)
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || echo "[setup] WARNING: apt-get install failed for: ${missing[*]}"
else
  echo "[setup] apt peers already installed (vsftpd, python3-pyftpdlib, python3-openssl, curl, openssl, libssl-dev)"
fi
# The distro vsftpd service is not used by the bench; stop it if the postinst started one.
if command -v systemctl >/dev/null 2>&1; then systemctl stop vsftpd >/dev/null 2>&1 || true; fi

# 2. proftpd + pure-ftpd, unpacked (not installed)
unpack_needed=0
[ -x "$B/root/usr/sbin/proftpd" ] || unpack_needed=1
[ -x "$B/root/usr/sbin/pure-ftpd" ] || unpack_needed=1
[ -x "$B/root/usr/bin/pure-pw" ] || unpack_needed=1
[ -e "$B/root/usr/lib/x86_64-linux-gnu/libhashkit.so.2" ] || unpack_needed=1
[ -e "$B/root/usr/lib/proftpd/mod_tls.so" ] || unpack_needed=1
if [ $unpack_needed = 1 ]; then
  apt_update_once
  want=(proftpd-core proftpd-mod-crypto pure-ftpd pure-ftpd-common)
  # shared libraries they need that this machine lacks
  for p in libhashkit2 libhiredis0.14 libmemcached11 libmemcachedutil2 libpcre2-posix3 libsodium23 libssl3 libidn2-0 libcap2 libacl1 libncursesw6 libtinfo6; do
    have_pkg "$p" || want+=("$p")
  done
  echo "[setup] apt-get download ${want[*]}"
  (cd "$B/debs" && chmod 777 . && apt-get download "${want[@]}") || echo "[setup] WARNING: apt-get download failed"
  for d in "$B"/debs/*.deb; do
    [ -e "$d" ] || continue
    echo "[setup] dpkg -x $(basename "$d")"
    dpkg -x "$d" "$B/root"
  done
else
  echo "[setup] proftpd (with mod_tls) and pure-ftpd already unpacked in .bench/root"
fi

# 3. a unix user bench/bench for the forking peers (vsftpd authenticates through PAM,
#    proftpd/pure-ftpd switch to its uid for each session). No login is needed on it
#    beyond FTP; its home is the bench scratch dir.
if ! id bench >/dev/null 2>&1; then
  echo "[setup] useradd bench"
  $SUDO useradd -M -d "$B/roots" -s /bin/bash bench || echo "[setup] WARNING: useradd bench failed"
else
  echo "[setup] unix user bench exists"
fi
# MD5-crypt rather than Debian's default yescrypt (~30 ms of CPU per check here), so the
# logins/s scenario measures the servers' session setup rather than the password hash.
if ! $SUDO grep -q '^bench:\$1\$' /etc/shadow; then
  echo "[setup] set password bench/bench (MD5-crypt)"
  echo 'bench:bench' | $SUDO chpasswd -c MD5 || echo "[setup] WARNING: chpasswd failed"
fi

# 4. ftp-srv from npm, into .bench
if [ -f "$B/node_modules/ftp-srv/package.json" ]; then
  echo "[setup] ftp-srv already installed in .bench"
else
  [ -f "$B/package.json" ] || echo '{"name":"ftpdlib-bench-peers","private":true}' > "$B/package.json"
  echo "[setup] npm install --prefix .bench ftp-srv"
  npm install --prefix "$B" --no-audit --no-fund ftp-srv || echo "[setup] WARNING: npm install ftp-srv failed"
fi

echo "[setup] done. Run: npm run bench   (or: node bench/run.js --quick)"
