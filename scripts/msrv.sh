#!/usr/bin/env bash
# Is `rust-version` (root Cargo.toml, every crate opts in) true for the workspace as locked?
# Nothing but Debian's packages can bring an older compiler here, so the check builds with the
# newest Debian rustc that is no newer than the rust-version (rustc-web 1.85 on bookworm),
# installed with apt when missing (needs root; pinned, apart from rustup's toolchain in PATH):
#   1. every crate declares the workspace's rust-version;
#   2. no locked dependency (all targets, this platform) declares a newer one;
#   3. `cargo check --workspace --all-targets --locked` with that compiler, in target/msrv.
# When that compiler is older than the rust-version, step 3 ignores the declared versions (step
# 2 covers them) and lets the crates BRIDGE names, only they, use the features it names, each
# stable since a version no newer than the rust-version (RUSTC_BOOTSTRAP and -Zcrate-attr). What
# builds with the older compiler builds with the rust-version's, and CI's clippy step
# (`incompatible_msrv`) checks every std API the workspace calls against the rust-version.
#
#   scripts/msrv.sh        prints one verdict line; the compiler's errors too when it fails
set -euo pipefail

# Step 3's rustc wrapper (RUSTC_WRAPPER is this script): a crate BRIDGE names gets its features.
if [ "${VFGUARD_MSRV_WRAP:-0}" = 1 ]; then
    name='' prev='' feats=''
    for a in "$@"; do [ "$prev" = --crate-name ] && name=$a; prev=$a; done
    for e in ${VFGUARD_MSRV_FEATURES:-}; do
        if [ "${e%%:*}" = "$name" ] || { [ "${e%%:*}" = workspace ] && [ -n "${CARGO_PRIMARY_PACKAGE:-}" ]; }; then
            feats+=${feats:+,}${e#*:}
        fi
    done
    [ -z "$feats" ] || RUSTC_BOOTSTRAP=1 exec "$@" "-Zcrate-attr=feature($feats)"
    exec "$@"
fi

# What the code uses that is stable since a version between Debian's compiler and the
# rust-version, as crate:feature=version; crate is rustc's crate name, or "workspace" for the
# workspace's own crates (crates/sim/src/lib.rs, crates/journal's crash test and record bench
# call u64::is_multiple_of); quick-xml 0.42 (topology's libvirt XML reader; rust-version 1.86)
# calls str::split_at in const fns. The fleet's async-nats brings `time` and `url` (idna): they
# are locked at time 0.3.41 and idna_adapter 1.1.0, whose code builds with 1.85 (time 0.3.55 and
# the icu crates of idna_adapter 1.2 call str::from_utf8_unchecked and let chains, which no
# feature flag brings to 1.85); `cargo update` keeps them unless told.
BRIDGE="workspace:unsigned_is_multiple_of=1.87 quick_xml:const_str_split_at=1.86"

cd "$(dirname "$0")/.."
root=$PWD
fail() { echo "msrv: FAIL: $*" >&2; exit 1; }
norm() { case $1 in *.*.*) echo "$1" ;; *) echo "$1.0" ;; esac; }   # 1.88 -> 1.88.0
le() { [ "$(printf '%s\n%s\n' "$(norm "$1")" "$(norm "$2")" | sort -V | head -n1)" = "$(norm "$1")" ]; }

msrv=$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' Cargo.toml)
[ -n "$msrv" ] || fail "no rust-version in the root Cargo.toml's [workspace.package]"

apt_log=${TMPDIR:-/tmp}/msrv-apt.log
apt_quiet() { DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$apt_log" 2>&1; }
root_or_fail() { [ "$(id -u)" = 0 ] || fail "$* needs root (apt-get); run: sudo scripts/msrv.sh"; }

# Debian's newest rustc no newer than the rust-version ("package version"), from apt's lists.
pick() {
    local pkg v best='' bestpkg=''
    for pkg in rustc-web rustc; do
        while read -r v; do
            le "${v%%[+~-]*}" "$msrv" || continue
            if [ -z "$best" ] || le "${best%%[+~-]*}" "${v%%[+~-]*}"; then best=$v bestpkg=$pkg; fi
        done < <(apt-cache madison "$pkg" 2>/dev/null | awk -F' *[|] *' '{print $2}')
    done
    [ -n "$best" ] && echo "$bestpkg $best"
}
# The rustc package at its version, with its cargo and standard library at the same version
# where Debian has them (rustc-web's do).
install() {
    local p want=("$pkg=$ver")
    for p in "cargo$suffix" "libstd-rust$suffix-dev"; do
        if apt-cache madison "$p" | awk -F' *[|] *' '{print $2}' | grep -xF "$ver" >/dev/null; then
            want+=("$p=$ver")
        else
            want+=("$p")
        fi
    done
    echo "msrv: installing Debian's ${want[*]}"
    apt_quiet install -y -q --no-install-recommends --allow-downgrades "${want[@]}"
}
installed() {
    [ "$(dpkg-query -W -f='${Version}' "$pkg" 2>/dev/null)" = "$ver" ] \
        && dpkg-query -W -f='${Status}' "cargo$suffix" 2>/dev/null | grep " installed$" >/dev/null
}
chosen=$(pick) || true
if [ -z "$chosen" ]; then
    root_or_fail "reading Debian's package lists"
    apt_quiet update -q || { cat "$apt_log" >&2; fail "apt-get update"; }
    chosen=$(pick) || fail "Debian offers no rustc no newer than $msrv (apt-cache madison rustc-web rustc)"
fi
read -r pkg ver <<<"$chosen"
suffix=${pkg#rustc}   # "-web" or ""
if ! installed; then
    root_or_fail "installing Debian's $pkg $ver"
    # Old package lists may name a version the archive no longer has: update once and retry.
    install || { apt_quiet update -q && chosen=$(pick) && read -r pkg ver <<<"$chosen" \
        && suffix=${pkg#rustc} && install; } || { cat "$apt_log" >&2; fail "could not install $pkg $ver"; }
fi
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
cargo=/usr/bin/cargo
have=$("$RUSTC" --version | awk '{print $2}')
le "$have" "$msrv" || fail "/usr/bin/rustc is $have, newer than rust-version $msrv"

# 1. every crate opts in; 2. no locked dependency needs a newer compiler.
host=$("$RUSTC" -vV | sed -n 's/^host: //p')
meta=$("$cargo" metadata --locked --format-version 1 --filter-platform "$host") \
    || fail "cargo metadata --locked (is Cargo.lock up to date?)"
missing=$(jq -r --arg v "$msrv" '.workspace_members as $ws | .packages[]
    | select(.id as $i | $ws | index($i)) | select(.rust_version != $v)
    | "\(.name) (\(.rust_version // "none"))"' <<<"$meta")
[ -z "$missing" ] || fail "crates without rust-version $msrv (rust-version.workspace = true): $(echo $missing)"
deps=$(jq -r '.workspace_members as $ws | .packages[] | select(.id as $i | $ws | index($i) | not)
    | select(.rust_version != null) | "\(.rust_version) \(.name)@\(.version)"' <<<"$meta" | sort -V)
need=$(tail -n1 <<<"$deps" | awk '{print $1 " (" $2 ")"}')
over=$(while read -r v name; do le "$v" "$msrv" || echo "$name needs $v"; done <<<"$deps")
[ -z "$over" ] || fail "rust-version $msrv is too old for the locked dependencies: $(paste -sd, <<<"$over")"

# 3. the build, with the older compiler when that is all Debian has.
args=(check --workspace --all-targets --locked --keep-going)
features=() bridged=
if ! le "$msrv" "$have"; then
    args+=(--ignore-rust-version)
    for f in $BRIDGE; do
        since=${f##*=} f=${f%=*}
        le "$since" "$msrv" || fail "BRIDGE's $f is stable since $since, after rust-version $msrv"
        le "$since" "$have" || { features+=("$f"); bridged+="; ${f#*:} ($since) in ${f%%:*}"; }
    done
fi
# Cargo does not see the flags the wrapper adds: one target directory per BRIDGE in use.
key=plain
[ ${#features[@]} = 0 ] || key=bridge-$(echo "${features[*]}" | cksum | cut -d' ' -f1)
target=${CARGO_TARGET_DIR:-target}/msrv/$key
mkdir -p "$target"
log=$target/check.log
if ! VFGUARD_MSRV_WRAP=1 RUSTC_WRAPPER="$root/scripts/msrv.sh" CARGO_TARGET_DIR="$target" \
    VFGUARD_MSRV_FEATURES="${features[*]}" "$cargo" "${args[@]}" >"$log" 2>&1; then
    grep -E '^error|^ *--> ' "$log" | grep -v '^error: could not compile' >&2 || tail -n 30 "$log" >&2
    unstable=$(grep -o 'unstable library feature `[a-z0-9_]*`' "$log" | sort -u | tr -d '`' | awk '{print $4}' | tr '\n' ' ') || true
    [ -z "$unstable" ] || echo "msrv: library features newer than rustc $have: $unstable" >&2
    if [ -n "$unstable" ] || grep -q 'is not yet stable as a const fn' "$log"; then
        echo "msrv: what is stable since $msrv or before goes in BRIDGE (crate:feature=version); else raise rust-version" >&2
    fi
    fail "the workspace does not build with Debian's rustc $have (--locked, all targets; $log)"
fi
echo "msrv: OK: rust-version $msrv holds: every crate declares it, the locked dependencies need at most $need, and the workspace (all targets, --locked) builds with Debian's rustc $have${bridged:+ (plus${bridged#;})}"
