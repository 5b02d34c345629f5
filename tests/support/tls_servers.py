"""A real TLS server on loopback for the TLS tests (tls_check, health_gate's tls probe): Python's ssl, in a thread."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from pathlib import Path


class TlsServer:
    """Accepts TLS connections on a free loopback port with one certificate chain, in a daemon thread.

    ``sni`` lists the server names clients sent. Connections are served one after the other: each handshake, then a
    read until the client closes (a client that checks a certificate closes right after the handshake). With
    ``hang`` set, it accepts connections and never answers them (a hung TLS endpoint: TCP up, no handshake).
    """

    def __init__(self, tmp_path: Path, name: str, chain_pem: bytes, key_pem: bytes):
        cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
        cert.write_bytes(chain_pem)
        key.write_bytes(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert), str(key))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sni: list[str] = []
        self.hang = False
        self.held: list[socket.socket] = []
        self.context.sni_callback = lambda _s, server_name, _c: self.sni.append(server_name)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _address = self.sock.accept()
            except OSError:
                return
            if self.hang:
                self.held.append(conn)
                continue
            with contextlib.suppress(OSError), conn:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)  # until the client closes

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()
