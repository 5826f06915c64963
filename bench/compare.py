#!/usr/bin/env python3
"""Warren vs LavinMQ and RabbitMQ scenario matrix (run through bench/compare.sh, which builds first).

For every scenario and run, each broker in turn (the order rotates run by run) gets a
load-generator invocation: warren-perf (crates/perf) or, for the lp-* scenarios, lavinmqperf
(LavinMQ's own load generator, a third-party client). The broker's CPU time (utime + stime from
/proc/PID/stat; for RabbitMQ the beam.smp process; LavinMQ is one process) is taken over exactly
the interval warren-perf measures (it prints '@measure start' / '@measure end' on stderr with
--json), over the whole invocation for lavinmqperf (it marks nothing); its memory is VmRSS sampled
every 100 ms during the invocation (peak) against the value just before it (baseline). All brokers
are restarted before each scenario, and before every run of the memory scenarios and of the
lavinmqperf scenarios (lavinmqperf declares its queue durable and leaves it, with any backlog),
so each run starts from a fresh process.
"""

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
RMQ_SCRIPT = os.path.join(ROOT, "scripts", "rabbitmq-ref.sh")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# LavinMQ 2.9.1 and lavinmqperf, prebuilt (see its README); --lavinmq or $LAVINMQ_DIR overrides.
LAVINMQ_DIR = os.environ.get("LAVINMQ_DIR", os.path.join(os.path.dirname(ROOT), "shared", "tools", "lavinmq"))
# The name of the optional extra broker: an earlier Warren build (--baseline).
BASELINE = "Warren-baseline"
# The brokers compared in the report's columns, in this order (those that ran).
COMPARED = ("Warren", "LavinMQ", "RabbitMQ")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- /proc


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, pid, period=0.1):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.peak = rss_kib(pid)
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except OSError:
                return
            self.halt.wait(self.period)

    def stop(self):
        self.halt.set()
        self.join()
        try:
            self.peak = max(self.peak, rss_kib(self.pid))
        except OSError:
            pass
        return self.peak


# ---------------------------------------------------------------- brokers


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port(rabbit=False):
    """A free port; for RabbitMQ also PORT+20000 and PORT+30000 (its dist and epmd ports)."""
    for _ in range(1000):
        p = random.randint(20000, 35000)
        if port_free(p) and (not rabbit or (port_free(p + 20000) and port_free(p + 30000))):
            return p
    raise RuntimeError("no free port")


def amqp_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return s.recv(7)[:1] == b"\x01"
    except OSError:
        return False


class Warren:
    def __init__(self, binary, workdir, name="Warren"):
        self.binary, self.workdir, self.name = binary, workdir, name
        self.port = free_port()
        self.proc = None

    @property
    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        self.data = data = tempfile.mkdtemp(prefix="warren-bench-data-", dir=self.workdir)
        self.log = open(os.path.join(self.workdir, f"{self.name.lower()}.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", data, "--log", "warn"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not amqp_answers(self.port):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("warren did not start; see " + self.log.name)
            time.sleep(0.1)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        # Paged-out backlogs of big bodies add up to gigabytes over a matrix: one data dir at a time.
        if getattr(self, "data", None):
            shutil.rmtree(self.data, ignore_errors=True)
            self.data = None

    def restart(self):
        self.stop()
        self.start()

    def fsync_note(self):
        return "no (keeps messages in memory; durable storage is being built)"


class LavinMQ(Warren):
    """LavinMQ from LAVINMQ_DIR: its own data dir (fresh at every start) and free ports, default settings."""

    def __init__(self, directory, workdir, name="LavinMQ"):
        super().__init__(os.path.join(directory, "lavinmq"), workdir, name)
        self.http_port, self.clustering_port = free_port(), free_port()

    def start(self):
        self.data = data = tempfile.mkdtemp(prefix="lavinmq-bench-data-", dir=self.workdir)
        self.log = open(os.path.join(self.workdir, "lavinmq.log"), "ab")
        self.proc = subprocess.Popen(
            [self.binary, f"--data-dir={data}", "--bind=127.0.0.1", "--amqp-bind=127.0.0.1",
             "--http-bind=127.0.0.1", f"--amqp-port={self.port}", f"--http-port={self.http_port}",
             "--mqtt-port=-1", "--mqtts-port=-1", "--metrics-http-port=-1",
             f"--clustering-port={self.clustering_port}", f"--control-unix-path={data}/ctl.sock"],
            stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        deadline = time.time() + 30
        while not amqp_answers(self.port):
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("lavinmq did not start; see " + self.log.name)
            time.sleep(0.1)


class RabbitMQ:
    name = "RabbitMQ"

    def __init__(self):
        self.port = free_port(rabbit=True)
        self.beam = None

    @property
    def uri(self):
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid(self):
        return self.beam

    def start(self):
        # Its distribution port (PORT+20000) lies in the ephemeral range: a client connection
        # made meanwhile may hold it. Try again on fresh ports rather than give up the matrix.
        for attempt in range(3):
            if subprocess.run([RMQ_SCRIPT, "start", str(self.port)], stdout=subprocess.DEVNULL).returncode == 0:
                break
            if attempt == 2:
                raise RuntimeError(f"RabbitMQ did not start on port {self.port}")
            log(f"RabbitMQ did not start on port {self.port}; trying other ports")
            self.port = free_port(rabbit=True)
        state = {}
        with open(f"{os.environ.get('RABBITMQ_REF_STATE_DIR', '/tmp')}/rabbitmq-ref-{self.port}.state") as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                state[k] = v.strip("'")
        self.beam = int(state["BEAM_PID"])

    def stop(self):
        subprocess.run([RMQ_SCRIPT, "stop", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.beam = None

    def restart(self):
        self.stop()
        self.start()

    def fsync_note(self):
        return "no (classic queues confirm persistent messages without fsync)"


# ---------------------------------------------------------------- one load-generator invocation


def children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


class PerfRun:
    """One warren-perf invocation, or with lavinmq=True one `lavinmqperf throughput` (PERF is then its path)."""

    def __init__(self, perf, broker, args, timeout, lavinmq=False):
        self.perf, self.broker, self.args, self.timeout, self.lavinmq = perf, broker, args, timeout, lavinmq

    def go(self):
        pid = self.broker.pid
        base = rss_kib(pid)
        sampler = RssSampler(pid)
        sampler.start()
        marks = {}
        stderr_lines = []
        if self.lavinmq:
            # lavinmqperf's client library takes no path as the vhost "/" too; keep its documented form.
            cmd = [self.perf, "throughput", "--uri=" + self.broker.uri.rstrip("/")] + self.args + ["-j", "-q"]
            shown = cmd[0:2] + ["--uri=URI"] + cmd[3:]
        else:
            cmd = [self.perf, "--uri", self.broker.uri, "--json", "--quiet"] + self.args
            shown = cmd[0:1] + ["--uri", "URI"] + cmd[3:]
        # The load generator's own CPU (lavinmqperf reports none): rusage of waited-for children.
        c0_cpu = children_cpu_seconds()
        t0_cpu = cpu_seconds(pid)
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def read_stderr():
            for line in proc.stderr:
                line = line.rstrip("\n")
                if line == "@measure start":
                    marks["start"] = (time.time(), cpu_seconds(pid))
                elif line == "@measure end":
                    marks["end"] = (time.time(), cpu_seconds(pid))
                else:
                    stderr_lines.append(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            out, _ = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            stderr_lines.append(f"killed after {self.timeout} s")
        reader.join(5)
        t1_cpu = cpu_seconds(pid)
        client_cpu = children_cpu_seconds() - c0_cpu
        peak = sampler.stop()
        result = None
        for line in reversed(out.strip().splitlines()):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
        start = marks.get("start", (None, t0_cpu))
        end = marks.get("end", (None, t1_cpu))
        return {
            "cmd": " ".join(shown),
            "exit": proc.returncode,
            "result": result,
            "stderr": stderr_lines[-5:],
            "broker_cpu_s": round(end[1] - start[1], 3),
            "broker_cpu_total_s": round(t1_cpu - t0_cpu, 3),
            "client_cpu_total_s": round(client_cpu, 3),
            "rss_base_kib": base,
            "rss_peak_kib": peak,
        }


# ---------------------------------------------------------------- scenarios


class Scenario:
    fresh_per_run = False
    client = "warren-perf"

    def __init__(self, id, title, args=None, size=16):
        self.id, self.title, self.args, self.size = id, title, args or [], size

    def describe(self, cfg):
        return "warren-perf " + " ".join(self.cli(cfg, "<run>"))

    def cli(self, cfg, tag):
        return [a.replace("{tag}", tag) for a in self.args] + ["--duration", str(cfg.duration)]

    def run(self, cfg, broker, tag):
        r = PerfRun(cfg.perf, broker, self.cli(cfg, tag), cfg.duration + 180).go()
        return metrics_of(r), [r]


def lat(res, kind, p):
    d = res.get(kind) if res else None
    return d.get(p) if d else None


def metrics_of(r):
    res = r["result"]
    if not res or r["exit"] != 0:
        return {"error": (res or {}).get("error") or "; ".join(r["stderr"]) or f"exit {r['exit']}"}
    msgs = max(res["sent"], res["received"], 1)
    return {
        "throughput": res["receive_rate"] if res["consumers"] > 0 else res["confirm_rate"] or res["send_rate"],
        "publish_rate": res["send_rate"],
        "p50": lat(res, "consumer_latency_us", "p50"),
        "p99": lat(res, "consumer_latency_us", "p99"),
        "p999": lat(res, "consumer_latency_us", "p99.9"),
        "confirm_p50": lat(res, "confirm_latency_us", "p50"),
        "confirm_p99": lat(res, "confirm_latency_us", "p99"),
        "cpu_us_per_msg": r["broker_cpu_s"] * 1e6 / msgs,
        "cpu_us_per_delivered": r["broker_cpu_s"] * 1e6 / max(res["received"], 1) if res["consumers"] > 0 else None,
        "client_cpu_us_per_msg": res["client_cpu_s"] * 1e6 / msgs,
        "peak_rss_mib": r["rss_peak_kib"] / 1024,
    }


class LavinPerf(Scenario):
    """A `lavinmqperf throughput` run (ARGS are its flags) on a queue of its own, against a fresh broker.

    lavinmqperf reports only average publish and consume rates over its timed interval (from when every
    client has connected to -z seconds later); the broker's CPU is taken over the whole invocation
    (connecting and closing add a few ms to the 3-10 s) and divided by the messages delivered.
    """

    fresh_per_run = True
    client = "lavinmqperf"

    def flags(self):
        return " ".join(self.args)

    def describe(self, cfg):
        return "lavinmqperf throughput " + " ".join(self.cli(cfg, "<run>"))

    def cli(self, cfg, tag):
        return self.args + ["-u", f"bench-{self.id}-{tag}", "-z", str(cfg.duration)]

    def run(self, cfg, broker, tag):
        r = PerfRun(cfg.lavinmqperf, broker, self.cli(cfg, tag), cfg.duration + 120, lavinmq=True).go()
        res = r["result"]
        if not res or r["exit"] != 0 or "avg_consume_rate" not in res:
            return {"error": "; ".join(r["stderr"]) or f"exit {r['exit']}, no summary"}, [r]
        elapsed = res["elapsed_seconds"]
        delivered, published = res["avg_consume_rate"] * elapsed, res["avg_pub_rate"] * elapsed
        return {
            "throughput": res["avg_consume_rate"],
            "publish_rate": res["avg_pub_rate"],
            "cpu_us_per_msg": r["broker_cpu_total_s"] * 1e6 / max(delivered, published, 1),
            "cpu_us_per_delivered": r["broker_cpu_total_s"] * 1e6 / max(delivered, 1),
            "client_cpu_us_per_msg": r["client_cpu_total_s"] * 1e6 / max(delivered, published, 1),
            "peak_rss_mib": r["rss_peak_kib"] / 1024,
        }, [r]


class Backlog(Scenario):
    """Publish N messages with confirms and no consumer, then drain them with one consumer."""

    fresh_per_run = True

    def describe(self, cfg):
        return (f"warren-perf --consumers 0 --pmessages {cfg.backlog} --confirm 1000 --queue Q; then "
                f"warren-perf --producers 0 --cmessages {cfg.backlog} --prefetch 1000 --queue Q")

    def run(self, cfg, broker, tag):
        q = f"bench-backlog-{tag}"
        limit = ["--duration", "600"]
        fill = PerfRun(cfg.perf, broker, ["--consumers", "0", "--pmessages", str(cfg.backlog), "--confirm", "1000",
                                          "--queue", q] + limit, 700).go()
        drain = PerfRun(cfg.perf, broker, ["--producers", "0", "--cmessages", str(cfg.backlog), "--prefetch", "1000",
                                           "--queue", q] + limit, 700).go()
        a, b = fill["result"], drain["result"]
        if not a or not b or fill["exit"] or drain["exit"]:
            return {"error": "; ".join(fill["stderr"] + drain["stderr"]) or "failed"}, [fill, drain]
        n = cfg.backlog
        peak = max(fill["rss_peak_kib"], drain["rss_peak_kib"])
        return {
            "publish_rate": a["confirm_rate"],
            "throughput": b["receive_rate"],
            "confirm_p50": lat(a, "confirm_latency_us", "p50"),
            "confirm_p99": lat(a, "confirm_latency_us", "p99"),
            "cpu_us_per_msg": (fill["broker_cpu_s"] + drain["broker_cpu_s"]) * 1e6 / n,
            "cpu_us_per_delivered": (fill["broker_cpu_s"] + drain["broker_cpu_s"]) * 1e6 / n,
            "client_cpu_us_per_msg": (a["client_cpu_s"] + b["client_cpu_s"]) * 1e6 / n,
            "peak_rss_mib": peak / 1024,
            "bytes_per_queued_msg": (fill["rss_peak_kib"] - fill["rss_base_kib"]) * 1024 / n,
        }, [fill, drain]


class Idle(Scenario):
    """Open N connections (one channel each) and hold them: the broker's memory per connection."""

    fresh_per_run = True

    def describe(self, cfg):
        return f"warren-perf --idle-connections {cfg.connections} --duration 5"

    def run(self, cfg, broker, tag):
        r = PerfRun(cfg.perf, broker, ["--idle-connections", str(cfg.connections), "--duration", "5"], 300).go()
        res = r["result"]
        if not res or r["exit"] != 0:
            return {"error": (res or {}).get("error") or "; ".join(r["stderr"]) or "failed"}, [r]
        n = max(res["opened"], 1)
        return {
            "connections_per_s": res["connections_per_s"],
            "cpu_us_per_conn": r["broker_cpu_s"] * 1e6 / n,
            "peak_rss_mib": r["rss_peak_kib"] / 1024,
            "kib_per_conn": (r["rss_peak_kib"] - r["rss_base_kib"]) / n,
        }, [r]


def scenarios(cfg):
    base = ["--prefetch", "1000"]
    conf = base + ["--confirm", "1000"]
    ack100 = base + ["--multi-ack", "100"]
    return [
        Scenario("1q-transient", "1 queue, 1 producer, 1 consumer, transient, 16 B, no confirms",
                 base + ["--queue", "bench-a-{tag}"]),
        Scenario("1q-confirm", "the same with publisher confirms (window 1000)",
                 conf + ["--queue", "bench-b-{tag}"]),
        Scenario("1q-durable", "durable queue, persistent messages, confirms",
                 conf + ["--persistent", "--queue", "bench-c-{tag}"]),
        Scenario("fanout-10", "fanout exchange, 1 producer -> 10 queues, 10 consumers, confirms",
                 conf + ["--exchange", "bench-fanout-{tag}", "--type", "fanout", "--queue-pattern",
                         "bench-f-{tag}-%d", "--queue-count", "10", "--consumers", "10"]),
        Backlog("backlog", f"backlog of {cfg.backlog:,} messages (confirmed, 16 B), then drain"),
        Scenario("rate-10k", "fixed rate 10k msg/s, latency from intended send time",
                 base + ["--rate", "10000", "--queue", "bench-r10-{tag}"]),
        Scenario("rate-100k", "fixed rate 100k msg/s, latency from intended send time",
                 base + ["--rate", "100000", "--queue", "bench-r100-{tag}"]),
        Scenario("size-1KiB", "1 KiB bodies, confirms", conf + ["--size", "1024", "--queue", "bench-k1-{tag}"],
                 size=1024),
        Scenario("size-64KiB", "64 KiB bodies, confirms (window 100)",
                 base + ["--confirm", "100", "--size", "65536", "--queue", "bench-k64-{tag}"], size=65536),
        Scenario("size-1MiB", "1 MiB bodies, confirms (window 10), prefetch 10",
                 ["--prefetch", "10", "--confirm", "10", "--size", "1048576", "--queue", "bench-m1-{tag}"],
                 size=1048576),
        Scenario("1q-autoack", "1 producer, 1 consumer, 16 B, auto-ack (no-ack consumer)",
                 ["--auto-ack", "--queue", "bench-aa-{tag}"]),
        Scenario("1q-ack100", "1 producer, 1 consumer, 16 B, ack every 100 (multiple), prefetch 1000",
                 ack100 + ["--queue", "bench-a100-{tag}"]),
        Scenario("4p4c", "4 producers, 4 consumers on one queue, ack every 100, prefetch 1000",
                 ack100 + ["--producers", "4", "--consumers", "4", "--queue", "bench-44-{tag}"]),
        Scenario("4p1c", "4 producers, 1 consumer on one queue, ack every 100, prefetch 1000",
                 ack100 + ["--producers", "4", "--queue", "bench-41-{tag}"]),
        Scenario("1000-queues", "1000 queues, one consumer each (prefetch 100), 1 producer round-robin, confirms",
                 ["--prefetch", "100", "--confirm", "1000", "--queue-pattern", "bench-m-{tag}-%d",
                  "--queue-count", "1000", "--consumers", "1000"]),
        Idle("idle-conns", f"{cfg.connections:,} idle connections (one channel each)"),
        # The same shapes driven by lavinmqperf 2.9.1 (issue #13's table), one fresh broker per run.
        LavinPerf("lp-autoack", "lavinmqperf: 1 pub, 1 con, 16 B, auto-ack", ["-x1", "-y1", "-s16"]),
        LavinPerf("lp-ack100", "lavinmqperf: manual ack every 100, prefetch 1000", ["-a100", "-P1000"]),
        LavinPerf("lp-persistent", "lavinmqperf: persistent, confirms 1000, acks",
                  ["-p", "-c1000", "-a100", "-P1000"]),
        LavinPerf("lp-1KiB", "lavinmqperf: 1 KiB bodies, acks", ["-s1024", "-a100", "-P1000"], size=1024),
        LavinPerf("lp-64KiB", "lavinmqperf: 64 KiB bodies, ack every 10, prefetch 100",
                  ["-s65536", "-a10", "-P100"], size=65536),
        LavinPerf("lp-1MiB", "lavinmqperf: 1 MiB bodies, ack each, prefetch 10",
                  ["-s1048576", "-a1", "-P10"], size=1048576),
        LavinPerf("lp-4p4c", "lavinmqperf: 4 pubs, 4 cons, one queue, acks", ["-x4", "-y4", "-a100", "-P1000"]),
        LavinPerf("lp-4p1c", "lavinmqperf: 4 pubs, 1 con, one queue, acks", ["-x4", "-y1", "-a100", "-P1000"]),
    ]


# ---------------------------------------------------------------- report


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "–"
    if abs(v) >= 100 or digits == 0:
        return f"{v:,.0f}"
    return f"{v:,.{digits}f}"


def ratio(w, r):
    if w is None or r is None or r == 0:
        return "–"
    x = w / r
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def machine_info():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def pkg(name):
        try:
            return subprocess.run(["dpkg-query", "-W", "-f=${Version}", name], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return "?"

    return {
        "cpu": f"{os.cpu_count()} × {model}",
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "rabbitmq": pkg("rabbitmq-server"),
        "erlang": pkg("erlang-base"),
    }


def write_report(cfg, scen, results, info, started, finished, base):
    W, R = "Warren", "RabbitMQ"
    names = list(next(iter(results.values())).keys()) if results else [W, R]
    med = {s.id: {b: {} for b in names} for s in scen}
    for s in scen:
        for b in names:
            runs = [m for m in results[s.id][b] if "error" not in m]
            keys = set().union(*[m.keys() for m in runs]) if runs else set()
            for k in keys:
                med[s.id][b][k] = median([m.get(k) for m in runs])
    # Columns: the compared brokers that ran; ratios: Warren ÷ each other one.
    cols = [b for b in COMPARED if b in names]
    others = [b for b in cols if b != W]
    short = {W: "W", "LavinMQ": "L", R: "R"}
    lp = [s for s in scen if s.client == "lavinmqperf"]
    wp = [s for s in scen if s.client != "lavinmqperf"]

    def failures(s, b):
        n = sum(1 for m in results[s.id][b] if "error" in m)
        return f" ({n} failed)" if n else ""

    def head(first, per_broker, ratios=True, align="---:"):
        hdr = [first] + per_broker + ([f"Warren/{o}" for o in others] if ratios else [])
        L.append("| " + " | ".join(hdr) + " |")
        L.append("| --- | " + " | ".join([align] * (len(hdr) - 1)) + " |")

    vs = " and ".join(b for b in cols if b != W)
    L = []
    L.append(f"# Warren vs {vs} — {started:%Y-%m-%d}{' (quick smoke run)' if cfg.quick else ''}")
    L.append("")
    L.append(f"Produced by `bench/compare.sh{' --quick' if cfg.quick else ''}` "
             f"({started:%H:%M}–{finished:%H:%M} UTC). Each cell is the **median of {cfg.runs} run(s)** per broker; "
             f"runs rotate between the brokers (run 1 in the order {', '.join(short.get(b, b) for b in names)}, "
             f"each further run starting with the next broker). Ratios are Warren ÷ {' or '.join(others)} of the medians: "
             "above 1 means Warren is higher (better for throughput; worse for latency, CPU and memory).")
    L.append("")
    L.append("## Setup")
    L.append("")
    L.append(f"- Machine: {info['cpu']}, {info['memory_gib']} GiB RAM, Linux {info['kernel']}. Shared with other "
             f"work: load average {info['load_before']} before and {info['load_after']} after the matrix, so "
             "expect noise of ±20% between runs; compare ratios within this file rather than with other machines.")
    lav = (f", LavinMQ {info['lavinmq']} (prebuilt, see `../shared/tools/lavinmq/README.md`; its own data directory "
           "and ports, default settings, one process)" if "LavinMQ" in names else "")
    L.append(f"- Brokers: Warren (release build of this tree, `--log warn`){lav} and RabbitMQ {info['rabbitmq']} on "
             f"Erlang {info['erlang']} (Debian packages, started by `scripts/rabbitmq-ref.sh`, default settings), "
             "all on loopback. The load generators run on the same 2 cores: warren-perf (`crates/perf`) and, for "
             f"the `lp-*` scenarios, lavinmqperf {info.get('lavinmqperf', '')} (`lavinmqperf throughput`, LavinMQ's "
             "own load generator, a client no one here wrote).")
    L.append("- Timed runs last "
             f"{cfg.duration} s. All brokers are restarted before each scenario; the backlog, idle-connection and "
             "lavinmqperf scenarios restart the measured broker before every run (lavinmqperf declares a durable "
             "queue and leaves it behind, with whatever backlog the run built).")
    L.append("- CPU: the broker's utime+stime (`/proc/PID/stat`; RabbitMQ: the beam.smp process, all schedulers; "
             "LavinMQ: its one process, all threads) over exactly warren-perf's measured interval, divided by the "
             "messages sent or received in it (the larger; for fanout that is the deliveries); for lavinmqperf, "
             "which marks no interval, over its whole invocation (connecting and closing add a few ms). The "
             "headline tables divide by the messages *delivered*. Memory: the broker's VmRSS sampled every 100 ms "
             "during the run (peak).")
    L.append("- Latency: consumer latency = receive time − the send time stamped in the body; at fixed rates the "
             "*intended* send time (no coordinated omission). Without a rate limit (most scenarios) the producer "
             "runs flat out, so latency there mostly measures queueing: use the rate-10k/100k rows for latency. "
             "lavinmqperf's throughput summary reports no latency.")
    if info.get("warren_fsync"):
        L.append("- **Durability — who fsyncs before confirming:** Warren does: this build has its message store, "
                 "and with its default `--sync always` it confirms a persistent message on a durable queue only "
                 "after the data is fsynced (group commit), so in `1q-durable` and `lp-persistent` Warren is doing "
                 "more work per message than RabbitMQ. RabbitMQ does not: classic queues write persistent messages "
                 "to disk but send confirms without fsync. LavinMQ writes every message, persistent or not, to "
                 "memory-mapped segment files; this bench does not establish when it syncs them. Transient "
                 "messages are fsynced by none.")
        L.append("- **Memory under backlog:** this Warren build keeps at most 4 MiB of ready messages per queue in "
                 "memory (`--queue-memory`) and pages the rest to its data directory, so its RSS stays flat while "
                 "a queue grows (the `backlog` and flat-out rows). RabbitMQ 3.10 classic queues keep messages in "
                 "memory until a memory threshold and page out only then; LavinMQ's segments are memory-mapped "
                 "files, so its RSS includes the page-cache pages of the segments it touches.")
    else:
        L.append("- **Durability — who fsyncs before confirming: neither.** This Warren build keeps every message "
                 "in memory (durable storage is being built and may land later), so `1q-durable` and `backlog` "
                 "are not durable results for it. RabbitMQ classic queues write persistent messages to disk but "
                 "send confirms without fsync.")
    L.append("")
    L.append("## Scenarios")
    L.append("")
    L.append("| id | scenario | command |")
    L.append("| --- | --- | --- |")
    for s in scen:
        L.append(f"| {s.id} | {s.title} | `{s.describe(cfg)}` |")
    L.append("")

    # ------------------------------------------------ headline: delivered rate, both clients
    def headline(group, client):
        if not group:
            return
        L.append(f"### {client}")
        L.append("")
        head("scenario" if client == "warren-perf" else "scenario (lavinmqperf flags)", cols, ratios=False)
        L[-2] = L[-2][:-2] + " | " + " | ".join(f"W/{short[o]}" for o in others) + \
            " | broker CPU µs/delivered msg " + " / ".join(short[b] for b in cols) + " |"
        L[-1] = L[-1] + " ---: |" * len(others) + " --- |"
        for s in group:
            if s.id == "idle-conns":
                continue
            m = {b: med[s.id][b] for b in cols}
            label = f"{s.id} (`{s.flags()}`)" if client == "lavinmqperf" else s.id
            L.append(f"| {label} | " + " | ".join(fmt(m[b].get("throughput")) + failures(s, b) for b in cols) +
                     " | " + " | ".join(ratio(m[W].get("throughput"), m[o].get("throughput")) for o in others) +
                     " | " + " / ".join(fmt(m[b].get("cpu_us_per_delivered"), 1) for b in cols) + " |")
        L.append("")

    L.append("## Headline: delivered (consume) rate, msg/s")
    L.append("")
    L.append("Messages delivered to consumers per second (fanout: all 10 queues' deliveries; backlog: the drain), "
             "medians; " + " and ".join(f"W/{short[o]} is Warren ÷ {o}" for o in others) + ". Broker CPU is divided by the "
             "messages delivered, so a broker that accepts publishes it does not deliver pays for them here.")
    L.append("")
    headline(lp, "lavinmqperf")
    headline(wp, "warren-perf")

    # Consumers starved by publishers: 4 publishers and 1 consumer against 1 and 1 on one queue.
    pairs = [(c, one, four) for c, one, four in (("lavinmqperf", "lp-ack100", "lp-4p1c"),
                                                  ("warren-perf", "1q-ack100", "4p1c"))
             if one in med and four in med]
    if pairs:
        L.append("### Consumer starvation: 4 publishers and 1 consumer on one queue")
        L.append("")
        L.append("Delivered with 4 publishers ÷ delivered with 1 (both: acks every 100, prefetch 1000); the "
                 "target in issue #13 is at least 0.80, with publishers slowed to what the queue delivers.")
        L.append("")
        L.append("| client | broker | 1 pub delivered | 4 pubs delivered | 4 pubs published | 4 pubs ÷ 1 pub delivered |")
        L.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for c, one, four in pairs:
            for b in cols:
                d1, d4 = med[one][b].get("throughput"), med[four][b].get("throughput")
                L.append(f"| {c} | {b} | {fmt(d1)} | {fmt(d4)} | {fmt(med[four][b].get('publish_rate'))} | "
                         f"{ratio(d4, d1)} |")
        L.append("")

    big = [s for s in scen if s.size >= 65536]
    if big:
        L.append("### Large bodies: delivered MiB/s")
        L.append("")
        head("scenario", cols)
        for s in big:
            v = {b: med[s.id][b].get("throughput") for b in cols}
            v = {b: (x * s.size / 2**20 if x is not None else None) for b, x in v.items()}
            L.append(f"| {s.id} | " + " | ".join(fmt(v[b], 1) for b in cols) + " | " +
                     " | ".join(ratio(v[W], v[o]) for o in others) + " |")
        L.append("")

    def table(title, note, metric, digits=0, rows=None, group=None):
        L.append(f"## {title}")
        L.append("")
        if note:
            L.append(note)
            L.append("")
        head("scenario", cols)
        for s in (group if group is not None else scen):
            for label, key in (rows(s) if rows else [(s.id, metric)]):
                v = {b: med[s.id][b].get(key) for b in cols}
                if all(x is None for x in v.values()):
                    continue
                L.append(f"| {label} | " + " | ".join(fmt(v[b], digits) + failures(s, b) for b in cols) + " | " +
                         " | ".join(ratio(v[W], v[o]) for o in others) + " |")
        L.append("")

    table("Throughput (msg/s)", "Messages delivered to consumers per second (fanout: all 10 queues' deliveries); "
          "for the backlog, the publish rate (confirmed) and the drain rate; idle: connections opened per second; "
          "for lavinmqperf and the multi-publisher rows also the publish rate.",
          "throughput", rows=lambda s: (
              [(f"{s.id} publish", "publish_rate"), (f"{s.id} drain", "throughput")] if s.id == "backlog" else
              [(f"{s.id} (conn/s)", "connections_per_s")] if s.id == "idle-conns" else
              [(s.id, "throughput"), (f"{s.id} publish", "publish_rate")] if s.client == "lavinmqperf" or
              s.id in ("4p4c", "4p1c") else
              [(s.id, "throughput")]))

    def latency(key_p50, key_p99, p999, intro):
        rows = [s for s in scen if any(med[s.id][b].get(key_p99) is not None for b in cols)]
        if not rows:
            return
        L.extend(intro)
        keys = [("p50", key_p50), ("p99", key_p99)] + ([("p99.9", "p999")] if p999 else [])
        head("scenario", [f"{b} {p}" for b in cols for p, _ in keys], ratios=False)
        L[-2] = L[-2][:-2] + " | " + " | ".join(f"Warren/{o} p99" for o in others) + " |"
        L[-1] = L[-1] + " ---: |" * len(others)
        for s in rows:
            m = {b: med[s.id][b] for b in cols}
            L.append(f"| {s.id} | " + " | ".join(fmt(m[b].get(k)) for b in cols for _, k in keys) + " | " +
                     " | ".join(ratio(m[W].get(key_p99), m[o].get(key_p99)) for o in others) + " |")
        L.append("")

    latency("p50", "p99", True, ["## Latency (µs)", "",
                                 "Consumer latency percentiles (warren-perf); p99 ratios in the last columns.", ""])
    latency("confirm_p50", "confirm_p99", False,
            ["Publisher-confirm latency (µs, from the publish's send time to its basic.ack):", ""])

    table("Broker CPU per message (µs)", "Broker CPU time ÷ messages (the larger of sent and received); idle: CPU "
          "per connection opened (µs). The budget in the design notes is about 1 µs per message.",
          "cpu_us_per_msg", digits=2,
          rows=lambda s: [(f"{s.id} (per conn)", "cpu_us_per_conn")] if s.id == "idle-conns" else
          [(s.id, "cpu_us_per_msg")])

    table("Broker memory", "Peak RSS in MiB during the run; for the idle connections also KiB per connection, for "
          "the backlog bytes per queued message (peak minus the RSS before filling, ÷ messages).", "peak_rss_mib",
          digits=1, rows=lambda s: [(f"{s.id} peak MiB", "peak_rss_mib")] + (
              [(f"{s.id} KiB/connection", "kib_per_conn")] if s.id == "idle-conns" else
              [(f"{s.id} bytes/message", "bytes_per_queued_msg")] if s.id == "backlog" else []))

    L.append("## The load generator's own cost")
    L.append("")
    L.append("Load-generator CPU per message (µs, median; warren-perf's own count, lavinmqperf's from its "
             "rusage) in the same runs — it shares the 2 cores with the broker:")
    L.append("")
    head("scenario", [f"against {b}" for b in cols], ratios=False)
    for s in scen:
        v = [med[s.id][b].get("client_cpu_us_per_msg") for b in cols]
        if any(x is not None for x in v):
            L.append(f"| {s.id} | " + " | ".join(fmt(x, 2) for x in v) + " |")
    L.append("")
    if BASELINE in names:
        regression_table(L, scen, med, info.get("baseline", "an earlier build"))
    errors = [(s.id, b, m["error"]) for s in scen for b in names for m in results[s.id][b] if "error" in m]
    if errors:
        L.append("## Failed runs")
        L.append("")
        for sid, b, e in errors:
            L.append(f"- {sid} / {b}: {e}")
        L.append("")
    L.append(f"Raw numbers of every run: `{os.path.basename(base)}.json`; chart: `{os.path.basename(base)}.png`.")
    L.append("")
    with open(base + ".md", "w") as f:
        f.write("\n".join(L))
    return med


def regression_table(L, scen, med, label):
    """This build against the baseline Warren measured in the same runs."""
    L.append("## Regression check: this build vs the baseline")
    L.append("")
    L.append(f"The baseline is {label}, run as one more broker in the same rotation (same machine, same load). "
             "Ratios are this build ÷ baseline of the medians: for throughput below 1 is a slowdown, for CPU "
             "and memory above 1 is a cost.")
    L.append("")
    L.append("| scenario | metric | this build | baseline | this/baseline |")
    L.append("| --- | --- | ---: | ---: | ---: |")
    metrics = [("throughput", "msg/s", 0), ("publish_rate", "publish msg/s", 0), ("p99", "p99 µs", 0),
               ("cpu_us_per_msg", "CPU µs/msg", 2), ("peak_rss_mib", "peak RSS MiB", 1)]
    for s in scen:
        w, b = med[s.id]["Warren"], med[s.id][BASELINE]
        for key, label_, digits in metrics:
            if key == "publish_rate" and not (s.id in ("backlog", "4p4c", "4p1c") or s.client == "lavinmqperf"):
                continue
            if w.get(key) is None and b.get(key) is None:
                continue
            L.append(f"| {s.id} | {label_} | {fmt(w.get(key), digits)} | {fmt(b.get(key), digits)} | "
                     f"{ratio(w.get(key), b.get(key))} |")
    L.append("")


def chart_title(med):
    ran = next(iter(med.values())) if med else {}
    return "Warren vs " + " and ".join(b for b in COMPARED[1:] if b in ran)


def chart(scen, med, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("Throughput (msg/s, higher is better)", lambda m, s: m.get("connections_per_s") if s.id == "idle-conns"
         else m.get("throughput")),
        ("Consumer p99 latency (µs, lower is better)", lambda m, s: m.get("p99")),
        ("Broker CPU per message (µs, lower is better)", lambda m, s: m.get("cpu_us_per_conn") if s.id == "idle-conns"
         else m.get("cpu_us_per_msg")),
        ("Broker peak RSS (MiB, lower is better)", lambda m, s: m.get("peak_rss_mib")),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(16 if len(scen) < 16 else 22, 10))
    ids = [s.id for s in scen]
    x = range(len(ids))
    present = [b for b in COMPARED if b in med[ids[0]]]
    # Annotated ratio: Warren ÷ the fastest reference there is (LavinMQ when it ran).
    ref = "LavinMQ" if "LavinMQ" in present else "RabbitMQ"
    width = 0.8 / len(present)
    colors = {"Warren": "#2a7ab9", "LavinMQ": "#59a14f", "RabbitMQ": "#f28e2b"}
    for ax, (ptitle, get) in zip(axes.flat, panels):
        for k, b in enumerate(present):
            off = (k - (len(present) - 1) / 2) * width
            vals = [get(med[s.id][b], s) for s in scen]
            ax.bar([i + off for i in x], [v if v else 0 for v in vals], width=width, label=b, color=colors[b])
        for i, s in enumerate(scen):
            w, r = get(med[s.id]["Warren"], s), get(med[s.id][ref], s)
            if w and r:
                ax.annotate(f"×{w / r:.2g}", (i, max(w, r)), ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_title(ptitle, fontsize=10)
        ax.set_xticks(list(x))
        ax.set_xticklabels(ids, rotation=35, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title + f"  (medians; ×N = Warren ÷ {ref}; idle-conns: conn/s and CPU µs per connection)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------- main


def warren_fsyncs(binary):
    """Whether this Warren build confirms persistent messages only after fsync (its --sync setting)."""
    try:
        help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--sync" in help_text


def runs_here(binary):
    """Whether BINARY exists and starts (its shared libraries are installed)."""
    try:
        return subprocess.run([binary, "--version"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def version_of(binary):
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.strip().splitlines() or ["?"])[0]


def report_from(cfg):
    with open(cfg.report_from) as f:
        data = json.load(f)
    cfg.runs, cfg.duration, cfg.quick = data["runs"], data["duration"], data.get("quick", "-quick" in cfg.report_from)
    cfg.backlog = 100_000 if cfg.quick else 1_000_000
    cfg.connections = 2_000 if cfg.quick else 10_000
    scen = [s for s in scenarios(cfg) if s.id in data["results"]]
    results = {s.id: {b: [r["metrics"] for r in runs] for b, runs in data["results"][s.id].items()} for s in scen}
    started = datetime.datetime.fromisoformat(data["started"])
    finished = datetime.datetime.fromisoformat(data["finished"])
    base = cfg.report_from[:-len(".json")] if cfg.report_from.endswith(".json") else cfg.report_from
    med = write_report(cfg, scen, results, data["machine"], started, finished, base)
    chart(scen, med, base + ".png", f"{chart_title(med)} {started:%Y-%m-%d}")
    log(f"rewrote {base}.md and .png")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one 3 s run per scenario and broker (smoke test)")
    ap.add_argument("--runs", type=int, help="runs per broker and scenario (default 3)")
    ap.add_argument("--duration", type=int, help="seconds per timed run (default 10)")
    ap.add_argument("--only", help="comma-separated scenario ids")
    ap.add_argument("--list", action="store_true", help="list the scenarios and exit")
    ap.add_argument("--report-from", metavar="JSON", help="rewrite the .md and .png from a results .json")
    ap.add_argument("--baseline", metavar="BIN",
                    help="also run this warren binary (an earlier build) in the same rotation, and add a "
                         "regression table: this build vs the baseline")
    ap.add_argument("--baseline-label", metavar="TEXT", help="how the report names the baseline (e.g. a commit)")
    ap.add_argument("--lavinmq", metavar="DIR", default=LAVINMQ_DIR,
                    help=f"directory with the lavinmq and lavinmqperf binaries (default $LAVINMQ_DIR or {LAVINMQ_DIR})")
    ap.add_argument("--no-lavinmq", action="store_true",
                    help="leave LavinMQ out of the rotation (the lp-* scenarios still run lavinmqperf if present)")
    cfg = ap.parse_args()
    if cfg.report_from:
        return report_from(cfg)
    cfg.runs = cfg.runs or (1 if cfg.quick else 3)
    cfg.duration = cfg.duration or (3 if cfg.quick else 10)
    cfg.backlog = 100_000 if cfg.quick else 1_000_000
    cfg.connections = 2_000 if cfg.quick else 10_000
    scen = scenarios(cfg)
    if cfg.list:
        for s in scen:
            print(f"{s.id:14} {s.title}\n{'':14} {s.describe(cfg)}")
        return
    if cfg.only:
        want = set(cfg.only.split(","))
        unknown = want - {s.id for s in scen}
        if unknown:
            sys.exit(f"unknown scenario(s): {', '.join(sorted(unknown))}")
        scen = [s for s in scen if s.id in want]
    lavin_ok = {b: runs_here(os.path.join(cfg.lavinmq, b)) for b in ("lavinmq", "lavinmqperf")}
    if not lavin_ok["lavinmqperf"] and any(s.client == "lavinmqperf" for s in scen):
        log(f"no working lavinmqperf in {cfg.lavinmq} (see its README; install.sh installs its libraries): "
            "skipping the lp-* scenarios")
        scen = [s for s in scen if s.client != "lavinmqperf"]
    use_lavinmq = not cfg.no_lavinmq and lavin_ok["lavinmq"]
    if not cfg.no_lavinmq and not use_lavinmq:
        log(f"no working lavinmq in {cfg.lavinmq}: LavinMQ left out of the rotation")
    if not scen:
        sys.exit("no scenarios to run")

    # Private copies of the binaries: the shared target directory may be rebuilt meanwhile.
    work = tempfile.mkdtemp(prefix="warren-bench-")
    perf = os.path.join(work, "warren-perf")
    warren_bin = os.path.join(work, "warren")
    target = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR") or "target", "release")
    shutil.copy2(os.path.join(target, "warren-perf"), perf)
    shutil.copy2(os.path.join(target, "warren"), warren_bin)
    cfg.perf = perf
    cfg.lavinmqperf = os.path.join(cfg.lavinmq, "lavinmqperf")
    if cfg.baseline:
        baseline_bin = os.path.join(work, "warren-baseline")
        shutil.copy2(cfg.baseline, baseline_bin)

    started = datetime.datetime.now(datetime.timezone.utc)
    os.makedirs(RESULTS, exist_ok=True)
    base = os.path.join(RESULTS, started.strftime("%Y-%m-%d") + ("-quick" if cfg.quick else ""))
    info = machine_info()
    info["warren_fsync"] = warren_fsyncs(warren_bin)
    info["load_before"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    warren, rabbit = Warren(warren_bin, work), RabbitMQ()
    brokers = {"Warren": warren, "RabbitMQ": rabbit}
    if use_lavinmq:
        brokers["LavinMQ"] = LavinMQ(cfg.lavinmq, work)
        info["lavinmq"] = version_of(os.path.join(cfg.lavinmq, "lavinmq"))
    if any(s.client == "lavinmqperf" for s in scen):
        info["lavinmqperf"] = version_of(cfg.lavinmqperf)
    if cfg.baseline:
        brokers[BASELINE] = Warren(baseline_bin, work, BASELINE)
        info["baseline"] = f"`{cfg.baseline_label or cfg.baseline}`"
    names = list(brokers)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    results = {s.id: {name: [] for name in names} for s in scen}
    raw = {s.id: {name: [] for name in names} for s in scen}
    try:
        log(", ".join(f"{b.name} on port {b.port}" for b in brokers.values()) +
            f"; {cfg.runs} run(s) x {len(scen)} scenarios")
        for s in scen:
            log(f"scenario {s.id}: {s.title} (restarting the brokers)")
            for b in brokers.values():
                b.restart()
            for run in range(cfg.runs):
                # Each run starts with the next broker, so none always goes first.
                order = names[run % len(names):] + names[:run % len(names)]
                for name in order:
                    b = brokers[name]
                    if s.fresh_per_run and run > 0:
                        b.restart()
                    tag = f"{run + 1}-{name[0].lower()}"
                    m, runs = s.run(cfg, b, tag)
                    results[s.id][name].append(m)
                    raw[s.id][name].append({"metrics": m, "invocations": runs})
                    if "error" in m:
                        log(f"  {name:8} run {run + 1}: FAILED: {m['error']}")
                    else:
                        log(f"  {name:8} run {run + 1}: " + ", ".join(
                            f"{k}={v:,.1f}" for k, v in m.items() if v is not None and not k.startswith("client")))
    except KeyboardInterrupt:
        log("interrupted; writing what was measured")
    except Exception as e:  # a broker that will not start: keep what was measured
        log(f"stopped by an error ({e!r}); writing what was measured")
    finally:
        for b in brokers.values():
            b.stop()
    finished = datetime.datetime.now(datetime.timezone.utc)
    info["load_after"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with open(base + ".json", "w") as f:
        json.dump({"machine": info, "runs": cfg.runs, "duration": cfg.duration, "quick": cfg.quick,
                   "started": started.isoformat(),
                   "finished": finished.isoformat(), "scenarios": {s.id: s.title for s in scen}, "results": raw},
                  f, indent=1)
    med = write_report(cfg, scen, results, info, started, finished, base)
    try:
        chart(scen, med, base + ".png", f"{chart_title(med)} {started:%Y-%m-%d}")
    except Exception as e:  # the tables matter more than the picture
        log(f"chart failed: {e}")
    shutil.rmtree(work, ignore_errors=True)
    log(f"wrote {base}.md, .png and .json")


if __name__ == "__main__":
    main()
