"""Entrypoint of the fault-injection test image: behaves as `model` in config.json says.

Stdlib only (the image is the offline base: python3 and nothing else).
fault:ok-<n>        n progress ticks of 0.1 s, then a valid result.json (from the template)
fault:net-<n>       prints its network interfaces, then as fault:ok-<n>
fault:crash         exit 3, no files
fault:error         error.json (a handled failure), exit 1
fault:hang          progress every 0.2 s forever (only the timeout stops it)
fault:stall         no progress, sleeps forever (the stall timeout stops it)
fault:stubborn      progress forever and ignores SIGTERM (only SIGKILL stops it)
fault:oom           allocates memory until the kernel kills it
fault:forkbomb      forks sleeping children until a fork is refused, keeps trying for 1 s, exit 4
                    (exit 5 after 2000 children: no limit stopped it; the test fails, not the host)
fault:corrupt-result  exit 0 with a result.json that is not valid
fault:no-result     exit 0, no result.json
Work-folder traps (what a hostile image could leave for the host; PATH is a host path):
fault:link-log:PATH   container.log replaced by a link to PATH, then "secret?" printed, exit 3
fault:link-error:PATH error.json is a link to PATH, exit 1
fault:fifo-result     result.json is a FIFO, exit 0
fault:zero-result     result.json is a link to /dev/zero, exit 0
fault:big-result      result.json is a 2 GiB (sparse) file, exit 0
fault:fifo-progress   progress.jsonl replaced by a FIFO, then sleeps forever
fault:long-line       a 2 GiB (sparse) progress line without a newline, then sleeps forever
fault:escape          error.json whose message holds terminal escapes and a spreadsheet formula
fault:chatty          prints 80 MiB, then as fault:ok-1
"""

import json
import os
import signal
import sys
import time

WORK = "/llem/work"


def progress(event, **extra):
    with open(f"{WORK}/progress.jsonl", "a") as handle:
        handle.write(json.dumps({"event": event, "t": time.time(), **extra}) + "\n")


def write_atomic(name, data):
    tmp = f"{WORK}/.{name}.tmp"
    with open(tmp, "w") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, f"{WORK}/{name}")


def on_term(signum, frame):
    write_atomic("error.json", json.dumps({"type": "Interrupted", "message": "SIGTERM"}))
    sys.exit(1)


def fork_loop():
    children = 0
    while children < 2000:
        try:
            pid = os.fork()
        except OSError as error:
            print(f"fork refused after {children} children: {error}", flush=True)
            deadline = time.time() + 1.0  # a runaway pool keeps trying
            while time.time() < deadline:
                try:
                    if os.fork() == 0:
                        os._exit(0)
                except OSError:
                    time.sleep(0.01)
            return 4
        if pid == 0:
            time.sleep(600)
            os._exit(0)
        children += 1
    print("2000 children and no fork refused: no process limit", flush=True)
    return 5


def replace(name, make):
    path = f"{WORK}/{name}"
    if os.path.lexists(path):
        os.unlink(path)
    make(path)


def sleep_forever():
    while True:
        time.sleep(1)


def traps(model):
    kind, _, target = model.partition(":")[2].partition(":")
    if kind == "link-log":
        replace("container.log", lambda p: os.symlink(target, p))
        print("secret? written after the link", flush=True)
        time.sleep(0.5)
        return 3
    if kind == "link-error":
        replace("error.json", lambda p: os.symlink(target, p))
        return 1
    if kind == "fifo-result":
        replace("result.json", os.mkfifo)
        return 0
    if kind == "zero-result":
        replace("result.json", lambda p: os.symlink("/dev/zero", p))
        return 0
    if kind == "big-result":
        with open(f"{WORK}/result.json", "wb") as handle:
            handle.truncate(2 << 30)
        return 0
    if kind == "fifo-progress":
        replace("progress.jsonl", os.mkfifo)
        sleep_forever()
    if kind == "long-line":
        with open(f"{WORK}/progress.jsonl", "ab") as handle:
            handle.write(b'{"event": "batch", "detail": "')
            handle.truncate(2 << 30)
        sleep_forever()
    if kind == "escape":
        message = "=HYPERLINK(1)\x1b]0;retitled\x07\x1b[2J\x1b[31mred\x1b[0m\x1b]52;c;Y2xpcA==\x07"
        write_atomic("error.json", json.dumps({"type": "Hostile\x1b[5m", "message": message}))
        print("log line\x1b]0;retitled-by-log\x07", flush=True)
        return 1
    return None


def main():
    with open(f"{WORK}/config.json") as handle:
        request = json.load(handle)
    model = request["config"]["model"]
    print(f"fault image: {model}", flush=True)
    if model != "fault:stubborn":
        signal.signal(signal.SIGTERM, on_term)
    progress("started")
    if model == "fault:chatty":
        line = b"x" * 1023 + b"\n"
        for _ in range(80 * 1024):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
        model = "fault:ok-1"
    if model.startswith("fault:net-"):
        print(f"interfaces: {sorted(os.listdir('/sys/class/net'))}", flush=True)
        secrets = sorted(k for k in os.environ if "TOKEN" in k)
        print(f"token variables: {secrets}", flush=True)
        model = model.replace("fault:net-", "fault:ok-")
    if model.startswith("fault:ok-"):
        for i in range(int(model.rsplit("-", 1)[1])):
            time.sleep(0.1)
            progress("batch", i=i + 1, n=int(model.rsplit("-", 1)[1]))
        with open("/fault/result-template.json") as handle:
            result = json.load(handle)
        result["context"] = request["context"]
        result["config"] = request["config"]
        write_atomic("result.json", json.dumps(result))
        progress("finished")
        return 0
    if model == "fault:crash":
        print("about to crash", flush=True)
        return 3
    if model == "fault:error":
        write_atomic(
            "error.json",
            json.dumps({"type": "ValueError", "message": "scripted failure", "traceback": ""}),
        )
        return 1
    if model in ("fault:hang", "fault:stubborn"):
        while True:
            progress("batch", i=1, n=1)
            time.sleep(0.2)
    if model == "fault:stall":
        while True:
            time.sleep(1)
    if model == "fault:oom":
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    if model == "fault:forkbomb":
        return fork_loop()
    if model == "fault:corrupt-result":
        write_atomic("result.json", '{"schema_version": 1, "truncated": ')
        return 0
    if model == "fault:no-result":
        return 0
    trap = traps(model)
    if trap is not None:
        return trap
    print(f"unknown fault {model}", flush=True)
    return 2


sys.exit(main())
