#!/usr/bin/env python3
"""Where the bytes of an UNSTRIPPED release binary are, for any target,
including the -Zbuild-std MIPS builds that `cargo bloat` cannot read.

    python3 scripts/size-report.py BINARY [-n N]            crates, then the N largest symbols
    python3 scripts/size-report.py BINARY --callers SYM...  who calls SYM (direct calls and
                                                            branches, 4 levels; MIPS/ARM/x86)

The sizes are those of the symbol table (text, rodata, data; not bss), grouped
by the first path segment of the demangled name: `entropyservice`, `core`,
`std`, `alloc`, `argh`, `rustix`...; "C" is zig's musl and compiler-rt, "zig"
the symbols zig names with dots. Make the binary with strip off, e.g.:

    CARGO_TARGET_DIR=target/cross env $(python3 scripts/targets.py env mips-unknown-linux-musl) \\
      cargo +nightly build --release --locked --bin entropyservice \\
        --target mips-unknown-linux-musl --no-default-features \\
        --config profile.release.strip=false

Needs llvm-nm and llvm-objdump (Debian's llvm package).
"""
import collections
import re
import subprocess
import sys


def symbols(path):
    out = subprocess.run(["llvm-nm", "--print-size", "--size-sort", "--radix=d", "-C", path],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        p = line.split(None, 3)
        if len(p) == 4 and p[2].lower() in "trd":
            yield int(p[1]), p[3]


def crate(name):
    m = re.match(r"[<&]*([A-Za-z_][A-Za-z0-9_]*)::", name)
    if m:
        return m.group(1)
    return "zig" if "." in name else "C"


def report(path, n):
    by_crate = collections.Counter()
    syms = sorted(symbols(path), reverse=True)
    for size, name in syms:
        by_crate[crate(name)] += size
    print(f"{'crate':24} {'bytes':>8}")
    for c, s in by_crate.most_common():
        print(f"{c:24} {s:8}")
    print(f"{'(all symbols)':24} {sum(by_crate.values()):8}\n")
    print(f"{'bytes':>8}  largest {n} symbols")
    for size, name in syms[:n]:
        print(f"{size:8}  {name[:150]}")


def callers(path, wanted):
    def table(demangle):
        cmd = ["llvm-nm", "--defined-only", path] + (["-C"] if demangle else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return [(int(p[0], 16), p[2]) for p in (line.split(None, 2) for line in out.splitlines()) if len(p) == 3]
    raw = {name: a for a, name in table(False)}
    names = collections.defaultdict(set)
    for a, name in table(True):
        names[a].add(name)
    dis = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", path],
                         capture_output=True, text=True, check=True).stdout
    calls = collections.defaultdict(set)
    cur = None
    for line in dis.splitlines():
        m = re.match(r"^([0-9a-f]+) <.*>:$", line)
        if m:
            cur = int(m.group(1), 16)
            continue
        # a call or branch to the start of a symbol: "jal 320196 <name>"
        m = re.search(r"\s(?:jal|j|bal|b|bl|blx|call|jmp|beqz|bnez|beq|bne)\s.*<([^<>+]+)>$", line)
        if m and cur is not None:
            t = raw.get(m.group(1))
            if t is not None and t != cur:
                calls[t].add(cur)

    def label(a):
        return sorted(names[a], key=len)[0][:150] if names[a] else hex(a)

    def show(a, depth, seen):
        for c in sorted(calls.get(a, ()), key=label):
            print("  " * depth + label(c))
            if c not in seen and depth < 4:
                seen.add(c)
                show(c, depth + 1, seen)

    by_name = {}
    for a, ns in names.items():
        for n in ns:
            by_name.setdefault(n, a)
    for w in wanted:
        a = by_name.get(w, raw.get(w))
        if a is None:
            hits = [n for n in by_name if w in n]
            print(f"== {w}: no such symbol" + (f" (did you mean {hits[0]}?)" if hits else ""))
            continue
        print(f"== {w}")
        show(a, 1, set())


def main():
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if args else 2)
    path = args[0]
    if len(args) > 1 and args[1] == "--callers":
        callers(path, args[2:])
    else:
        n = int(args[2]) if len(args) > 2 and args[1] == "-n" else 30
        report(path, n)


if __name__ == "__main__":
    main()
