"""What a preflight check found, and what the whole run means for a deployment."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class CheckStatus(StrEnum):
    PASSED = "passed"
    # Worth knowing, not worth stopping a deployment for.
    WARNING = "warning"
    FAILED = "failed"
    # Not applicable here (e.g. no source checkout), or asked to be skipped.
    SKIPPED = "skipped"


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    status: CheckStatus
    detail: str = ""


def passed(name: str, detail: str = "") -> CheckOutcome:
    return CheckOutcome(name, CheckStatus.PASSED, detail)


def warning(name: str, detail: str) -> CheckOutcome:
    return CheckOutcome(name, CheckStatus.WARNING, detail)


def failed(name: str, detail: str) -> CheckOutcome:
    return CheckOutcome(name, CheckStatus.FAILED, detail)


def skipped(name: str, detail: str) -> CheckOutcome:
    return CheckOutcome(name, CheckStatus.SKIPPED, detail)


@dataclass(frozen=True)
class PreflightReport:
    environment: str
    role: str
    checks: list[CheckOutcome]

    @property
    def passed(self) -> bool:
        """Warnings allowed: only a failed check stops a deployment."""
        return all(check.status is not CheckStatus.FAILED for check in self.checks)

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else 1

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "environment": self.environment,
            "role": self.role,
            "checks": [
                {"name": check.name, "status": check.status.value, "detail": check.detail}
                for check in self.checks
            ],
        }
