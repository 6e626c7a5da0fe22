"""Shared test setup: the smoke profile, a quiet matplotlib, and no network at all."""
import os
import socket

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
os.environ.setdefault("VIT_TUTORIAL_PROFILE", "smoke")
torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests must never download: any attempt to open a non-local connection fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
            raise NetworkBlocked(f"test tried to reach the network: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
