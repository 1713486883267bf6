"""`prune_backups`: grandfather-father-son retention.

Kept: the newest backup of each of the last `keep_daily` calendar days, `keep_weekly` ISO
weeks and `keep_monthly` months (UTC; the current day, week and month count as the first),
and always the newest backup of all, so pruning never leaves the directory empty. A backup
dated after `now` (a clock set wrong) is kept too: it is not ours to judge.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from agent_platform.ops.backups.model import BackupManifest, PruneResult
from agent_platform.ops.backups.storage import list_backups, remove_backup

PeriodOf = Callable[[datetime], Hashable]


def prune_backups(
    directory: Path,
    *,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    now: datetime | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the backups the policy does not keep (nothing when `dry_run`)."""
    manifests = list_backups(directory)
    kept = backups_to_keep(
        manifests,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        now=now or datetime.now(UTC),
    )
    removed = [manifest for manifest in manifests if manifest.id not in kept]
    if not dry_run:
        for manifest in removed:
            remove_backup(directory, manifest)
    return PruneResult(
        kept=[manifest.id for manifest in manifests if manifest.id in kept],
        removed=[manifest.id for manifest in removed],
    )


def backups_to_keep(
    manifests: Sequence[BackupManifest],
    *,
    keep_daily: int,
    keep_weekly: int,
    keep_monthly: int,
    now: datetime,
) -> set[str]:
    """The ids the policy keeps (pure: no files are touched)."""
    newest_first = sorted(manifests, key=lambda m: (m.created_at, m.id), reverse=True)
    kept = {m.id for m in newest_first[:1]} | {m.id for m in newest_first if m.created_at > now}
    for period_of, periods in (
        (_day, _recent(_day, now, keep_daily, timedelta(days=1))),
        (_week, _recent(_week, now, keep_weekly, timedelta(weeks=1))),
        (_month, _recent_months(now, keep_monthly)),
    ):
        seen: set[Hashable] = set()
        for manifest in newest_first:
            period = period_of(manifest.created_at)
            if period in periods and period not in seen:
                seen.add(period)
                kept.add(manifest.id)
    return kept


def _day(moment: datetime) -> Hashable:
    return moment.astimezone(UTC).date()


def _week(moment: datetime) -> Hashable:
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return year, week


def _month(moment: datetime) -> Hashable:
    utc = moment.astimezone(UTC)
    return utc.year, utc.month


def _recent(period_of: PeriodOf, now: datetime, count: int, step: timedelta) -> set[Hashable]:
    return {period_of(now - step * back) for back in range(count)}


def _recent_months(now: datetime, count: int) -> set[Hashable]:
    utc = now.astimezone(UTC)
    months = utc.year * 12 + utc.month - 1
    return {(year, month + 1) for year, month in (divmod(months - n, 12) for n in range(count))}
