"""CI smoke test of a whole server, the README's quick start over real HTTP: migrate, load the
demo data, start uvicorn, then /readyz, /api/docs/, register with a demo invite, log in, /me,
and stop.

Run under `python -m config.devserver exec --` so the embedded services are up.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("RIFF_DEV", "1")


def main() -> int:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], check=True)
    subprocess.run([sys.executable, "manage.py", "seed_demo"], check=True)
    invite = subprocess.run(
        [sys.executable, "manage.py", "mint_invites", "1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
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
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = call(f"{base}/readyz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("readyz never answered")
                    return 1
                time.sleep(0.5)
        print("readyz", status, body)
        if status != 200:
            return 1
        return walk_quick_start(base, invite)
    finally:
        server.terminate()
        server.wait(15)


def call(url: str, *, data: dict | None = None, token: str = "") -> tuple[int, str]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body)  # noqa: S310 (our own server)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def walk_quick_start(base: str, invite: str) -> int:
    steps = []
    status, _ = call(f"{base}/api/docs/")
    steps.append(("GET /api/docs/", status, 200))
    status, body = call(
        f"{base}/api/v1/auth/register",
        data={
            "username": "smoketest",
            "email": "smoke@example.com",
            "password": "a-long-smoke-password",
            "invite_code": invite,
            "birth_date": "1990-01-01",
        },
    )
    steps.append(("POST /auth/register", status, 201))
    status, body = call(
        f"{base}/api/v1/auth/login",
        data={"username": "smoketest", "password": "a-long-smoke-password"},
    )
    steps.append(("POST /auth/login", status, 200))
    token = json.loads(body).get("token", "") if status == 200 else ""
    status, body = call(f"{base}/api/v1/me", token=token)
    steps.append(("GET /me", status, 200))
    ok = status == 200 and json.loads(body).get("username") == "smoketest"
    for name, got, want in steps:
        print(f"{name}: {got}" + ("" if got == want else f" (expected {want})"))
        ok = ok and got == want
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
