#!/usr/bin/env python3
"""Benchmarks of entropyservice against the original v2 pipeline (issue 8).

Run through benches/run.sh, which installs the tools, builds the binary and
calls this script. Python 3 standard library only. Needs root: a real
Dropbear on loopback in a private mount namespace (unshare -m, with a
throwaway directory bind-mounted on /root/.ssh), and RNDADDENTROPY for the
client runs.

Every figure is a pair measured in the same run, side by side or interleaved,
and CPU comes from /proc/PID/schedstat (nanoseconds on the CPU), so the
ratios hold up on a busy machine even when wall-clock throughput does not.

Phases (A runs while B and C run; D after A):
  A  slow server rates (256, 4096 B/s) ours vs sh -c 'cat /dev/urandom | pv -q -L R',
     one window of --window seconds each, all sessions in parallel; and the
     60 s client comparison, ours vs `dbclient ... | rngd -f -r /dev/stdin`,
     both under strace -e ioctl.
  B  unlimited server: ours vs cat+pv, interleaved.
  C  client cost on an unlimited stream: our client vs its dbclient child.
  D  200 concurrent dbclient sessions through one Dropbear, --total-rate budget.
  Footprint: target/dist/entropyservice-<target> sizes (not rebuilt).
"""

import argparse
import datetime
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
ALL_PROCS = []  # every Popen we start, for cleanup
LOCK = threading.Lock()
STOPPING = threading.Event()  # set by cleanup: no new processes after it


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


def need(tool):
    p = shutil.which(tool, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if not p:
        sys.exit(f"bench: {tool} is missing (benches/run.sh installs it)")
    return p


# ---------------------------------------------------------------- /proc

def ptable():
    """{pid: (ppid, comm)} of every live process."""
    t = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        i = s.rfind(")")
        rest = s[i + 2:].split()
        t[int(d)] = (int(rest[1]), s[s.find("(") + 1:i])
    return t


def starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def descendants(pid, table):
    kids = {}
    for p, (pp, _) in table.items():
        kids.setdefault(pp, []).append(p)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def children(pid, table):
    return [p for p, (pp, _) in table.items() if pp == pid]


def cpu_ns(pid):
    """Time on the CPU of all threads of pid, in ns (0 if gone)."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
            except OSError:
                pass
    except OSError:
        return 0
    return total


def ticks(pid):
    """(utime, stime) in clock ticks."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[11]), int(rest[12])
    except (OSError, IndexError):
        return 0, 0


def status_kb(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def io(pid):
    d = {}
    try:
        with open(f"/proc/{pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                d[k] = int(v)
    except OSError:
        pass
    return d


def session_tops(marker, table):
    """Forced commands of live sessions tagged `marker`: processes whose
    parent is a dropbear process and whose argv holds the marker word."""
    return [p for p, (pp, comm) in table.items()
            if comm != "dropbear" and table.get(pp, (0, ""))[1] == "dropbear"
            and marker in argv(p)]


class Tree:
    """One sample of a forced command's process tree."""

    def __init__(self, top, table):
        self.pids = descendants(top, table)
        self.comms = [table[p][1] for p in self.pids if p in table]
        self.cpu = sum(cpu_ns(p) for p in self.pids)
        self.rss = sum(status_kb(p) for p in self.pids)
        self.pss = sum(pss_kb(p) for p in self.pids)
        self.t = time.monotonic()


def tree_of(marker, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        t = ptable()
        tops = session_tops(marker, t)
        if tops:
            return Tree(tops[0], t)
        time.sleep(0.05)
    raise RuntimeError(f"no forced command tagged {marker} appeared")


# ---------------------------------------------------------------- processes

def spawn(cmd, **kw):
    kw.setdefault("stdin", subprocess.DEVNULL)
    with LOCK:
        if STOPPING.is_set():
            raise RuntimeError("stopping")
        p = subprocess.Popen(cmd, **kw)
        ALL_PROCS.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=5.0):
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Reader(threading.Thread):
    """Reads every registered pipe; records (monotonic time, bytes) per read
    when asked to, else only the byte count."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)
        self.pending = []
        self.running = True

    def add(self, stream):
        with LOCK:
            self.pending.append(stream)
        os.write(self.wake_w, b"x")

    def run(self):
        while self.running:
            for key, _ in self.sel.select(0.5):
                if key.data is None:
                    os.read(self.wake_r, 4096)
                    continue
                s = key.data
                try:
                    b = os.read(key.fd, 1 << 18)
                except OSError:
                    b = b""
                now = time.monotonic()
                if not b:
                    self.sel.unregister(key.fd)
                    s.eof = True
                    continue
                n = len(b)
                s.total += n
                if s.first is None:
                    s.first = now
                if s.record:
                    s.reads.append((now, n))
            with LOCK:
                new, self.pending = self.pending, []
            for s in new:
                self.sel.register(s.fd, selectors.EVENT_READ, s)


class Stream:
    """A plain `dbclient ... "cat /dev/random"` session read by the Reader."""

    def __init__(self, bench, name, record=True):
        self.bench, self.name = bench, name
        self.total, self.first, self.eof, self.record, self.reads = 0, None, False, record, []
        self.start()

    def start(self):
        b = self.bench
        self.p = spawn([b.dbclient, "-T", "-p", str(b.port), "-i", b.keys[self.name],
                        "root@127.0.0.1", "cat /dev/random"],
                       stdout=subprocess.PIPE, stderr=b.errlog(self.name), env=b.env)
        self.fd = self.p.stdout.fileno()
        os.set_blocking(self.fd, False)
        b.reader.add(self)

    def wait_first(self, timeout=60.0):
        """Waits for the first byte. Dropbear drops a 6th unauthenticated
        connection from one address: a session that ended before its
        first byte is started again."""
        end = time.monotonic() + timeout
        while self.first is None:
            if time.monotonic() > end:
                raise RuntimeError(f"no bytes from the server for {self.name}")
            if self.p.poll() is not None and self.first is None:
                time.sleep(0.3)
                self.eof = False
                self.start()
            time.sleep(0.01)
        return self.first

    def rate(self, t0, t1):
        """Rate over [t0, t1]: least-squares slope of bytes received so far
        against the time of each read, so the jitter of single reads (a busy
        machine delays this reader) averages out. Returns (B/s, span s)."""
        rs = [r for r in self.reads if t0 <= r[0] <= t1]
        if len(rs) < 3:
            return 0.0, 0.0
        pts, c = [], 0
        for t, n in rs:
            c += n
            pts.append((t, c))
        k = len(pts)
        mt = sum(t for t, _ in pts) / k
        mc = sum(c for _, c in pts) / k
        var = sum((t - mt) ** 2 for t, _ in pts)
        cov = sum((t - mt) * (c - mc) for t, c in pts)
        return cov / var, rs[-1][0] - rs[0][0]

    def close(self):
        stop(self.p)


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, args):
        self.a = args
        self.bin = os.path.abspath(args.bin)
        self.dbclient = need("dbclient")
        self.work = tempfile.mkdtemp(prefix="es-bench.")
        os.chmod(self.work, 0o700)
        for d in ("ssh", "home", "home/.ssh", "locks", "logs"):
            os.makedirs(os.path.join(self.work, d), mode=0o700, exist_ok=True)
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": os.path.join(self.work, "home")}
        self.keys, self.lines = {}, []
        self.dropbear = None
        self.reader = Reader()
        self.reader.start()
        self.results = {}

    def w(self, *p):
        return os.path.join(self.work, *p)

    def errlog(self, name):
        return open(self.w("logs", name + ".err"), "ab")

    def run(self, cmd):
        return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True).stdout

    def keygen(self, name):
        path = self.w(name)
        self.run([need("dropbearkey"), "-t", "ed25519", "-f", path])
        pub = [l for l in self.run([need("dropbearkey"), "-y", "-f", path]).splitlines()
               if l.startswith("ssh-")][0]
        return path, " ".join(pub.split()[:2])

    def forced(self, name, command):
        key, pub = self.keygen("id_" + name)
        self.keys[name] = key
        self.lines.append(f'command="{command}",no-pty,no-port-forwarding,'
                          f'no-agent-forwarding,no-X11-forwarding {pub}\n')

    def ours(self, marker, extra, binary=None):
        return (f"{binary or self.bin} server --source getrandom --client {marker} "
                f"--max-bytes 1099511627776 --lock-dir {self.w('locks')} {extra}")

    @staticmethod
    def pv(marker, rate):
        lim = f" -L {rate}" if rate else ""
        return f"sh -c 'cat /dev/urandom | pv -q{lim}' {marker}"

    def setup(self):
        a = self.a
        self.musl = os.path.join(ROOT, "target/dist/entropyservice-x86_64-unknown-linux-musl")
        if platform.machine() != "x86_64" or not os.access(self.musl, os.X_OK):
            self.musl = None
        for r in (256, 4096):
            self.forced(f"es{r}", self.ours(f"bench-es{r}", f"--rate {r}"))
            self.forced(f"pv{r}", self.pv(f"bench-pv{r}", r))
        if self.musl:
            self.forced("musl4096", self.ours("bench-musl4096", "--rate 4096", self.musl))
        self.forced("esinf", self.ours("bench-esinf", "--rate 0"))
        self.forced("pvinf", self.pv("bench-pvinf", 0))
        for m in ("cli-es", "cli-orig", "cli-orig-nodrng"):
            self.forced(m, self.ours("bench-" + m, f"--rate {a.client_rate} "
                                     f"--audit-file {self.w('audit-bench-' + m)}"))
        self.forced("cli-fast", self.ours("bench-cli-fast", "--rate 0"))
        self.forced("scale", self.ours("bench-scale", f"--total-rate {a.budget}"))
        with open(self.w("ssh", "authorized_keys"), "w") as f:
            f.writelines(self.lines)
        hk, self.host_key = self.keygen("host_ed25519")
        with open(self.w("home", ".ssh", "known_hosts"), "w") as f:
            f.write(f"127.0.0.1 {self.host_key}\n")
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        os.makedirs("/root/.ssh", exist_ok=True)
        # Root's shell runs the forced command with `-c`, and bash sources
        # ~/.bashrc when started by an SSH daemon. On a workstation that rc
        # can be slow (pyenv init, ...); a router's ash has none. Inside the
        # private namespace an empty file hides it (the real one is untouched).
        hide_rc = ""
        if os.path.isfile("/root/.bashrc"):
            open(self.w("empty-bashrc"), "w").close()
            hide_rc = f"mount --bind {self.w('empty-bashrc')} /root/.bashrc && "
        script = (f"mount --bind {self.w('ssh')} /root/.ssh && {hide_rc}exec {need('dropbear')} -F -E -s "
                  f"-p 127.0.0.1:{self.port} -r {hk} -P {self.w('dropbear.pid')}")
        self.dropbear = spawn([need("unshare"), "-m", "--propagation", "private", "sh", "-c", script],
                              stdout=self.errlog("dropbear"), stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            except OSError:
                if time.monotonic() > end or self.dropbear.poll() is not None:
                    raise RuntimeError("dropbear did not start: see " + self.w("logs"))
                time.sleep(0.05)
        log(f"dropbear {self.dropbear.pid} on 127.0.0.1:{self.port}, work dir {self.work}")

    # ------------------------------------------------------------ phase A: slow rates
    def server_rate(self, name, marker, rate, connected=None):
        """One session for warm + window seconds; rate, RSS and CPU/MiB.
        Sets `connected` once streaming (or failed), so that the caller
        can start the next session: one SSH handshake at a time."""
        a = self.a
        s = Stream(self, name)
        try:
            t_first = s.wait_first()
        finally:
            if connected:
                connected.set()
        time.sleep(max(0.0, t_first + a.warm - time.monotonic()))
        first, got0 = tree_of(marker), s.total
        rss = pss = 0
        comms = first.comms
        end = t_first + a.warm + a.window
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            t = tree_of(marker)
            rss, pss, comms = max(rss, t.rss), max(pss, t.pss), t.comms
        last, got1 = tree_of(marker), s.total
        achieved, span = s.rate(t_first + a.warm, time.monotonic())
        s.close()
        sent = got1 - got0
        self.results[name] = dict(
            rate=rate, achieved=achieved, span=span, rss=rss, pss=pss, procs=comms,
            cpu_per_mib=(last.cpu - first.cpu) / 1e9 / (sent / MiB) if sent else float("nan"),
            cpu=(last.cpu - first.cpu) / 1e9, sent=sent)
        log(f"{name}: {achieved:.3f} B/s over {span:.1f} s, rss {rss} KiB {comms}")

    # ------------------------------------------------------------ phase A: client 60 s
    def strace(self, out, what="ioctl"):
        return [need("strace"), "-f", "--seccomp-bpf", "-qq", "-ttt", "-e", "trace=" + what, "-o", out]

    def our_client(self, name, status, extra, strace_out=None, binary=None):
        d = self.w("c-" + name)
        os.makedirs(os.path.join(d, "seed"), mode=0o700, exist_ok=True)
        cmd = [binary or self.bin, "client", "--mode", "stream", "-p", str(self.port),
               "-i", self.keys[name], "--host-key", self.host_key, "--ssh", self.dbclient,
               "--status-file", status, "--seed-dir", os.path.join(d, "seed"),
               "--connect-timeout", "20s"] + extra + ["root@127.0.0.1"]
        if strace_out:
            cmd = self.strace(strace_out) + cmd
        return spawn(cmd, stdout=self.errlog(name), stderr=subprocess.STDOUT, env=self.env)

    @staticmethod
    def parse_strace(path):
        """RNDADDENTROPY / RNDRESEEDCRNG calls that returned 0, and the bytes
        read from /dev/stdin when reads were traced."""
        adds = bits = mixed = reseeds = stdin_read = 0
        first = None
        stdin_fd = None
        with open(path) as f:
            for line in f:
                m = re.match(r"(?:\d+\s+)?(\d+\.\d+) (\w+)\((.*)\)\s+= (-?\d+)", line)
                if not m:
                    continue
                call, args, ret = m.group(2), m.group(3), int(m.group(4))
                if call == "openat" and '"/dev/stdin"' in args:
                    stdin_fd = ret
                elif call == "read" and stdin_fd is not None and args.startswith(f"{stdin_fd},") and ret > 0:
                    stdin_read += ret
                elif call == "ioctl" and ret == 0 and "RNDADDENTROPY" in args:
                    adds += 1
                    first = first or float(m.group(1))
                    e = re.search(r"entropy_count=(\d+), buf_size=(\d+)", args)
                    if e:
                        bits += int(e.group(1))
                        mixed += int(e.group(2))
                elif call == "ioctl" and ret == 0 and "RNDRESEEDCRNG" in args:
                    reseeds += 1
        return dict(adds=adds, bits=bits, mixed=mixed, reseeds=reseeds, first=first, stdin_read=stdin_read)

    def audit_bytes(self, marker, timeout=10.0):
        """bytes= of the server's `end` audit line for this session."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                with open(self.w("audit-" + marker)) as f:
                    for line in f:
                        m = re.search(r" end .* bytes=(\d+)", line)
                        if m:
                            return int(m.group(1))
            except OSError:
                pass
            time.sleep(0.1)
        return None

    def client_compare(self):
        """60 s side by side: our client vs dbclient | rngd, same server config."""
        a = self.a
        st = self.w("c-status")
        so, sr, sn = self.w("ours.strace"), self.w("rngd.strace"), self.w("rngd-nodrng.strace")
        t0 = time.time()
        ours = self.our_client("cli-es", st, ["--reseed-interval", a.reseed_interval], so)
        # The v2 client exactly, and the same with rngd's RDRAND source off
        # (--no-drng=1), as on a router without RDRAND.
        dbs, rns = [], []
        for key, out, extra in (("cli-orig", sr, []), ("cli-orig-nodrng", sn, ["--no-drng=1"])):
            db = spawn([self.dbclient, "-T", "-p", str(self.port), "-i", self.keys[key],
                        "root@127.0.0.1", "cat /dev/random"],
                       stdout=subprocess.PIPE, stderr=self.errlog(key), env=self.env)
            rn = spawn(self.strace(out, "ioctl,read,openat") + [need("rngd"), "-f", "-r", "/dev/stdin"] + extra,
                       stdin=db.stdout, stdout=self.errlog("rngd-" + key), stderr=subprocess.STDOUT)
            db.stdout.close()
            dbs.append(db)
            rns.append(rn)
        end = time.monotonic() + a.client_time
        rss = {"ours": 0, "rngd": 0, "dbclient": 0}
        pss = dict(rss)
        pid = {"dbclient": dbs[0].pid}
        traced = {}
        while time.monotonic() < end:
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
            t = ptable()
            for k, parent in (("ours", ours.pid), ("rngd", rns[0].pid), ("rngd2", rns[1].pid)):
                if k not in traced:
                    kids = [p for p in children(parent, t) if t[p][1] in ("entropyservice", "rngd")]
                    if kids:
                        traced[k] = kids[0]
                        if k != "rngd2":
                            pid[k] = kids[0]
            for k, p in pid.items():
                rss[k] = max(rss[k], status_kb(p))
                pss[k] = max(pss[k], pss_kb(p))
        alive = {"ours": ours.poll() is None}
        # SIGTERM to the traced processes themselves; their strace then exits.
        for p in traced.values():
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for db in dbs:
            stop(db)
        for p in [ours] + rns:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                stop(p)
        status = {}
        try:
            with open(st) as f:
                for line in f:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        status[k.strip()] = v.strip()
        except OSError:
            pass
        so_, sr_, sn_ = self.parse_strace(so), self.parse_strace(sr), self.parse_strace(sn)
        res = dict(sent_ours=self.audit_bytes("bench-cli-es"), sent_orig=self.audit_bytes("bench-cli-orig"),
                   sent_nodrng=self.audit_bytes("bench-cli-orig-nodrng"),
                   ours=so_, orig=sr_, nodrng=sn_, status=status, rss=rss, pss=pss, alive=alive,
                   first_ours=(so_["first"] - t0) if so_["first"] else None,
                   first_orig=(sr_["first"] - t0) if sr_["first"] else None,
                   first_nodrng=(sn_["first"] - t0) if sn_["first"] else None)
        self.results["client60"] = res
        log(f"client {a.client_time:.0f} s: ours {so_}, original {sr_}, no-drng {sn_}, "
            f"sent {res['sent_ours']} / {res['sent_orig']} / {res['sent_nodrng']}")

    def rndaddentropy_floor(self, mib=8):
        """Kernel CPU of RNDADDENTROPY alone on 512-byte chunks (the ioctl our
        client makes per chunk), from this thread's system time."""
        import fcntl
        import resource
        import struct
        op = 0x40085203 if platform.machine() in ("x86_64", "aarch64") or platform.machine().startswith("arm") else None
        if op is None:
            return None
        req = bytearray(struct.pack("ii", 0, 512) + os.urandom(512))
        with open("/dev/random", "wb", buffering=0) as f:
            r0 = resource.getrusage(resource.RUSAGE_THREAD)
            for _ in range(mib * 2048):
                fcntl.ioctl(f, op, req)
            r1 = resource.getrusage(resource.RUSAGE_THREAD)
        return (r1.ru_stime - r0.ru_stime) / mib


    # ------------------------------------------------------------ phase B: unlimited
    def unlimited(self):
        a = self.a
        acc = {"esinf": [0, 0, 0.0, 0, 0, []], "pvinf": [0, 0, 0.0, 0, 0, []]}
        for _ in range(a.rounds):
            for name in ("esinf", "pvinf"):
                marker = "bench-" + name
                s = Stream(self, name, record=False)
                s.wait_first()
                time.sleep(a.fast_warm)
                t0, g0 = tree_of(marker), s.total
                time.sleep(a.fast_window)
                t1, g1 = tree_of(marker), s.total
                s.close()
                r = acc[name]
                r[0] += t1.cpu - t0.cpu
                r[1] += g1 - g0
                r[2] += t1.t - t0.t
                r[3] = max(r[3], t1.rss)
                r[4] = max(r[4], t1.pss)
                r[5] = t1.comms
        for name, (cpu, sent, dt, rss, pss, comms) in acc.items():
            self.results[name] = dict(cpu_per_mib=cpu / 1e9 / (sent / MiB) if sent else float("nan"),
                                      mibps=sent / MiB / dt, rss=rss, pss=pss, procs=comms,
                                      cpu=cpu / 1e9, sent=sent)
            log(f"{name}: {sent / MiB / dt:.1f} MiB/s, {self.results[name]['cpu_per_mib']:.4f} s/MiB")

    # ------------------------------------------------------------ phase C: client cost
    def client_cost(self):
        """Our client on an unlimited stream: its CPU and the CPU of the
        dbclient child that feeds it, over the same bytes."""
        builds = [("host", self.bin)] + ([("musl", self.musl)] if self.musl else [])
        for build, binary in builds:
            self.one_client_cost(build, binary)
        self.results["rndadd_floor"] = self.rndaddentropy_floor()

    def one_client_cost(self, build, binary):
        a = self.a
        st = self.w(f"c-fast-status-{build}")
        ours = self.our_client("cli-fast", st, ["--reseed-interval", "1h"], binary=binary)
        end = time.monotonic() + 20
        child = None
        while time.monotonic() < end:
            t = ptable()
            k = [p for p in children(ours.pid, t) if t[p][1] == "dbclient"]
            if k and io(ours.pid).get("rchar", 0) > MiB:
                child = k[0]
                break
            time.sleep(0.05)
        if child is None:
            stop(ours)
            raise RuntimeError("our client did not start streaming")
        time.sleep(a.fast_warm)

        def sample():
            return (cpu_ns(ours.pid), cpu_ns(child), io(ours.pid).get("rchar", 0),
                    time.monotonic(), ticks(ours.pid))
        c0, d0, b0, m0, k0 = sample()
        rss = {"ours": 0, "dbclient": 0}
        pss = dict(rss)
        end = time.monotonic() + a.fast_window * a.rounds
        while time.monotonic() < end:
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
            for k, p in (("ours", ours.pid), ("dbclient", child)):
                rss[k] = max(rss[k], status_kb(p))
                pss[k] = max(pss[k], pss_kb(p))
        c1, d1, b1, m1, k1 = sample()
        stop(ours, wait=15)
        mib = (b1 - b0) / MiB
        ut, stt = k1[0] - k0[0], k1[1] - k0[1]
        self.results["client_cost_" + build] = dict(
            ours=(c1 - c0) / 1e9 / mib, dbclient=(d1 - d0) / 1e9 / mib, mibps=mib / (m1 - m0),
            rss=rss, pss=pss, kernel_share=stt / (ut + stt) if ut + stt else float("nan"))
        log(f"client cost {build}: {self.results['client_cost_' + build]}")


    # ------------------------------------------------------------ phase D: scale
    def scale(self):
        a = self.a
        n = a.sessions
        streams = []
        ramp0 = time.monotonic()
        deadline = ramp0 + a.ramp_timeout
        while len(streams) < n and time.monotonic() < deadline:
            pending = [s for s in streams if s.first is None and not s.eof]
            if len(pending) < 4:  # dropbear refuses a 6th unauthenticated connection per IP
                streams.append(Stream(self, "scale"))
            else:
                time.sleep(0.005)
            # a session dropbear refused before auth: start it again
            for i, s in enumerate(streams):
                if s.first is None and s.p.poll() is not None:
                    s.close()
                    streams[i] = Stream(self, "scale")
        while time.monotonic() < deadline and any(s.first is None for s in streams):
            time.sleep(0.05)
        up = [s for s in streams if s.first is not None and not s.eof]
        ramp = time.monotonic() - ramp0
        log(f"scale: {len(up)} of {n} sessions streaming after {ramp:.1f} s")
        time.sleep(a.settle)
        w0 = time.monotonic()
        t = ptable()
        tops0 = {p: cpu_ns(p) for p in session_tops("bench-scale", t)}
        rss = []
        pss = []
        time.sleep(a.window / 2)
        t = ptable()
        tops = session_tops("bench-scale", t)
        for p in tops:
            rss.append(sum(status_kb(q) for q in descendants(p, t)))
            pss.append(sum(pss_kb(q) for q in descendants(p, t)))
        time.sleep(max(0.0, w0 + a.window - time.monotonic()))
        w1 = time.monotonic()
        cpu = sum(cpu_ns(p) - c for p, c in tops0.items() if os.path.exists(f"/proc/{p}"))
        rates = [s.rate(w0, w1)[0] for s in up]
        for s in streams:
            s.close()
        agg = sum(rates)
        jain = agg * agg / (len(rates) * sum(r * r for r in rates)) if rates else 0.0
        self.results["scale"] = dict(
            n=n, up=len(up), live=len(tops), agg=agg, jain=jain, budget=a.budget,
            min=min(rates) if rates else 0, max=max(rates) if rates else 0,
            rss=sum(rss) / len(rss) if rss else 0, pss=sum(pss) / len(pss) if pss else 0,
            cpu_pct=100 * cpu / 1e9 / (w1 - w0), window=w1 - w0, ramp=ramp)
        log(f"scale: {self.results['scale']}")

    # ------------------------------------------------------------ cleanup
    def cleanup(self):
        self.reader.running = False
        with LOCK:
            STOPPING.set()
            procs = list(ALL_PROCS)
        for p in procs:
            if p.poll() is None and p is not self.dropbear:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        for p in procs:
            if p is not self.dropbear:
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.dropbear is not None:
            # Session children outlive the listener: stop the listener, then
            # end every session process it had (and their forced commands),
            # by pid.
            left = {p: starttime(p) for p in descendants(self.dropbear.pid, ptable())[1:]}
            stop(self.dropbear)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                t = ptable()
                for p in list(left):
                    for q in descendants(p, t)[1:]:
                        left.setdefault(q, starttime(q))
                for p, st in reversed(list(left.items())):
                    if st is not None and starttime(p) == st:  # the same process, not a reused pid
                        try:
                            os.kill(p, sig)
                        except ProcessLookupError:
                            pass
                time.sleep(0.5)
        # Anything still naming the work directory was started for this run.
        me = os.getpid()
        for p in ptable():
            if p != me and any(self.work in x for x in argv(p)):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.a.keep:
            log("kept work dir " + self.work)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# ---------------------------------------------------------------- report

def kib(x):
    return f"{int(round(x)):,} KiB"


def ratio(a, b):
    return a / b if b else float("nan")


def verdict(ok):
    return "**met**" if ok else "**MISSED**"


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024
    try:
        with open("/etc/os-release") as f:
            osr = dict(l.rstrip().split("=", 1) for l in f if "=" in l)["PRETTY_NAME"].strip('"')
    except (OSError, KeyError):
        osr = "unknown OS"
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} CPUs, {mem:,} MiB RAM; {osr}, kernel {platform.release()}; "
            f"load average at start {load[0]:.2f}")


def versions():
    def v(cmd):
        try:
            out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
            return out.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return "; ".join([v(["dropbear", "-V"]), v(["pv", "--version"]), "rngd " + v(["rngd", "--version"]).split()[-1],
                      v(["strace", "-V"])])


def report(b, started, elapsed, command):
    R, a = b.results, b.a
    L = []
    add = L.append
    add(f"Produced by `{command}` on {started:%Y-%m-%d %H:%M} UTC in {elapsed:.0f} s.  ")
    add(f"Machine: {b.machine}.  ")
    add(f"Tools: {b.versions}.  ")
    add(f"Binary: `{os.path.relpath(b.bin, ROOT)}` ({os.path.getsize(b.bin):,} bytes, host build)"
        + (f"; static musl row uses `target/dist/entropyservice-x86_64-unknown-linux-musl`." if b.musl else "."))
    add("")
    add("| # | figure | ours | original | ratio ours/original | target | verdict |")
    add("|---|---|---|---|---|---|---|")
    row = [0]

    def r(fig, ours, orig, rat="", target="", ok=None):
        row[0] += 1
        add(f"| {row[0]} | {fig} | {ours} | {orig} | {rat} | {target} | "
            f"{'' if ok is None else verdict(ok)} |")

    add("| | **Server, per session** (original: `sh -c 'cat /dev/urandom \\| pv -q -L R'` as the forced command) | | | | | |")
    for rate, es, pv in ((256, "es256", "pv256"), (4096, "es4096", "pv4096"), ("unlimited", "esinf", "pvinf")):
        e, p = R[es], R[pv]
        q = ratio(e["rss"], p["rss"])
        r(f"RSS of everything the forced command runs, R={rate} (PSS in brackets)",
          f"{kib(e['rss'])} ({kib(e['pss'])}) [{'+'.join(e['procs'])}]",
          f"{kib(p['rss'])} ({kib(p['pss'])}) [{'+'.join(p['procs'])}]",
          f"{q:.2f}", "≤ 0.5", q <= 0.5)
        if rate == 4096 and "musl4096" in R:
            m = R["musl4096"]
            q = ratio(m["rss"], p["rss"])
            r("same, R=4096, static musl binary from target/dist",
              f"{kib(m['rss'])} ({kib(m['pss'])})", f"{kib(p['rss'])} ({kib(p['pss'])})",
              f"{q:.2f}", "≤ 0.5", q <= 0.5)
    for rate, es, pv in ((256, "es256", "pv256"), (4096, "es4096", "pv4096"), ("unlimited", "esinf", "pvinf")):
        e, p = R[es], R[pv]
        r(f"CPU seconds per MiB sent, R={rate}", f"{e['cpu_per_mib']:.4g} s",
          f"{p['cpu_per_mib']:.4g} s", f"{ratio(e['cpu_per_mib'], p['cpu_per_mib']):.3f}")
    for rate, es, pv in ((256, "es256", "pv256"), (4096, "es4096", "pv4096")):
        e, p = R[es], R[pv]
        ee, pe = e["achieved"] / rate - 1, p["achieved"] / rate - 1
        r(f"achieved / configured rate, R={rate} B/s, over {e['span']:.1f} s (ours) / {p['span']:.1f} s (pv)",
          f"{e['achieved'] / rate:.5f} ({ee * 100:+.3f}%)", f"{p['achieved'] / rate:.5f} ({pe * 100:+.3f}%)",
          "", "within ±1% over ≥ 30 s", (abs(ee) <= 0.01) if e["span"] >= 30 else None)
    if "musl4096" in R:
        m, p = R["musl4096"], R["pv4096"]
        ee, pe = m["achieved"] / 4096 - 1, p["achieved"] / 4096 - 1
        r(f"same, R=4096 B/s, static musl binary from target/dist, over {m['span']:.1f} s",
          f"{m['achieved'] / 4096:.5f} ({ee * 100:+.3f}%)", f"{p['achieved'] / 4096:.5f} ({pe * 100:+.3f}%)",
          "", "within ±1% over ≥ 30 s", (abs(ee) <= 0.01) if m["span"] >= 30 else None)
    e, p = R["esinf"], R["pvinf"]
    r("throughput, unlimited (`--rate 0` vs `pv -q` without -L), through loopback Dropbear",
      f"{e['mibps']:.1f} MiB/s", f"{p['mibps']:.1f} MiB/s", f"{ratio(e['mibps'], p['mibps']):.2f}")

    c = R["client60"]
    st = c["status"]
    add(f"| | **Client** (original: `dbclient -T ... \"cat /dev/random\" \\| rngd -f -r /dev/stdin`; ours: `client --mode stream --reseed-interval {a.reseed_interval}`; both against `server --rate {a.client_rate}` for {a.client_time:.0f} s, both under `strace -f -e ioctl`) | | | | | |")
    so, sr, sn = c["sent_ours"], c["sent_orig"], c["sent_nodrng"]
    nd, o = c["nodrng"], c["orig"]

    def num(x):
        return f"{x:,}" if x is not None else "?"
    add("| | (original column: the exact v2 command; in brackets the same with `rngd --no-drng=1`, as on a router without RDRAND) | | | | | |")
    r("bytes taken from the server (its audit line `bytes=`)", num(so), f"{num(sr)} ({num(sn)})",
      f"{ratio(so or 0, sr or 0):.1f}")
    got = int(st.get("bytes_received", 0))
    r("bytes the client process read (ours: status `bytes_received`; rngd: read() on /dev/stdin)",
      f"{got:,}", f"{o['stdin_read']:,} ({nd['stdin_read']:,})", f"{ratio(got, o['stdin_read']):.0f}")

    def mixed(d):
        return f"{d['mixed']:,} in {d['adds']:,} call{'s' if d['adds'] != 1 else ''}"
    src = f", RDRAND's: rngd read only {o['stdin_read']} bytes of the stream" if o["stdin_read"] < 64 + 8 else ""
    r("bytes mixed into the kernel pool (sum of RNDADDENTROPY buf_size)",
      mixed(c["ours"]), f"{mixed(o)}{src} ({mixed(nd)}, from the stream)",
      f"{ratio(c['ours']['mixed'], o['mixed']):.0f}")
    r("CRNG reseeds caused (RNDRESEEDCRNG calls returning 0)",
      f"{c['ours']['reseeds']} (status file: {st.get('reseeds', '?')})",
      f"{o['reseeds']} ({nd['reseeds']}): rngd never calls RNDRESEEDCRNG")
    r("still taking bytes at the end", "yes" if c["alive"]["ours"] and c["ours"]["mixed"] > 0 else "no",
      "no: stalled in poll(POLLOUT) on /dev/random after its first add" if max(o["adds"], nd["adds"]) <= 1 else "yes")

    def fs(x):
        return f"{x * 1000:.0f} ms" if x is not None else "never"
    r(f"time from start to first credit (server at {a.client_rate} B/s, its bucket starts empty; ours credits 512-byte chunks; "
      f"rngd's first add is RDRAND's, or with --no-drng=1 after a 2,500-byte FIPS block of the stream)",
      fs(c["first_ours"]), f"{fs(c['first_orig'])} ({fs(c['first_nodrng'])})",
      f"{ratio(c['first_ours'] or 0, c['first_orig']):.2f}" if c["first_orig"] else "")
    for build in ("host", "musl"):
        k = R.get("client_cost_" + build)
        if not k:
            continue
        q = ratio(k["ours"], k["dbclient"])
        label = "host build" if build == "host" else "static musl build from target/dist"
        r(f"CPU seconds per MiB credited, ours vs the dbclient feeding it, same stream "
          f"({k['mibps']:.1f} MiB/s, server unlimited; {label}; {k['kernel_share'] * 100:.0f}% of ours in the kernel)",
          f"{k['ours']:.4g} s", f"dbclient {k['dbclient']:.4g} s", f"{q:.3f}", "≤ 0.05", q <= 0.05)
    if R.get("rndadd_floor") is not None:
        r("context: kernel time of RNDADDENTROPY alone, 512-byte calls, per MiB (this harness, in-process)",
          f"{R['rndadd_floor']:.4g} s", "", "", "")
    for build in ("host", "musl"):
        k = R.get("client_cost_" + build)
        if not k:
            continue
        rs_ = max(k["rss"]["ours"], c["rss"]["ours"] if build == "host" else 0)
        ps_ = max(k["pss"]["ours"], c["pss"]["ours"] if build == "host" else 0)
        q = ratio(rs_, c["rss"]["rngd"])
        label = "host build" if build == "host" else "static musl build"
        r(f"RSS of the client process vs rngd (PSS in brackets; {label})", f"{kib(rs_)} ({kib(ps_)})",
          f"rngd {kib(c['rss']['rngd'])} ({kib(c['pss']['rngd'])})", f"{q:.2f}", "≤ 0.5", q <= 0.5)
        dbr = max(c["rss"]["dbclient"], k["rss"]["dbclient"])
        r(f"RSS of the client process vs the dbclient that feeds it ({label})", kib(rs_),
          f"dbclient {kib(dbr)}", f"{ratio(rs_, dbr):.2f}")

    s = R["scale"]
    add(f"| | **Scale**: {s['n']} concurrent `dbclient` sessions through one Dropbear, forced command `server --total-rate {s['budget']}` | | | | | |")
    r(f"sessions streaming / live forced commands (all connected in {s['ramp']:.1f} s, at most 4 handshakes at once)",
      f"{s['up']} / {s['live']}", "", "", f"{s['n']}", s["up"] == s["n"] and s["live"] == s["n"])
    q = s["agg"] / s["budget"]
    r(f"aggregate throughput over {s['window']:.1f} s vs budget", f"{s['agg']:,.0f} B/s", f"budget {s['budget']:,} B/s",
      f"{q:.4f} ({(q - 1) * 100:+.2f}%)", "within ±2%", abs(q - 1) <= 0.02)
    r("fairness, Jain's index of per-session rates", f"{s['jain']:.5f} (min {s['min']:.1f}, max {s['max']:.1f} B/s)",
      "", "", "≥ 0.99", s["jain"] >= 0.99)
    r("our server process RSS per session (PSS in brackets)", f"{kib(s['rss'])} ({kib(s['pss'])})", "", "", "")
    r(f"CPU of all {s['live']} server processes", f"{s['cpu_pct']:.1f}% of one core", "", "", "")

    add("")
    add("Footprint: stripped static binaries left by `scripts/cross-build.sh` in `target/dist` (read as found, not rebuilt):")
    add("")
    add("| target | bytes | KiB | budget (scripts/size-budget.txt) | within budget |")
    add("|---|---|---|---|---|")
    budget = {}
    try:
        with open(os.path.join(ROOT, "scripts/size-budget.txt")) as f:
            for line in f:
                p = line.split("#")[0].split()
                if len(p) == 2 and p[1].isdigit():
                    budget[p[0]] = int(p[1])
    except OSError:
        pass
    dist = os.path.join(ROOT, "target/dist")
    found = sorted(f for f in os.listdir(dist) if f.startswith("entropyservice-")) if os.path.isdir(dist) else []
    for f in found:
        tgt = f[len("entropyservice-"):]
        size = os.path.getsize(os.path.join(dist, f))
        bu = budget.get(tgt)
        add(f"| {tgt} | {size:,} | {size / 1024:.0f} | {bu:,} | {'yes' if size <= bu else 'no'} |" if bu else
            f"| {tgt} | {size:,} | {size / 1024:.0f} | | |")
    if not found:
        add("| (none: run scripts/cross-build.sh first) | | | | |")
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/bench/release/entropyservice"))
    ap.add_argument("--quick", action="store_true", help="short windows for a smoke run (not for BENCHMARKS.md)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, strace output)")
    ap.add_argument("--out", help="also write the table to this file")
    ap.add_argument("--update-doc", help="replace the results block of this markdown file")
    ap.add_argument("--command", default="benches/run.sh", help="the command named in the report")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--budget", type=int, default=51200, help="--total-rate for the scale run (B/s)")
    ap.add_argument("--client-rate", type=int, default=4096, help="server rate for the 60 s client comparison")
    ap.add_argument("--reseed-interval", default="1s")
    a = ap.parse_args()
    a.warm, a.settle, a.ramp_timeout = 2.0, 3.0, 120.0
    if a.quick:
        a.window, a.client_time, a.rounds, a.fast_warm, a.fast_window = 8.0, 12.0, 1, 1.0, 2.0
    else:
        a.window, a.client_time, a.rounds, a.fast_warm, a.fast_window = 31.0, 60.0, 2, 1.5, 4.0
    if os.geteuid() != 0:
        sys.exit("bench: run as root (mount namespace for Dropbear, RNDADDENTROPY)")
    if not os.access(a.bin, os.X_OK):
        sys.exit(f"bench: {a.bin} is not built (benches/run.sh builds it)")
    for t in ("dropbear", "dropbearkey", "dbclient", "pv", "rngd", "strace", "unshare"):
        need(t)

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)

    started = datetime.datetime.now(datetime.timezone.utc)
    m0 = time.monotonic()
    b = Bench(a)
    b.machine, b.versions = machine(), versions()
    try:
        b.setup()
        errors = []

        def guarded(f, *args):
            def g():
                try:
                    f(*args)
                except Exception as e:  # reported below, the run goes on
                    errors.append(f"{f.__name__}{args}: {e!r}")
            th = threading.Thread(target=g, daemon=True)
            th.start()
            return th
        # Phase A: the slow, long runs in parallel.
        slow = [guarded(b.client_compare)]
        time.sleep(2)  # its two handshakes first; time to first credit on a quiet loopback
        runs = [("es256", 256), ("pv256", 256), ("es4096", 4096), ("pv4096", 4096)]
        if b.musl:
            runs.append(("musl4096", 4096))
        for n, r in runs:
            ev = threading.Event()
            slow.append(guarded(b.server_rate, n, "bench-" + n, r, ev))
            ev.wait(90)
        # Phases B and C while A runs: fast streams, measured one at a time.
        for f in (b.unlimited, b.client_cost):
            guarded(f).join()
        for th in slow:
            th.join()
        # Phase D on its own.
        guarded(b.scale).join()
        if errors:
            raise RuntimeError("; ".join(errors))
    finally:
        b.cleanup()
    elapsed = time.monotonic() - m0
    text = report(b, started, elapsed, a.command)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    if a.update_doc:
        begin, end = "<!-- results:begin -->", "<!-- results:end -->"
        with open(a.update_doc) as f:
            doc = f.read()
        if begin in doc and end in doc:
            doc = doc[:doc.index(begin) + len(begin)] + "\n" + text + doc[doc.index(end):]
        else:
            doc += f"\n{begin}\n{text}{end}\n"
        with open(a.update_doc, "w") as f:
            f.write(doc)
        log("updated " + a.update_doc)


if __name__ == "__main__":
    main()
