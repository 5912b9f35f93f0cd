#!/usr/bin/env bash
# Build (or refresh) the QEMU guest used by the SR-IOV test bed.
#
# Produces, under target/qemu-guest/:
#   vmlinuz              stock Debian kernel (extracted from the .deb, never installed)
#   base.cpio.gz         busybox, iproute2 `ip`, jq, kernel modules, /init, /sbin/modload
#   vfguard.cpio.gz      /vfguard and its shared libraries
#   kernel-release       the guest kernel's `uname -r`
# boot.sh concatenates these layers with a per-run layer holding /test.sh.
#
# Idempotent: every step is skipped when its output is up to date, so a
# rerun with nothing changed takes well under a second.
#
# Environment:
#   VFGUARD_BIN            binary to put in the guest (default target/release/vfguard)
#   VFGUARD_GUEST_STRIP    1 (default) strips debug info from the guest copy; 0 keeps it
#   GUEST_KERNEL_PKG       kernel package to use (default: what linux-image-amd64 depends on)
#   GUEST_EXTRA_MODULES    extra module names to ship (with dependencies)
#   VFGUARD_QEMU_QUIET     1 to silence progress messages
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=$ROOT/target/qemu-guest
VFGUARD_BIN=${VFGUARD_BIN:-$ROOT/target/release/vfguard}
STRIP_GUEST=${VFGUARD_GUEST_STRIP:-1}
GUEST_MODULE_SET="igb igbvf aer_inject ${GUEST_EXTRA_MODULES:-}"
BACKPORTS_LIST=/etc/apt/sources.list.d/vfguard-qemu-backports.sources

log() { [ "${VFGUARD_QEMU_QUIET:-0}" = 1 ] || echo "build-guest: $*" >&2; }
die() { echo "build-guest: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (installs packages with apt-get)"
mkdir -p "$OUT"

CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

# ---------------------------------------------------------------- apt helpers

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# Print "URI|SIGNED_BY" of the first enabled apt source serving suite $1,
# looking at both one-line (.list) and deb822 (.sources) files.
apt_source_for_suite() {
    local suite=$1 f
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -r "$f" ] || continue
            awk -v s="$suite" '
                /^[[:space:]]*#/ { next }
                $1 == "deb" {
                    i = 2; opts = ""
                    if ($2 ~ /^\[/) {
                        while (i <= NF && $i !~ /\]$/) { opts = opts " " $i; i++ }
                        opts = opts " " $i; i++
                    }
                    if ($(i + 1) == s) {
                        sb = ""
                        if (match(opts, /signed-by=[^] ]+/)) sb = substr(opts, RSTART + 10, RLENGTH - 10)
                        print $i "|" sb; exit
                    }
                }' "$f"
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -r "$f" ] || continue
            awk -v s="$suite" '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && enabled != "no" && index(" " suites " ", " " s " ") && uri != "") {
                        print uri "|" sb; found = 1; exit
                    }
                    types = suites = uri = sb = enabled = ""
                }
                /^[[:space:]]*$/ { flush(); next }
                /^#/ || /^[[:space:]]/ { next }
                {
                    key = tolower($1); sub(/:$/, "", key)
                    val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
                }
                key == "types"     { types = val }
                key == "suites"    { suites = val }
                key == "uris"      { split(val, a, " "); uri = a[1] }
                key == "signed-by" { if (val ~ /^\//) sb = val }
                key == "enabled"   { enabled = tolower(val) }
                END { if (!found) flush() }' "$f"
        done
    } | head -n 1
}

ensure_backports_source() {
    local bp="$CODENAME-backports"
    if [ -n "$(apt_source_for_suite "$bp")" ]; then
        return 1 # already configured (by us or someone else); nothing new
    fi
    local src uri sb
    src=$(apt_source_for_suite "$CODENAME")
    [ -n "$src" ] || die "no apt source for suite '$CODENAME' found to derive the $bp mirror from"
    uri=${src%%|*}
    sb=${src#*|}
    if [ -z "$sb" ] && [ -r /usr/share/keyrings/debian-archive-keyring.gpg ]; then
        sb=/usr/share/keyrings/debian-archive-keyring.gpg
    fi
    log "adding $bp apt source (same mirror as $CODENAME) in $BACKPORTS_LIST"
    {
        echo "# Added by vfguard tests/qemu/build-guest.sh: QEMU with the igb device"
        echo "Types: deb"
        echo "URIs: $uri"
        echo "Suites: $bp"
        echo "Components: main"
        [ -z "$sb" ] || echo "Signed-By: $sb"
    } >"$BACKPORTS_LIST"
    return 0
}

qemu_has_igb() {
    command -v qemu-system-x86_64 >/dev/null 2>&1 &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q 'name "igb"'
}

APT_UPDATED=0
apt_update_all() {
    [ "$APT_UPDATED" = 1 ] && return 0
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
}

apt_install() { # apt_install [apt-get options] PKG...
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_host_packages() {
    local want=() p
    for p in busybox-static cpio iproute2 kmod xz-utils zstd gzip binutils jq; do
        pkg_installed "$p" || want+=("$p")
    done
    if [ "${#want[@]}" -gt 0 ]; then
        log "installing ${want[*]}"
        apt_install "${want[@]}" || { apt_update_all; apt_install "${want[@]}"; }
    fi
    if ! qemu_has_igb; then
        if ensure_backports_source; then
            # Fetch just the new suite's index; fall back to a full update.
            apt-get update -qq -o Dir::Etc::SourceList="$BACKPORTS_LIST" \
                -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0 || apt_update_all
        fi
        log "installing qemu-system-x86 from $CODENAME-backports"
        apt_install -t "$CODENAME-backports" qemu-system-x86 ||
            { apt_update_all; apt_install -t "$CODENAME-backports" qemu-system-x86; }
        qemu_has_igb || die "installed qemu-system-x86_64 has no igb device"
    fi
}

# ---------------------------------------------------------------- kernel

ensure_kernel() {
    local pkg
    if [ -n "${GUEST_KERNEL_PKG:-}" ]; then
        pkg=$GUEST_KERNEL_PKG
    elif [ -s "$OUT/kernel-pkg" ] && [ -d "$OUT/kernel/$(cat "$OUT/kernel-pkg")" ]; then
        pkg=$(cat "$OUT/kernel-pkg") # cached: no apt look-up, works offline
    else
        pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
            awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
        if [ -z "$pkg" ]; then
            apt_update_all
            pkg=$(apt-cache depends linux-image-amd64 |
                awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
        fi
        [ -n "$pkg" ] || die "cannot resolve the kernel package behind linux-image-amd64"
    fi
    KDIR=$OUT/kernel/$pkg
    if [ ! -e "$KDIR/.extracted" ]; then
        log "downloading and extracting $pkg"
        rm -rf "$KDIR" "$OUT/deb"
        mkdir -p "$OUT/deb" "$KDIR"
        chmod 777 "$OUT/deb" # lets apt's _apt user write the download
        (cd "$OUT/deb" && apt-get download -qq "$pkg") ||
            { apt_update_all; (cd "$OUT/deb" && apt-get download -qq "$pkg"); }
        dpkg-deb -x "$OUT"/deb/"${pkg}"_*.deb "$KDIR/root"
        rm -rf "$OUT/deb"
        touch "$KDIR/.extracted"
    fi
    echo "$pkg" >"$OUT/kernel-pkg"
    KREL=$(basename "$(ls -d "$KDIR"/root/lib/modules/*/ | head -n 1)")
    [ -n "$KREL" ] || die "no lib/modules in $pkg"
    MODROOT=$KDIR/root/lib/modules/$KREL
    # The .deb ships no modules.dep (depmod runs at install time): make one.
    [ -s "$MODROOT/modules.dep" ] || depmod -b "$KDIR/root" "$KREL"
    local vmlinuz=$KDIR/root/boot/vmlinuz-$KREL
    [ -f "$vmlinuz" ] || die "no $vmlinuz"
    if ! cmp -s "$vmlinuz" "$OUT/vmlinuz"; then cp "$vmlinuz" "$OUT/vmlinuz"; fi
    echo "$KREL" >"$OUT/kernel-release"
}

# ---------------------------------------------------------------- initramfs helpers

# Copy an ELF executable plus every shared library ldd reports into $2,
# keeping absolute paths.
copy_with_libs() {
    local bin=$1 dest=$2 target=${3:-$1}
    mkdir -p "$dest$(dirname "$target")"
    cp -L "$bin" "$dest$target"
    ldd "$bin" 2>/dev/null | awk '
        $2 == "=>" && $3 ~ /^\// { print $3 }
        $1 ~ /^\// { print $1 }' | while read -r lib; do
        mkdir -p "$dest$(dirname "$lib")"
        [ -e "$dest$lib" ] || cp -L "$lib" "$dest$lib"
    done
}

pack_cpio() { # pack_cpio DIR OUTFILE
    (cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
        cpio --quiet -o -H newc --owner=0:0 --reproducible) | gzip -6 -n >"$2.tmp"
    mv "$2.tmp" "$2"
}

# Resolve module $1 (and, first, its dependencies) from modules.dep; append
# the module paths relative to $MODROOT to MOD_ORDER in load order.
declare -A MOD_SEEN=()
declare -A MODDEP_PATH=()
declare -A MODDEP_DEPS=()
load_moddep() {
    local path deps name
    while IFS=: read -r path deps; do
        name=$(basename "$path"); name=${name%%.ko*}; name=${name//-/_}
        MODDEP_PATH[$name]=$path
        MODDEP_DEPS[$name]=$deps
    done <"$MODROOT/modules.dep"
}
mod_closure() {
    local name=${1//-/_} d dn
    [ -n "${MOD_SEEN[$name]:-}" ] && return 0
    MOD_SEEN[$name]=1
    [ -n "${MODDEP_PATH[$name]:-}" ] || {
        grep -qE "/${1}\.ko" "$MODROOT/modules.builtin" 2>/dev/null && return 0
        die "module $1 not found in $KREL"
    }
    for d in ${MODDEP_DEPS[$name]}; do
        dn=$(basename "$d"); dn=${dn%%.ko*}
        mod_closure "$dn"
    done
    MOD_ORDER+=("${MODDEP_PATH[$name]}")
}

write_init() {
    cat >"$1/init" <<'EOF'
#!/bin/sh
# vfguard QEMU test bed /init (generated by tests/qemu/build-guest.sh)
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64
export HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
hostname vfguard-guest
ip link set lo up 2>/dev/null
# GUEST_MODULES comes from the kernel command line (boot.sh); "-" means none.
mods=${GUEST_MODULES:-igb,igbvf,aer_inject}
[ "$mods" = "-" ] && mods=
[ -z "$mods" ] || modload $(echo "$mods" | tr ',' ' ')
read up _ </proc/uptime
echo; echo "VFGUARD-GUEST-START kernel=$(uname -r) uptime=$up"
rc=127
if [ -f /test.sh ]; then
    cd /tmp
    # Source the prelude first (it makes `ip` mean iproute2, see there).
    sh -c '. /lib/vfguard-guest/prelude.sh && . /test.sh' /test.sh
    rc=$?
else
    echo "VFGUARD-GUEST: no /test.sh in the initramfs"
fi
read up _ </proc/uptime
echo "VFGUARD-GUEST-END uptime=$up"
echo "VFGUARD-GUEST-EXIT=$rc"
sync
poweroff -f
EOF
    chmod 755 "$1/init"

    mkdir -p "$1/lib/vfguard-guest"
    cat >"$1/lib/vfguard-guest/prelude.sh" <<'EOF'
# Sourced by /init before /test.sh (same shell, so these functions are
# visible to the test script and its subshells, but not to child programs).

# Debian's busybox-static runs its own applets before searching PATH, so a
# bare `ip` would be busybox's cut-down applet. A function wins over applets.
# Programs that exec `ip` themselves (timeout, xargs...) still get the applet:
# give them /usr/sbin/ip.
ip() { /usr/sbin/ip "$@"; }

# uptime_s: seconds since guest boot.
uptime_s() { read -r _u _ </proc/uptime; echo "$_u"; }

# kmsg_dump: print every /dev/kmsg record (with its SUBSYSTEM=/DEVICE=
# dictionary lines) without blocking at the end of the buffer.
kmsg_dump() { timeout 1 cat /dev/kmsg 2>/dev/null; true; }

# find_pci_dev VENDOR DEVICE [N]: print the Nth (default 0) PCI address
# with that vendor/device id, e.g. find_pci_dev 8086 10c9 for an 82576 PF.
find_pci_dev() {
    _n=${3:-0}
    for _d in /sys/bus/pci/devices/*; do
        [ "$(cat "$_d/vendor")" = "0x$1" ] && [ "$(cat "$_d/device")" = "0x$2" ] || continue
        [ "$_n" = 0 ] && { echo "${_d##*/}"; return 0; }
        _n=$((_n - 1))
    done
    return 1
}

# netdev_of PCI_ADDR: print the (first) network interface of a PCI function.
netdev_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n 1; }
EOF

    mkdir -p "$1/sbin"
    cat >"$1/sbin/modload" <<'EOF'
#!/bin/sh
# modload MODULE [param=value...] [MODULE [param=value...]]...
# insmod MODULE after its dependencies (from vfguard-modules.dep); modules
# already loaded are skipped. Params apply to the module they follow.
dir=/lib/modules/$(uname -r)
rc=0
load_one() { # load_one NAME PARAMS...
    n=$(echo "$1" | tr - _); shift
    line=$(grep "^$n:" "$dir/vfguard-modules.dep")
    [ -n "$line" ] || { echo "modload: unknown module $n" >&2; rc=1; return; }
    set -- ${line#*:} -- "$@"
    paths=
    while [ "$1" != "--" ]; do paths="$paths $1"; shift; done
    shift
    for p in $paths; do
        m=$(basename "$p" .ko | tr - _)
        [ -d "/sys/module/$m" ] && continue
        if [ "$m" = "$n" ]; then insmod "$dir/$p" "$@"; else insmod "$dir/$p"; fi || rc=1
    done
}
cur=; params=
for a in "$@"; do
    case $a in
        *=*) params="$params $a" ;;
        *) [ -z "$cur" ] || load_one "$cur" $params; cur=$a; params= ;;
    esac
done
[ -z "$cur" ] || load_one "$cur" $params
exit $rc
EOF
    chmod 755 "$1/sbin/modload"
}

build_base() {
    local bb ipbin jqbin stamp
    bb=$(command -v busybox || true)
    [ -x /bin/busybox ] && bb=/bin/busybox
    [ -n "$bb" ] || die "busybox not found"
    ipbin=$(command -v ip)
    jqbin=$(command -v jq) || die "jq not found"
    # Everything the base layer depends on, hashed.
    stamp=$({
        cat "${BASH_SOURCE[0]}"
        echo "$KREL $GUEST_MODULE_SET"
        dpkg-query -W -f='${Package}=${Version}\n' busybox-static iproute2 jq libc6 2>/dev/null
    } | sha256sum | cut -d' ' -f1)
    if [ -f "$OUT/base.cpio.gz" ] && [ "$(cat "$OUT/base.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    log "building base initramfs layer ($KREL)"
    local R=$OUT/base-root
    rm -rf "$R"
    mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,etc,mnt,var/log}
    cp "$bb" "$R/bin/busybox"
    local a
    for a in $("$R/bin/busybox" --list); do
        case $a in busybox | ip) continue ;; esac
        ln -s busybox "$R/bin/$a"
    done
    copy_with_libs "$ipbin" "$R" /usr/sbin/ip
    copy_with_libs "$jqbin" "$R" /usr/bin/jq # guest checks parse vfguard's and ip's JSON
    echo "root:x:0:0:root:/root:/bin/sh" >"$R/etc/passwd"
    echo "root:x:0:" >"$R/etc/group"

    # Kernel modules: the closure of $GUEST_MODULE_SET, decompressed.
    load_moddep
    local kmd=$R/lib/modules/$KREL m p order
    mkdir -p "$kmd"
    : >"$kmd/vfguard-modules.dep"
    for m in $GUEST_MODULE_SET; do
        order=
        MOD_SEEN=()
        MOD_ORDER=()
        mod_closure "$m"
        for p in "${MOD_ORDER[@]}"; do
            local dst=${p%.xz}; dst=${dst%.zst}; dst=${dst%.gz}
            if [ ! -f "$kmd/$dst" ]; then
                mkdir -p "$kmd/$(dirname "$dst")"
                case $p in
                    *.ko.xz) xz -dc "$MODROOT/$p" >"$kmd/$dst" ;;
                    *.ko.zst) zstd -qdc "$MODROOT/$p" >"$kmd/$dst" ;;
                    *.ko.gz) gzip -dc "$MODROOT/$p" >"$kmd/$dst" ;;
                    *) cp "$MODROOT/$p" "$kmd/$dst" ;;
                esac
            fi
            order="$order $dst"
        done
        echo "${m//-/_}:$order" >>"$kmd/vfguard-modules.dep"
    done
    cp "$MODROOT/modules.builtin" "$kmd/" 2>/dev/null || true
    write_init "$R"
    echo "$KREL" >"$R/etc/vfguard-guest-kernel"
    pack_cpio "$R" "$OUT/base.cpio.gz"
    echo "$stamp" >"$OUT/base.stamp"
    rm -rf "$R"
}

build_vfguard_layer() {
    [ -x "$VFGUARD_BIN" ] || die "$VFGUARD_BIN missing: run 'cargo build --release' first (or set VFGUARD_BIN)"
    local stamp
    stamp=$({ sha256sum <"$VFGUARD_BIN"; echo "strip=$STRIP_GUEST"; } | sha256sum | cut -d' ' -f1)
    if [ -f "$OUT/vfguard.cpio.gz" ] && [ "$(cat "$OUT/vfguard.stamp" 2>/dev/null)" = "$stamp" ]; then
        return 0
    fi
    log "building vfguard initramfs layer from $VFGUARD_BIN"
    local R=$OUT/vfguard-root
    rm -rf "$R"
    mkdir -p "$R"
    copy_with_libs "$VFGUARD_BIN" "$R" /vfguard
    if [ "$STRIP_GUEST" = 1 ]; then strip --strip-debug "$R/vfguard"; fi
    pack_cpio "$R" "$OUT/vfguard.cpio.gz"
    echo "$stamp" >"$OUT/vfguard.stamp"
    rm -rf "$R"
}

ensure_host_packages
ensure_kernel
build_base
build_vfguard_layer
log "guest ready: $OUT (kernel $KREL)"
