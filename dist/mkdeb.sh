#!/bin/sh
# Builds dist/out/sluice_<version>_<arch>.deb from bin/sluice with
# dpkg-deb only (no network, no debhelper). Usage: dist/mkdeb.sh [OUTDIR]
set -eu
out=${1:-dist/out}
version=$(git describe --tags --always --dirty 2>/dev/null | sed 's/^v//; s/-/+/g' || echo 0)
case "$version" in [0-9]*) ;; *) version="0+$version" ;; esac
arch=$(dpkg --print-architecture)
stage=$(mktemp -d)
chmod 0755 "$stage"
trap 'rm -rf "$stage"' EXIT
make -s install DESTDIR="$stage" PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/usr/lib/systemd/system
mkdir -p "$stage/DEBIAN"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: sluice
Version: $version
Architecture: $arch
Maintainer: sluice developers <dev@sluice-ftp.invalid>
Installed-Size: $size
Section: net
Priority: optional
Provides: ftp-server
Homepage: https://github.com/sluice-ftp/sluice
Description: hardened, high-throughput FTP server
 One process per session, confined with Landlock and seccomp, dropped to
 the account's uid; zero-copy transfers (sendfile, splice) with inline
 XXH64 checksums; the supervisor never reads client bytes.
CONTROL
echo /etc/sluice/sluice.toml > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	# The config holds password hashes: root only.
	chmod 600 /etc/sluice/sluice.toml
	# The user pre-login workers run as (worker_user = "sluice").
	if command -v systemd-sysusers >/dev/null 2>&1; then
		systemd-sysusers sluice.conf
	elif ! getent passwd sluice >/dev/null; then
		adduser --system --group --no-create-home --home /nonexistent sluice
	fi
	if command -v systemd-tmpfiles >/dev/null 2>&1; then
		systemd-tmpfiles --create sluice.conf || true
	fi
	# Without systemd-tmpfiles (containers, chroots) make the same dirs.
	install -d -m 0750 /var/lib/sluice /var/log/sluice
	install -d -m 0755 /srv/sluice
	install -d -m 0755 -o nobody -g nogroup /srv/sluice/demo
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
		systemctl enable sluice.service >/dev/null
		systemctl restart sluice.service
	else
		echo "sluice: no systemd here; start it with: /usr/bin/sluice serve --config /etc/sluice/sluice.toml"
	fi
fi
POSTINST
cat > "$stage/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
	systemctl stop sluice.service || true
	systemctl disable sluice.service >/dev/null || true
fi
PRERM
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm"
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$out/sluice_${version}_${arch}.deb" >/dev/null
echo "$out/sluice_${version}_${arch}.deb"
