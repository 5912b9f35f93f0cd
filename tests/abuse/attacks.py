#!/usr/bin/env python3
"""Attacks on a running vfguard daemon's API socket, each bounded in count and time, sent only to
the Unix socket given (never a network address). Prints one line per check: `ok NAME` or
`FAIL NAME: why`; exits 1 if any failed.

  attacks.py SOCKET
"""
import os
import socket
import sys
import time

SOCK = sys.argv[1]
failed = 0


def check(name, ok, why=""):
    global failed
    print(f"{'ok' if ok else 'FAIL'} {name}{'' if ok else ': ' + why}", flush=True)
    failed += 0 if ok else 1


def connect(timeout=15.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(SOCK)
    return s


def request(raw, timeout=15.0):
    """Sends raw bytes, returns the status line (or what went wrong)."""
    try:
        return _request(raw, timeout)
    except OSError as e:
        return f"no answer: {e!r}"


def _request(raw, timeout):
    s = connect(timeout)
    try:
        s.sendall(raw)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


def get(path):
    return request(f"GET {path} HTTP/1.1\r\nHost: vfguard\r\nConnection: close\r\n\r\n".encode())


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


pid = int(sys.argv[2])
before = fds(pid)

# 1. 1100 idle connections (more than the default 1024 fds): the daemon accepts at most its cap
# (64); the rest wait in the kernel's backlog, costing it nothing. The API is theirs while they
# hold it (a client queued behind 1000 others waits its turn), but the agent goes on containing,
# and once they leave the API answers at once.
idle = []
for _ in range(1100):
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex(SOCK)
        idle.append(s)
    except OSError:
        break
time.sleep(2)
during = fds(pid)
check("idle_connections_cost_bounded_fds", during - before <= 80,
      f"{during - before} more fds with {len(idle)} idle clients")
for s in idle:
    s.close()
t0 = time.monotonic()
status = get("/v1/status")
check("status_answered_once_the_flood_left", status.startswith("HTTP/1.1 200"), status)
check("answered_at_once", time.monotonic() - t0 < 5, f"{time.monotonic() - t0:.1f} s")

# 2. Slowloris: headers one byte at a time are dropped, not waited for forever.
s = connect(20)
dropped = False
t0 = time.monotonic()
try:
    for b in b"GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nX-Slow: " + b"a" * 200:
        s.send(bytes([b]))
        time.sleep(0.1)
        if time.monotonic() - t0 > 15:
            break
except OSError:
    dropped = True
if not dropped:
    try:
        dropped = s.recv(1) == b""
    except OSError:
        dropped = True
s.close()
check("slow_headers_dropped", dropped, "the connection was still open after 15 s")

# 3. Oversized headers get a refusal, not a process that grows (the head is read in chunks: the
# cap of 64 KiB holds to within one read).
status = request(b"GET /v1/status HTTP/1.1\r\nHost: vfguard\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n")
check("oversized_headers_refused",
      status.split(" ")[1:2] == ["431"] or "Broken pipe" in status or "reset" in status, status)

# 4. An id past i64::MAX is a refusal, not a 500.
status = get("/v1/incidents/18446744073709551615")
check("huge_incident_id_is_4xx", status.split(" ")[1:2] and status.split(" ")[1].startswith("4"),
      status)

# 5. Garbage request lines.
status = request(b"\x00\x01\x02 \xff\xfe HTTP/9.9\r\n\r\n")
check("garbage_request_refused", status.startswith("HTTP/1.1 4") or status == "", status)

after = fds(pid)
check("fds_back_after_the_attacks", after - before <= 8, f"{after - before} fds more than before")
sys.exit(1 if failed else 0)
