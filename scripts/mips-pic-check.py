#!/usr/bin/env python3
"""Fail if a MIPS ELF binary built with -C relocation-model=static contains
position-independent function prologues.

Why: our MIPS binaries are non-PIC (-C relocation-model=static, 20% smaller).
Non-PIC code calls functions with a plain `jal`, which leaves $t9 ($25)
unset. A PIC function computes $gp from $t9 in its prologue
(`addu $gp, <reg>, $t9`) and then crashes. That is what happened when
rustix looked getrandom up with dlsym: musl's dlsym.s is PIC assembly, and
`status` died with SIGBUS (qemu-user) and SIGSEGV (real MIPS kernel).

So every word of .text is checked for `addu $gp, $x, $t9` / `addu $gp, $t9, $x`
(SPECIAL opcode, funct 0x21, rd = 28, rs or rt = 25). Prints the count and
exits 1 when it is not zero.

Usage: mips-pic-check.py BINARY
"""
import struct
import sys


def pic_prologues(path):
    d = open(path, "rb").read()
    if d[:4] != b"\x7fELF" or d[4] != 1:
        sys.exit(f"{path}: not a 32-bit ELF file")
    e = ">" if d[5] == 2 else "<"
    shoff = struct.unpack_from(e + "I", d, 0x20)[0]
    shentsize, shnum, shstrndx = struct.unpack_from(e + "HHH", d, 0x2E)
    secs = [struct.unpack_from(e + "10I", d, shoff + i * shentsize) for i in range(shnum)]
    names = secs[shstrndx][4]

    def name(off):
        start = names + off
        return d[start : d.index(b"\0", start)].decode()

    text = [s for s in secs if name(s[0]) == ".text"]
    if not text:
        sys.exit(f"{path}: no .text section")
    off, size = text[0][4], text[0][5]
    n = 0
    for (w,) in struct.iter_unpack(e + "I", d[off : off + size - size % 4]):
        if w >> 26 == 0 and w & 0x3F == 0x21 and (w >> 11) & 31 == 28 and 25 in ((w >> 21) & 31, (w >> 16) & 31):
            n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    n = pic_prologues(sys.argv[1])
    print(f"{sys.argv[1]}: {n} PIC prologue(s) (addu $gp, .., $t9)")
    sys.exit(1 if n else 0)
