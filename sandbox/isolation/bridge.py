"""Inside the sandbox: forward TCP 127.0.0.1:<port> to the host proxy's Unix socket (stdlib only).

Run as `/usr/bin/python3 -I -S bridge.py SOCKET PORT`; prints `ready` once it listens. It runs in the
session's network namespace, so every command of the session reaches the proxy at 127.0.0.1:PORT,
while only the bridge's own mount namespace contains the socket.
"""

import socket
import sys
import threading


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy bytes from src to dst until src ends, then end dst's write side."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn: socket.socket, path: str) -> None:
    """Join one TCP client to a fresh connection to the host proxy."""
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        conn.close()
        upstream.close()
        return
    back = threading.Thread(target=pump, args=(upstream, conn), daemon=True)
    back.start()
    pump(conn, upstream)
    back.join()
    conn.close()
    upstream.close()


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    server = socket.create_server(("127.0.0.1", port), backlog=128)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, path), daemon=True).start()


if __name__ == "__main__":
    main()
