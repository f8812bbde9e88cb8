"""The chaos: the orders breaker forced open/closed through admin, and every Procfile entry
SIGKILLed and started again, one at a time with short pauses, while the traffic runs."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field

import httpx

from tests.e2e.chaos.stack import Stack

# Flips name the admin action; kills name the Procfile entry. The gateway goes last but one so
# that a reset after its restart clears any override its shared breaker state kept.
SCRIPT: tuple[tuple[str, str], ...] = (
    ("flip", "open"),
    ("kill", "orders"),
    ("flip", "close"),
    ("kill", "inventory"),
    ("flip", "reset"),
    ("kill", "orders-sync"),
    ("flip", "open"),
    ("kill", "inventory-sync"),
    ("flip", "close"),
    ("kill", "legacy-consumer"),
    ("flip", "reset"),
    ("kill", "legacy"),
    ("flip", "open"),
    ("kill", "gateway"),
    ("flip", "reset"),
)


@dataclass
class Monkey:
    """Runs `SCRIPT` in a thread; `log` says what happened when, for a failure message."""

    stack: Stack
    down: float = 1.0  # how long a killed entry stays dead
    pause: float = 1.0  # between two steps
    kills: int = 0
    flips: int = 0
    log: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    thread: threading.Thread | None = None
    t0: float = field(default_factory=time.monotonic)  # the log's time origin (the ledger's)

    def _note(self, what: str) -> None:
        self.log.append(f"{time.monotonic() - self.t0:6.1f}s {what}")

    def flip(self, action: str) -> None:
        """POST admin /-/breakers/orders/<action>; must answer 200."""
        url = f"{self.stack.url('admin')}/-/breakers/orders/{action}"
        r = httpx.post(url, timeout=5.0)
        if r.status_code != 200:
            raise AssertionError(f"breaker {action}: {r.status_code} {r.text[:300]}")
        self.flips += 1
        self._note(f"breaker orders {action}")

    def kill(self, name: str) -> None:
        """SIGKILL entry `name`, leave it dead for `down` seconds, start it again, wait for it."""
        self.stack.kill(name)
        self.kills += 1
        self._note(f"SIGKILL {name}")
        time.sleep(self.down)
        self.stack.restart(name)
        self._note(f"{name} up again")

    def run(self) -> None:
        """The whole script (errors are kept, and the remaining steps still run)."""
        for step, arg in SCRIPT:
            try:
                self.flip(arg) if step == "flip" else self.kill(arg)
            except Exception as exc:
                self.errors.append(f"{step} {arg}: {exc!r}\n{traceback.format_exc()[-2000:]}")
                self._note(f"FAILED {step} {arg}")
            time.sleep(self.pause)

    def start(self) -> None:
        """Run the script in a background thread."""
        self.thread = threading.Thread(target=self.run, name="chaos", daemon=True)
        self.thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the script to finish."""
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.errors.append(f"the chaos script was still running after {timeout}s")
