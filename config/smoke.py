"""CI smoke test of a whole server: migrate, start uvicorn, get 200 from /readyz, stop.

Run under `python -m config.devserver exec --` so the embedded services are up.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.request

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("RIFF_DEV", "1")


def main() -> int:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "config.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/readyz", timeout=2
                ) as response:  # noqa: S310
                    body = response.read().decode()
                    print("readyz", response.status, body)
                    return 0 if response.status == 200 else 1
            except OSError:
                time.sleep(0.5)
        print("readyz never answered")
        return 1
    finally:
        server.terminate()
        server.wait(15)


if __name__ == "__main__":
    sys.exit(main())
