#!/usr/bin/env python3
"""The management API's budget, measured against LavinMQ and RabbitMQ in the same run.

For each broker (Warren's release build, LavinMQ 2.9.1 from ../shared/tools/lavinmq or
LAVINMQ_DIR, skipped when absent, and a private RabbitMQ with its management plugin, from
scripts/rabbitmq-ref.sh), one after the other, on a fresh node: declares QUEUES queues and opens CONNECTIONS AMQP
connections (pika, one channel each), waits until the API counts them all, then times the
requests of issue #12's budget (each repeated, median and worst reported):

  GET /api/overview                          budget: under 50 ms
  GET /api/queues?page=1&page_size=100       budget: under 1 s
  GET /api/queues                            budget: under 3 s (whole)
  GET /api/connections?page=1&page_size=100

Usage: bench/management.py [--queues N] [--connections N] [--repeat N] [--only warren|lavinmq|rabbitmq]
                           [--out FILE.md]
Run as root (the reference RabbitMQ runs as the rabbitmq user); build Warren first
(`cargo build --release -p warren-server`). The table gives each broker's median and worst, and
how many times Warren's median the others' medians are.
"""

import argparse
import base64
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import pika

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rabbitmq_port(skip=()):
    """A port P with P+20000 and P+30000 free too, as rabbitmq-ref.sh needs (it takes its
    management port from the same range)."""
    for p in range(23000 + os.getpid() % 1000, 35000, 7):
        if p in skip:
            continue
        ok = True
        for q in (p, p + 20000, p + 30000):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", q))
                except OSError:
                    ok = False
        if ok:
            return p
    raise SystemExit("no free port triple for RabbitMQ")


def api(port, path):
    """One GET as guest: (seconds, status, body bytes)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    token = base64.b64encode(b"guest:guest").decode()
    request.add_header("Authorization", f"Basic {token}")
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        body = response.read()
        return time.perf_counter() - started, response.status, body


def wait_for(what, check, deadline_s):
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


class Warren:
    name = "Warren"

    def __enter__(self):
        self.amqp, self.http = free_port(), free_port()
        self.data = tempfile.mkdtemp(prefix="warren-mgmt-bench-")
        binary = os.path.join(ROOT, "target/release/warren")
        self.process = subprocess.Popen(
            [binary, "--listen", f"127.0.0.1:{self.amqp}", "--data-dir", self.data,
             "--management-listen", f"127.0.0.1:{self.http}", "--prometheus-listen", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("Warren's API", lambda: api(self.http, "/api/overview")[1] == 200, 30)
        return self

    def __exit__(self, *_):
        self.process.kill()
        self.process.wait()
        subprocess.run(["rm", "-rf", self.data], check=False)


class RabbitMQ:
    name = "RabbitMQ 3.10.8"

    def __enter__(self):
        self.amqp = rabbitmq_port()
        self.http = rabbitmq_port(skip={self.amqp})
        subprocess.run([os.path.join(ROOT, "scripts/rabbitmq-ref.sh"), "start", str(self.amqp),
                        "--management", str(self.http)], check=True, stdout=subprocess.DEVNULL)
        return self

    def __exit__(self, *_):
        subprocess.run([os.path.join(ROOT, "scripts/rabbitmq-ref.sh"), "stop", str(self.amqp)],
                       check=False, stdout=subprocess.DEVNULL)


class LavinMQ:
    name = "LavinMQ 2.9.1"
    home = os.environ.get("LAVINMQ_DIR", os.path.join(ROOT, "../shared/tools/lavinmq"))

    def __enter__(self):
        self.amqp, self.http, cluster = free_port(), free_port(), free_port()
        self.data = tempfile.mkdtemp(prefix="lavinmq-mgmt-bench-")
        self.process = subprocess.Popen(
            [os.path.join(self.home, "lavinmq"), f"--data-dir={self.data}", "--bind=127.0.0.1",
             "--amqp-bind=127.0.0.1", "--http-bind=127.0.0.1", f"--amqp-port={self.amqp}",
             f"--http-port={self.http}", "--mqtt-port=-1", "--mqtts-port=-1", "--metrics-http-port=-1",
             f"--clustering-port={cluster}", f"--control-unix-path={self.data}/ctl.sock"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("LavinMQ's API", lambda: api(self.http, "/api/overview")[1] == 200, 60)
        return self

    def __exit__(self, *_):
        self.process.terminate()
        self.process.wait()
        subprocess.run(["rm", "-rf", self.data], check=False)


def populate(broker, queues, connections):
    params = pika.ConnectionParameters("127.0.0.1", broker.amqp, heartbeat=0,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    setup = pika.BlockingConnection(params)
    channel = setup.channel()
    for i in range(queues):
        channel.queue_declare(f"bench.{i:05}")
    for i in range(0, queues, 10):
        channel.basic_publish("", f"bench.{i:05}", b"x" * 16)
    held = []
    for _ in range(connections - 1):
        c = pika.BlockingConnection(params)
        c.channel()
        held.append(c)
    held.append(setup)

    def counted():
        totals = json.loads(api(broker.http, "/api/overview")[2])["object_totals"]
        return totals["queues"] >= queues and totals["connections"] >= connections

    # RabbitMQ's statistics arrive every 5 s, and 10,000 queues take it a while.
    wait_for(f"{broker.name}'s API to count everything", counted, 300)
    return held


def measure(broker, repeat):
    rows = []
    for path, times in [
        ("/api/overview", repeat),
        ("/api/queues?page=1&page_size=100", repeat),
        ("/api/queues", max(3, repeat // 4)),
        ("/api/connections?page=1&page_size=100", repeat),
    ]:
        took, size = [], 0
        for _ in range(times):
            seconds, status, body = api(broker.http, path)
            assert status == 200, (path, status)
            took.append(seconds)
            size = len(body)
        rows.append((path, statistics.median(took), max(took), size, times))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queues", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument("--only", choices=["warren", "lavinmq", "rabbitmq"])
    parser.add_argument("--out")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.connections * 2 + 256)), hard))

    brokers = [b for b in (Warren, LavinMQ, RabbitMQ) if args.only in (None, b.__name__.lower())]
    if not os.path.exists(os.path.join(LavinMQ.home, "lavinmq")) and args.only is None:
        print(f"no LavinMQ in {LavinMQ.home} (LAVINMQ_DIR): measuring without it", file=sys.stderr)
        brokers.remove(LavinMQ)
    results = {}
    for kind in brokers:
        with kind() as broker:
            started = time.monotonic()
            held = populate(broker, args.queues, args.connections)
            print(f"{broker.name}: {args.queues} queues and {args.connections} connections "
                  f"ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
            results[broker.name] = measure(broker, args.repeat)
            for c in held:
                try:
                    c.close()
                except Exception:  # noqa: BLE001 - closing is best effort at the end of a run
                    pass

    lines = [f"# Management API with {args.queues} queues and {args.connections} connections",
             "", f"`bench/management.py --queues {args.queues} --connections {args.connections} "
             f"--repeat {args.repeat}`, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores.",
             "", "| request | " + " | ".join(f"{n} median / worst" for n in results)
             + "".join(f" | {n} / Warren" for n in list(results)[1:]) + " | body bytes |",
             "|---|" + "---:|" * (2 * len(results))]
    names = list(results)
    for i, row in enumerate(results[names[0]]):
        cells = []
        for n in names:
            path, median, worst, size, times = results[n][i]
            cells.append(f"{median * 1000:.1f} ms / {worst * 1000:.1f} ms")
        for n in names[1:]:
            cells.append(f"{results[n][i][1] / results[names[0]][i][1]:.1f}x")
        sizes = " / ".join(str(results[n][i][3]) for n in names)
        lines.append(f"| `GET {row[0]}` (x{row[4]}) | " + " | ".join(cells) + f" | {sizes} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


if __name__ == "__main__":
    main()
