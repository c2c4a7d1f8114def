"""msgsandbox: private, throwaway instances of PostgreSQL, statusd, Postfix and Dovecot.

Used by the end-to-end tests and by the demo (scripts/run). Everything lives under one
folder; servers listen on 127.0.0.1 or UNIX sockets in that folder; every process started
here is stopped by PID when the sandbox closes, also when a test fails or is interrupted.

    with Sandbox() as sb:
        pg = sb.postgres()
        sd = sb.statusd(pg)
        sd.send_events([...])
"""
from .core import Sandbox, SandboxError, free_port, paths  # noqa: F401
