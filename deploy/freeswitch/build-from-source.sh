#!/bin/bash
# Build FreeSWITCH (with sofia-sip and spandsp) from its public sources into a prefix,
# for the development loop and the realfs tests. Nothing it builds is committed: the
# default prefix and work folders are under var/ (ignored by git).
#
#   deploy/freeswitch/build-from-source.sh [FREESWITCH_SRC SOFIA_SIP_SRC SPANDSP_SRC]
#
# Each source is either a work tree or a (bare) git directory, e.g. what the fetch of
# signalwire/freeswitch, freeswitch/sofia-sip and freeswitch/spandsp left under
# /work/.mirror/OWNER+NAME/repo. A git directory is exported (git archive HEAD) to
# TONGDAI_FS_WORK/NAME first; a work tree is built in place.
#
# Environment (the arguments win over these):
#   TONGDAI_FS_SRC_FREESWITCH   FreeSWITCH source (signalwire/freeswitch)
#   TONGDAI_FS_SRC_SOFIA        sofia-sip source (freeswitch/sofia-sip)
#   TONGDAI_FS_SRC_SPANDSP      spandsp source (freeswitch/spandsp)
#   TONGDAI_FS_PREFIX           where to install, default var/freeswitch (absolute after start)
#   TONGDAI_FS_WORK             where git sources are exported, default var/src
#   TONGDAI_FS_JOBS             make -j, default 2
#   TONGDAI_FS_SKIP_APT=1       do not install the Debian build packages
#
# Idempotent: each part leaves a stamp (the source's commit or tree) under
# PREFIX/.tongdai-build/; a second run with the same sources skips what is built. The build
# runs under `nice -n 10`: other people share this machine.
#
# What it does to FreeSWITCH's tree (why: deploy/freeswitch/README.md, "Building
# FreeSWITCH: what it needs"):
#   - lowers configure.ac's minimum sofia-sip (1.13.18) and spandsp (3.1.1) versions to
#     what the sources' heads report (1.13.17, 3.0.0), which work;
#   - writes a trimmed modules.conf: the modules fs-conf/autoload_configs/modules.conf.xml
#     loads plus mod_callcenter and mod_fifo; no mod_verto/mod_signalwire (they need
#     libks), no mod_fsv (a snapshot may lack its binary test asset).
set -euo pipefail

die() { echo "build-from-source: $*" >&2; exit 2; }
say() { echo "build-from-source: $*"; }

repo=$(cd "$(dirname "$0")/../.." && pwd)
fs_src=${1:-${TONGDAI_FS_SRC_FREESWITCH:-}}
sofia_src=${2:-${TONGDAI_FS_SRC_SOFIA:-}}
spandsp_src=${3:-${TONGDAI_FS_SRC_SPANDSP:-}}
prefix=${TONGDAI_FS_PREFIX:-$repo/var/freeswitch}
work=${TONGDAI_FS_WORK:-$repo/var/src}
jobs=${TONGDAI_FS_JOBS:-2}

[ -n "$fs_src" ] && [ -n "$sofia_src" ] && [ -n "$spandsp_src" ] || die \
    "give the three sources: FREESWITCH_SRC SOFIA_SIP_SRC SPANDSP_SRC (or TONGDAI_FS_SRC_*)"
mkdir -p "$prefix" "$work"
prefix=$(cd "$prefix" && pwd)
work=$(cd "$work" && pwd)
stamps=$prefix/.tongdai-build
mkdir -p "$stamps"

# The Debian packages FreeSWITCH, sofia-sip and spandsp need, plus the test tools.
packages="build-essential autoconf automake libtool libtool-bin pkg-config git
libssl-dev libcurl4-openssl-dev libpcre2-dev libsqlite3-dev libspeex-dev
libspeexdsp-dev libedit-dev libldns-dev libtiff-dev libjpeg-dev zlib1g-dev uuid-dev
libsndfile1-dev libopus-dev libogg-dev libvorbis-dev libflac-dev libmpg123-dev yasm
sip-tester espeak-ng sox"
if [ "${TONGDAI_FS_SKIP_APT:-0}" != 1 ]; then
    # shellcheck disable=SC2086  # a word list on purpose
    missing=$(dpkg-query -W -f='${Package} ${Status}\n' $packages 2>/dev/null \
        | awk '$NF == "installed" {print $1}' | sort > "$stamps/apt.have"
        for p in $packages; do grep -qx "$p" "$stamps/apt.have" || echo "$p"; done)
    if [ -n "$missing" ]; then
        say "installing Debian packages: $(echo $missing)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q
        # shellcheck disable=SC2086
        apt-get install -y -q --no-install-recommends $missing
    fi
fi

# A source location -> a buildable tree; sets $tree and $rev.
prepare() {  # NAME SRC
    local name=$1 src=$2
    [ -e "$src" ] || die "$name source $src does not exist"
    if [ ! -e "$src/configure.ac" ] && git --git-dir="$src" rev-parse -q --verify HEAD >/dev/null 2>&1; then
        rev=$(git --git-dir="$src" rev-parse HEAD)
        tree=$work/$name
        if [ "$(cat "$tree/.tongdai-rev" 2>/dev/null)" != "$rev" ]; then
            say "exporting $name $rev to $tree"
            rm -rf "$tree"
            mkdir -p "$tree"
            # A snapshot may lack some blobs (FreeSWITCH's mod_fsv test video): leave
            # those files out rather than fail the whole export.
            local excludes=() path
            git --git-dir="$src" ls-tree -r HEAD | awk -F '\t' '{split($1, m, " "); if (m[2] == "blob") print m[3] "\t" $2}' \
                > "$work/.$name.blobs"
            cut -f1 "$work/.$name.blobs" | git --git-dir="$src" cat-file --batch-check \
                | awk '$2 == "missing" {print $1}' > "$work/.$name.missing"
            while IFS=$'\t' read -r _ path; do
                say "  $name: $path is not in the snapshot, left out"
                excludes+=(":(exclude)$path")
            done < <(grep -F -f "$work/.$name.missing" "$work/.$name.blobs" || true)
            git --git-dir="$src" archive --format=tar HEAD -- . "${excludes[@]}" | tar -x -C "$tree"
            echo "$rev" > "$tree/.tongdai-rev"
        fi
    else
        tree=$(cd "$src" && pwd)
        rev=$(git -C "$tree" rev-parse HEAD 2>/dev/null || echo "tree:$tree")
    fi
}

built() { [ "$(cat "$stamps/$1" 2>/dev/null)" = "$2" ]; }

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
export LDFLAGS="-L$prefix/lib -Wl,-rpath,$prefix/lib"
export CPPFLAGS="-I$prefix/include"
nice="nice -n 10"

build_lib() {  # NAME SRC CHECK_FILE
    local name=$1
    prepare "$name" "$2"
    if built "$name" "$rev" && [ -e "$prefix/$3" ]; then
        say "$name $rev: already built"
        return
    fi
    say "building $name $rev in $tree"
    (
        cd "$tree"
        [ -x configure ] || $nice ./bootstrap.sh
        $nice ./configure --prefix="$prefix" --quiet
        $nice make -j"$jobs" >"$tree/.tongdai-make.log" 2>&1 \
            || { tail -40 "$tree/.tongdai-make.log"; exit 1; }
        make install >"$tree/.tongdai-install.log" 2>&1 \
            || { tail -40 "$tree/.tongdai-install.log"; exit 1; }
    )
    echo "$rev" > "$stamps/$name"
}

start=$(date +%s)
build_lib sofia-sip "$sofia_src" lib/pkgconfig/sofia-sip-ua.pc
build_lib spandsp "$spandsp_src" lib/pkgconfig/spandsp.pc

# The modules to build: what fs-conf loads (modules.conf.xml, and the `load mod_...` of
# vars.xml's api_on_startup: mod_xml_curl), plus mod_callcenter and mod_fifo.
modules_conf() {  # TREE -> modules.conf lines (category/mod_name)
    local tree=$1 mod line
    {
        sed -n 's/.*<load module="\(mod_[a-z0-9_]*\)".*/\1/p' \
            "$repo/fs-conf/autoload_configs/modules.conf.xml"
        grep -oh 'load mod_[a-z0-9_]*' "$repo/fs-conf/vars.xml" | sed 's/^load //'
        echo mod_callcenter
        echo mod_fifo
    } | sort -u | while read -r mod; do
        line=$(grep -E "^#?[a-z_]+/$mod\$" "$tree/build/modules.conf.in" | head -1 | tr -d '#')
        echo "${line:-MISSING/$mod}"
    done
}

prepare freeswitch "$fs_src"
wanted=$(modules_conf "$tree")
case $wanted in *MISSING/*) die "not in FreeSWITCH's build/modules.conf.in: $(echo "$wanted" | sed -n 's|^MISSING/||p')";; esac
fs_stamp="$rev $(echo "$wanted" | md5sum | cut -c1-12)"
if built freeswitch "$fs_stamp" && [ -x "$prefix/bin/freeswitch" ]; then
    say "freeswitch $rev: already built"
else
    say "building freeswitch $rev in $tree"
    (
        cd "$tree"
        if grep -qE 'spandsp >= 3\.1\.1|sofia-sip-ua >= 1\.13\.18' configure.ac; then
            sed -i -e 's/spandsp >= 3\.1\.1/spandsp >= 3.0.0/' \
                   -e 's/sofia-sip-ua >= 1\.13\.18/sofia-sip-ua >= 1.13.17/' configure.ac
        fi
        [ "$(cat modules.conf 2>/dev/null)" = "$wanted" ] || echo "$wanted" > modules.conf
        [ -x configure ] && [ configure -nt configure.ac ] || $nice ./bootstrap.sh -j
        if [ ! -f Makefile ] || [ "$(cat .tongdai-configured 2>/dev/null)" != "$prefix" ]; then
            $nice ./configure --prefix="$prefix" --disable-libyuv --disable-libvpx \
                --without-png --disable-core-pgsql-pkgconfig --quiet
            echo "$prefix" > .tongdai-configured
        fi
        $nice make -j"$jobs" >"$tree/.tongdai-make.log" 2>&1 \
            || { tail -60 "$tree/.tongdai-make.log"; exit 1; }
        make install >"$tree/.tongdai-install.log" 2>&1 \
            || { tail -40 "$tree/.tongdai-install.log"; exit 1; }
    )
    echo "$fs_stamp" > "$stamps/freeswitch"
fi

# voicemail's and the say modules' phrases: bin/tongdai-freeswitch copies them from
# PREFIX/etc/freeswitch/lang (make install puts the vanilla configuration there once).
if [ ! -d "$prefix/etc/freeswitch/lang" ]; then
    mkdir -p "$prefix/etc/freeswitch"
    cp -R "$tree/conf/vanilla/lang" "$prefix/etc/freeswitch/lang"
fi

missing_mods=""
for line in $wanted; do
    [ -e "$prefix/lib/freeswitch/mod/${line#*/}.so" ] || missing_mods="$missing_mods ${line#*/}"
done
[ -z "$missing_mods" ] || die "built, but these modules are missing:$missing_mods"
say "done in $(( $(date +%s) - start )) s: $prefix/bin/freeswitch ($("$prefix/bin/freeswitch" -version 2>/dev/null | tail -1))"
