"""Entrypoint of the fault-injection test image: behaves as `model` in config.json says.

Stdlib only (the image is the offline base: python3 and nothing else).
fault:ok-<n>        n progress ticks of 0.1 s, then a valid result.json (from the template)
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


def main():
    with open(f"{WORK}/config.json") as handle:
        request = json.load(handle)
    model = request["config"]["model"]
    print(f"fault image: {model}", flush=True)
    if model != "fault:stubborn":
        signal.signal(signal.SIGTERM, on_term)
    progress("started")
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
    print(f"unknown fault {model}", flush=True)
    return 2


sys.exit(main())
