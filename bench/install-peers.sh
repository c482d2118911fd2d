#!/bin/sh
# install-peers.sh — puts vsftpd, proftpd and pure-ftpd side by side for
# `make bench`.
#
# Debian marks the three daemons as conflicting (each Provides and Conflicts
# ftp-server), so apt cannot install them together; and installing one the
# normal way starts it as a system service on port 21, which a benchmark
# must not do. So: apt installs only their shared libraries, and each
# daemon's own package is unpacked with dpkg-deb into a private directory
# ($PEERS/<name>/root) from which the harness runs the binary with its own
# configuration, on loopback ports it chooses. Nothing is started here.
#
# It also creates the system account the peers log in with (they
# authenticate local users through PAM or /etc/shadow) and a PAM service
# for vsftpd. Idempotent; a peer that fails to install is reported and
# skipped, the others go on.
set -u
PEERS=${PEERS:-/var/lib/sluice-bench/peers}
USER_NAME=${BENCH_USER:-sluicebench}
USER_PASS=${BENCH_PASS:-sluicebench}
mkdir -p "$PEERS"
export DEBIAN_FRONTEND=noninteractive

if [ ! -f /var/lib/apt/lists/lock ] || [ -z "$(ls /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
  apt-get update -qq || echo "install-peers: apt-get update failed" >&2
fi

# Runtime libraries of the three daemons (from their Depends lines), plus
# PAM's unix module. These do not conflict with anything.
apt-get install -y -qq --no-install-recommends \
  libcap2 libpam0g libpam-modules libpam-runtime libssl3 libwrap0 \
  libacl1 libcrypt1 libhiredis0.14 libidn2-0 libmemcached11 libmemcachedutil2 \
  libncursesw6 libpcre2-8-0 libpcre2-posix3 libtinfo6 zlib1g libsodium23 \
  openssl >/dev/null || echo "install-peers: some libraries did not install" >&2

unpack() { # name package...
  name=$1; shift
  dir=$PEERS/$name
  if [ -f "$dir/.done" ]; then echo "install-peers: $name already unpacked in $dir"; return 0; fi
  rm -rf "$dir" && mkdir -p "$dir/debs" "$dir/root"
  if ! (cd "$dir/debs" && apt-get download -qq "$@"); then
    echo "install-peers: $name: apt-get download $* failed" >&2; return 1
  fi
  for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir/root" || { echo "install-peers: $name: dpkg-deb -x $deb failed" >&2; return 1; }
    dpkg-deb -f "$deb" Package Version >>"$dir/versions"
  done
  touch "$dir/.done"
  echo "install-peers: $name unpacked in $dir"
}

unpack vsftpd vsftpd
unpack proftpd proftpd-core proftpd-mod-crypto
unpack pure-ftpd pure-ftpd pure-ftpd-common

# The account every server serves. Its home is the data set the harness
# builds, so each peer's login directory is the data set without any
# per-daemon setting. (usermod also moves the home of an account made by
# an older run.)
DATA=${BENCH_DATA:-/var/lib/sluice-bench/data}
mkdir -p "$DATA"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --no-create-home --home-dir "$DATA" --shell /bin/sh "$USER_NAME"
fi
usermod -d "$DATA" "$USER_NAME"
# SHA-512 crypt, not Debian's default yescrypt: with yescrypt the peers
# managed 5-10 logins/s here, a hash benchmark rather than a server one.
echo "$USER_NAME:$USER_PASS" | chpasswd -c SHA512
# proftpd and vsftpd refuse users whose shell is not in /etc/shells.
grep -qx /bin/sh /etc/shells || echo /bin/sh >>/etc/shells

cat >/etc/pam.d/sluice-bench <<'PAM'
# Written by sluice's bench/install-peers.sh for the benchmark's vsftpd.
auth     required pam_unix.so
account  required pam_unix.so
session  required pam_permit.so
PAM
exit 0
