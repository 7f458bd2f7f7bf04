"""This process's name in metrics and logs: host:pid."""

from __future__ import annotations

import os
import socket

PROCESS = f"{socket.gethostname()}:{os.getpid()}"
