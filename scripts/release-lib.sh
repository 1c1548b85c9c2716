# shellcheck shell=bash
# The release binaries' table look-ups, strip and checks, shared by
# scripts/cross-build.sh (zig on the host) and scripts/cross-docker.sh (cross
# in a container), so both paths are held to the same checks. Sourced, bash;
# source scripts/lib.sh first (die, log, apt_install), set ROOT and NIGHTLY.
#
#   release_table_check        scripts/targets.tsv and the files made from it agree
#   release_targets            the Rust targets of scripts/targets.tsv, one a line
#   release_col T N            column N of T's row
#   release_budget KEY         KEY's line in SIZE_BUDGET_FILE (default scripts/size-budget.txt):
#                              T for the full build, router/T for the router build
#   release_validate [--router] T...  known targets with budget lines (also router/T)
#   release_tools [smoke]      install/verify readelf, python3, qemu-user-static
#   release_strip SRC DST      llvm-objcopy --strip-all (cargo's strip leaves .pdr etc.)
#   release_check T FILE [router]
#                              ELF class/data/machine, float ABI, static, MIPS PIC,
#                              --version and `status` under qemu-user (RELEASE_SMOKE=1)
#                              and that the build is the variant it is filed as (the
#                              router build refuses `authorize`, the full one has it);
#                              dies on the first failure; records the size under T or
#                              router/T
#   release_report             the size table; fails (or warns with
#                              CROSS_BUILD_BUDGET=warn) when a size is over budget

RELEASE_TABLE=$ROOT/scripts/targets.tsv
RELEASE_BUDGETS=${SIZE_BUDGET_FILE:-$ROOT/scripts/size-budget.txt}
RELEASE_SMOKE=${RELEASE_SMOKE:-1}
declare -gA RELEASE_SIZE=()
declare -ga RELEASE_DONE=()

release_table_check() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
    python3 "$ROOT/scripts/targets.py" check || die "scripts/targets.tsv and the files made from it disagree (see above)"
}

release_targets() {
    awk -F '\t' '!/^[[:space:]]*#/ && NF { print $1 }' "$RELEASE_TABLE"
}

release_col() {
    awk -F '\t' -v t="$1" -v n="$2" '!/^[[:space:]]*#/ && $1 == t { print $n; f = 1 } END { exit !f }' "$RELEASE_TABLE"
}

release_budget() {
    awk -v t="$1" '!/^[[:space:]]*#/ && $1 == t { print $2; f = 1 } END { exit !f }' "$RELEASE_BUDGETS"
}

# Validate target names and budget lines before any build starts; with
# --router first, the router/T lines too.
release_validate() {
    local t router=0
    if [ "${1:-}" = --router ]; then router=1; shift; fi
    [ -f "$RELEASE_BUDGETS" ] || die "missing $RELEASE_BUDGETS"
    for t in "$@"; do
        release_col "$t" 1 >/dev/null || die "unknown target $t (known: $(release_targets | tr '\n' ' '))"
        release_budget "$t" >/dev/null || die "no budget line for $t in $RELEASE_BUDGETS"
        [ "$router" = 0 ] || release_budget "router/$t" >/dev/null \
            || die "no budget line for router/$t (the router build) in $RELEASE_BUDGETS"
    done
}

release_tools() {
    command -v readelf >/dev/null 2>&1 || apt_install binutils
    command -v readelf >/dev/null 2>&1 || die "readelf missing (binutils)"
    command -v python3 >/dev/null 2>&1 || apt_install python3
    if [ "$RELEASE_SMOKE" = 1 ]; then
        local t q
        for t in "$@"; do
            q=$(release_col "$t" 4)
            if [ "$q" != - ] && ! command -v "$q" >/dev/null 2>&1; then apt_install qemu-user-static; break; fi
        done
    fi
}

# Post-link strip: cargo's strip=true leaves non-allocated sections such as
# MIPS .pdr (72 KiB on mipsel), .comment and .mdebug.*; llvm-objcopy
# --strip-all drops them. rustc ships it as rust-objcopy (needs the
# toolchain's libLLVM on LD_LIBRARY_PATH); else Debian's llvm package.
release_strip() {
    local sysroot host ro lo
    sysroot=$(rustup run "$NIGHTLY" rustc --print sysroot)
    host=$(rustup run "$NIGHTLY" rustc -vV | sed -n 's/^host: //p')
    ro=$sysroot/lib/rustlib/$host/bin/rust-objcopy
    rm -f "$2"
    if [ -x "$ro" ] && LD_LIBRARY_PATH=$sysroot/lib "$ro" --version >/dev/null 2>&1; then
        LD_LIBRARY_PATH=$sysroot/lib "$ro" --strip-all "$1" "$2"
        return
    fi
    lo=$(command -v llvm-objcopy || ls /usr/bin/llvm-objcopy-* 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$lo" ]; then apt_install llvm; lo=$(command -v llvm-objcopy || true); fi
    [ -n "$lo" ] || die "no llvm-objcopy (neither rust-objcopy in $sysroot nor Debian's llvm)"
    "$lo" --strip-all "$1" "$2"
}

release_check() {
    local t=$1 out=$2 variant=${3:-full} key ident class data want_mach got_mach float hdr q v st a bytes budget b
    key=$t
    [ "$variant" = full ] || key=$variant/$t
    [ -f "$out" ] || die "$key: $out not produced"
    # ELF identity from column 3: class, data, e_machine (read from the header bytes).
    ident=$(release_col "$t" 3)
    IFS=, read -r class data want_mach <<<"$ident"
    read -r -a b <<<"$(od -An -tu1 -N20 -v "$out" | tr "\n" " ")"
    [ "${b[0]:-}" = 127 ] && [ "${b[1]:-}" = 69 ] && [ "${b[2]:-}" = 76 ] && [ "${b[3]:-}" = 70 ] \
        || die "$key: $out is not an ELF file"
    if [ "${b[5]}" = 2 ]; then got_mach=$(( b[18] * 256 + b[19] )); else got_mach=$(( b[19] * 256 + b[18] )); fi
    [ "${b[4]},${b[5]},$got_mach" = "$class,$data,$want_mach" ] \
        || die "$key: ELF class,data,machine is ${b[4]},${b[5]},$got_mach; scripts/targets.tsv wants $ident"
    # Float ABI from column 5.
    float=$(release_col "$t" 5)
    hdr=$(readelf -h "$out") || die "$key: readelf -h failed on $out"
    case "$float,$want_mach" in
        -,*) ;;
        hard,40|soft,40)
            grep -q "Flags:.*$float-float ABI" <<<"$hdr" \
                || die "$key: expected the $float-float ABI in the ARM ELF flags: $(grep Flags: <<<"$hdr")" ;;
        soft,8)
            readelf -A "$out" | grep -q 'FP ABI:[[:space:]]*Soft float' \
                || die "$key: expected 'FP ABI: Soft float' in .MIPS.abiflags: $(readelf -A "$out" | grep 'FP ABI' || echo none)" ;;
        hard,8)
            readelf -A "$out" | grep -q 'FP ABI:[[:space:]]*Hard float' \
                || die "$key: expected a hard-float FP ABI in .MIPS.abiflags: $(readelf -A "$out" | grep 'FP ABI' || echo none)" ;;
        *) die "$key: no float ABI check for '$float' on e_machine $want_mach (scripts/targets.tsv column 5)" ;;
    esac
    # Static: no program interpreter, no shared-library dependency.
    if readelf -lW "$out" | grep -q 'INTERP'; then
        die "$key: has an INTERP program header (dynamically linked): $(readelf -lW "$out" | grep -A1 INTERP | tail -1)"
    fi
    if readelf -dW "$out" | grep -q '(NEEDED)'; then
        die "$key: has NEEDED entries: $(readelf -dW "$out" | grep '(NEEDED)' | tr -s ' ' | tr '\n' ' ')"
    fi
    # Non-PIC MIPS must not contain PIC code (see -C relocation-model=static in
    # scripts/cross-build.sh): a PIC function reached by a plain `jal` crashes.
    if [ "$want_mach" = 8 ] && grep -q 'relocation-model=static' <<<"$(release_col "$t" 7)"; then
        local pic
        pic=$(python3 "$ROOT/scripts/mips-pic-check.py" "$out" 2>&1) \
            || die "$key: PIC code linked into a non-PIC binary, it would crash on \`jal\` calls: $pic"
    fi
    bytes=$(stat -c %s "$out")
    budget=$(release_budget "$key")
    # Smoke run: --version, and `status` (opens /dev/random, RNDGETENTCNT,
    # getrandom, formatting: enough libc and std to catch a broken link recipe).
    if [ "$RELEASE_SMOKE" = 1 ]; then
        q=$(release_col "$t" 4)
        local run=("$out")
        if [ "$q" != - ]; then
            command -v "$q" >/dev/null 2>&1 || die "$key: $q missing (apt-get install qemu-user-static)"
            run=("$q" "$out")
        fi
        v=$("${run[@]}" --version 2>&1) || die "$key: '${run[*]} --version' failed ($?): $v"
        st=$("${run[@]}" status 2>&1) || die "$key: '${run[*]} status' failed ($?): $st"
        grep -q '^crng_ready: ' <<<"$st" || die "$key: '${run[*]} status' printed no crng_ready line: $st"
        # The variant: the router build (no admin feature) refuses the admin
        # commands with status 64, the full build knows them.
        if [ "$variant" = router ]; then
            a=$("${run[@]}" authorize 2>&1) && die "$key: '${run[*]} authorize' succeeded: not the router build"
            grep -q 'not in this build' <<<"$a" || die "$key: '${run[*]} authorize' did not say it is not in this build: $a"
        else
            a=$("${run[@]}" authorize --help 2>&1) || die "$key: '${run[*]} authorize --help' failed ($?): not the full build: $a"
        fi
        log "$key: --version -> $(head -1 <<<"$v"); status ok; $variant build"
    fi
    RELEASE_SIZE[$key]=$bytes
    RELEASE_DONE+=("$key")
    log "$key: checks passed ($bytes bytes, budget $budget)"
}

release_report() {
    local t b flag over=()
    printf '%-42s %10s %10s\n' target bytes budget
    for t in "${RELEASE_DONE[@]}"; do
        b=$(release_budget "$t"); flag=""
        if [ "${RELEASE_SIZE[$t]}" -gt "$b" ]; then
            flag="  OVER BUDGET"
            over+=("$t: ${RELEASE_SIZE[$t]} bytes is over its budget of $b bytes ($(( RELEASE_SIZE[$t] - b )) too many; scripts/size-budget.txt)")
        fi
        printf '%-42s %10s %10s%s\n' "$t" "${RELEASE_SIZE[$t]}" "$b" "$flag"
    done
    [ "${#over[@]}" -eq 0 ] && return 0
    if [ "${CROSS_BUILD_BUDGET:-fail}" = warn ]; then
        for t in "${over[@]}"; do echo "$ES_SCRIPT: WARNING: $t" >&2; done
        return 0
    fi
    for t in "${over[@]}"; do echo "$ES_SCRIPT: FAIL: $t" >&2; done
    exit 1
}
