#!/usr/bin/env python3
"""The gRPC example against a real peer: Python's grpcio.

    pip install grpcio
    cargo build --example grpc
    python3 examples/grpc/interop.py [path/to/examples/grpc]

1. grpcio's client calls the example's server (`grpc --addr 127.0.0.1:0`):
   Echo (bytes compared), Count (every reply, in order), Slow past a deadline
   (DEADLINE_EXCEEDED), and an unknown method (UNIMPLEMENTED).
2. The example's client (`grpc client ADDR`: the tonic client over
   `GrpcChannel`) calls a grpcio server of the same `echo.Echo` service, and
   the server sees the `grpc-timeout` the client sent.

No protobuf package is needed: the five messages are encoded by hand.
Not part of `cargo test`; it exits non-zero on the first failure.
"""

import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def fields(data):
    """Decodes a message of varint and length-delimited fields."""
    out, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        tag, wire = key >> 3, key & 7
        if wire == 0:
            out[tag], i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            out[tag], i = data[i : i + n], i + n
        else:
            raise ValueError(f"wire type {wire}")
    return out


def read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def bytes_field(tag, value):
    return varint(tag << 3 | 2) + varint(len(value)) + value if value else b""


def uint_field(tag, value):
    return varint(tag << 3) + varint(value) if value else b""


def ident(b):
    return b


def check(cond, what):
    if not cond:
        sys.exit(f"FAIL: {what}")
    print(f"ok: {what}")


def python_client(addr):
    with grpc.insecure_channel(addr) as channel:
        echo = channel.unary_unary("/echo.Echo/Echo", ident, ident)
        for size in (0, 1, 1000, 1 << 20):
            payload = os.urandom(size)
            reply = echo(bytes_field(1, payload), timeout=10)
            check(fields(reply).get(1, b"") == payload, f"Echo of {size} bytes")

        count = channel.unary_stream("/echo.Echo/Count", ident, ident)
        got = [fields(r).get(1, 0) for r in count(uint_field(1, 500), timeout=10)]
        check(got == list(range(500)), "Count: 500 replies in order")

        slow = channel.unary_unary("/echo.Echo/Slow", ident, ident)
        try:
            slow(uint_field(1, 30_000), timeout=0.3)
            check(False, "Slow past its deadline")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"Slow past its deadline: {e.code()}")

        nope = channel.unary_unary("/echo.Echo/Nope", ident, ident)
        try:
            nope(b"", timeout=10)
            check(False, "an unknown method")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNIMPLEMENTED, f"an unknown method: {e.code()}")


class Echo(grpc.GenericRpcHandler):
    def __init__(self):
        self.slow_deadline = None

    def service(self, details):
        if details.method == "/echo.Echo/Echo":
            return grpc.unary_unary_rpc_method_handler(
                lambda req, ctx: bytes_field(1, fields(req).get(1, b"")), ident, ident
            )
        if details.method == "/echo.Echo/Count":
            def count(req, ctx):
                f = fields(req)
                for i in range(f.get(1, 0)):
                    if i and f.get(2, 0):
                        time.sleep(f[2] / 1000)
                    yield uint_field(1, i)
            return grpc.unary_stream_rpc_method_handler(count, ident, ident)
        if details.method == "/echo.Echo/Slow":
            def slow(req, ctx):
                self.slow_deadline = ctx.time_remaining()
                end = time.monotonic() + fields(req).get(1, 0) / 1000
                while time.monotonic() < end and ctx.is_active():
                    time.sleep(0.01)
                return bytes_field(1, b"slept")
            return grpc.unary_unary_rpc_method_handler(slow, ident, ident)
        return None


def rust_client(binary):
    handler = Echo()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        out = subprocess.run(
            [binary, "client", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=30
        )
        print(out.stdout, end="")
        check(out.returncode == 0, f"the tonic client's run (stderr: {out.stderr.strip()})")
        check("Echo: hello, gopark" in out.stdout, "Echo from the tonic client")
        check(all(f"Count: {i}" in out.stdout for i in range(5)), "Count from the tonic client")
        check("DeadlineExceeded" in out.stdout, "Slow past its deadline, from the tonic client")
        remaining = handler.slow_deadline
        check(remaining is not None and 0 < remaining <= 0.3, f"grpcio saw grpc-timeout: {remaining}")
    finally:
        server.stop(grace=None)


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "target/debug/examples/grpc"
    proc = subprocess.Popen([binary, "--addr", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        check(line.startswith("listening on "), f"the example serves: {line!r}")
        python_client(line.removeprefix("listening on "))
    finally:
        proc.kill()
        proc.wait()
    rust_client(binary)
    print("interop: all passed")


if __name__ == "__main__":
    threading.current_thread().name = "interop"
    main()
