"""The dashboard's figures as the page shows them: numbers grouped the reader's way, money,
shares, a duration a person reads at a glance, the 7-day charts and the budget bar."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from agent_platform.dashboard.figures import DailyFigure, DashboardFigures, StageCount
from agent_platform.dashboard.queries import FailureRate
from agent_platform.web.dashboard_parts.charts import BarChart, ChartPoint, bar_chart
from agent_platform.web.i18n import Translate

# The budget bar's own coordinates: the SVG stretches them to the card's width.
BUDGET_BAR_WIDTH = 100
NO_BREAK_SPACE = "\u00a0"
# Beyond these, leads are summed in one line: a team works a handful of stages at a time.
STAGE_ROWS = 8


@dataclass(frozen=True)
class DailyView:
    today: str
    last_7_days: str
    chart: BarChart | None  # None when the 7 days have nothing to draw


@dataclass(frozen=True)
class StageView:
    pipeline_id: str | None  # None: the platform has not seen the lead's stage
    status_id: str | None
    leads: str


@dataclass(frozen=True)
class BudgetView:
    spent: str
    limit: str | None  # None: no monthly limit
    used_share: str | None
    bar_used_width: float  # of BUDGET_BAR_WIDTH
    state: str  # "ok", "warning" or "exhausted": the bar's colour


@dataclass(frozen=True)
class RateView:
    failed: str
    total: str
    share: str | None  # None when nothing happened to fail
    alarming: bool


@dataclass(frozen=True)
class DashboardView:
    timezone: str
    today: str
    conversations: DailyView
    replies_sent: DailyView
    first_response: str | None
    answered_messages: str
    handoffs_today: str
    handoffs_7_days: str
    stages: tuple[StageView, ...]
    other_stage_leads: str | None  # the leads of the stages past STAGE_ROWS
    tokens_in: str
    tokens_out: str
    llm_calls: str
    calls_of_unknown_cost: int
    budget: BudgetView
    budget_bar_width: int
    queue_waiting: str
    queue_delayed: str
    queue_active: str
    queue_failed: str
    queue_has_failed: bool
    oldest_waiting: str | None
    jobs_last_24h: RateView
    inbox_last_24h: RateView


def dashboard_view(figures: DashboardFigures, t: Translate, language: str) -> DashboardView:
    def number(value: int) -> str:
        return grouped(value, language)

    queue = figures.queue.now
    shown_stages = figures.leads_by_stage[:STAGE_ROWS]
    other = sum(stage.leads for stage in figures.leads_by_stage[STAGE_ROWS:])
    return DashboardView(
        timezone=figures.timezone,
        today=figures.today.isoformat(),
        conversations=_daily(figures.conversations, t, language),
        replies_sent=_daily(figures.replies_sent, t, language),
        first_response=(
            None
            if figures.first_response.median_seconds is None
            else duration(figures.first_response.median_seconds, t)
        ),
        answered_messages=number(figures.first_response.answered_messages),
        handoffs_today=number(figures.handoffs.today),
        handoffs_7_days=number(figures.handoffs.last_7_days),
        stages=tuple(_stage(stage, language) for stage in shown_stages),
        other_stage_leads=number(other) if other else None,
        tokens_in=number(figures.llm.tokens_in),
        tokens_out=number(figures.llm.tokens_out),
        llm_calls=number(figures.llm.calls),
        calls_of_unknown_cost=figures.llm.calls_of_unknown_cost,
        budget=_budget(figures, language),
        budget_bar_width=BUDGET_BAR_WIDTH,
        queue_waiting=number(queue.waiting),
        queue_delayed=number(queue.delayed),
        queue_active=number(queue.active),
        queue_failed=number(queue.failed),
        queue_has_failed=queue.failed > 0,
        oldest_waiting=(
            duration(queue.oldest_waiting_seconds, t) if queue.oldest_waiting_seconds > 0 else None
        ),
        jobs_last_24h=_rate(figures.queue.jobs_last_24h, language),
        inbox_last_24h=_rate(figures.inbox_last_24h, language),
    )


def grouped(value: int, language: str) -> str:
    """1,234,567 in English; 1 234 567 (no-break spaces) in Russian."""
    text = f"{value:,}"
    return text.replace(",", NO_BREAK_SPACE) if language == "ru" else text


def dollars(amount: Decimal, language: str) -> str:
    cents = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    whole, _, fraction = f"{cents:,}".partition(".")
    if language == "ru":
        return f"{whole.replace(',', NO_BREAK_SPACE)},{fraction}{NO_BREAK_SPACE}$"
    return f"${whole}.{fraction}"


def share(ratio: float, language: str) -> str:
    text = f"{ratio * 100:.1f}"
    return f"{text.replace('.', ',')}{NO_BREAK_SPACE}%" if language == "ru" else f"{text}%"


def duration(seconds: float, t: Translate) -> str:
    """The two largest units that matter: 42 s, 3 min 20 s, 2 h 5 min, 3 d 4 h."""
    whole = round(seconds)
    if whole < 60:
        return t("dashboard.duration.seconds", seconds=whole)
    minutes, seconds_left = divmod(whole, 60)
    if minutes < 60:
        return t("dashboard.duration.minutes", minutes=minutes, seconds=seconds_left)
    hours, minutes_left = divmod(minutes, 60)
    if hours < 24:
        return t("dashboard.duration.hours", hours=hours, minutes=minutes_left)
    days, hours_left = divmod(hours, 24)
    return t("dashboard.duration.days", days=days, hours=hours_left)


def _daily(figure: DailyFigure, t: Translate, language: str) -> DailyView:
    points = [
        ChartPoint(
            label=t(f"dashboard.weekday.{point.day.weekday()}"),
            title=t(
                "dashboard.chart_point",
                day=point.day.isoformat(),
                count=grouped(point.count, language),
            ),
            value=point.count,
        )
        for point in figure.by_day
    ]
    return DailyView(
        today=grouped(figure.today, language),
        last_7_days=grouped(figure.last_7_days, language),
        chart=bar_chart(points) if any(point.value for point in points) else None,
    )


def _stage(stage: StageCount, language: str) -> StageView:
    return StageView(
        pipeline_id=None if stage.pipeline_id is None else str(stage.pipeline_id),
        status_id=None if stage.status_id is None else str(stage.status_id),
        leads=grouped(stage.leads, language),
    )


def _budget(figures: DashboardFigures, language: str) -> BudgetView:
    budget = figures.llm.budget
    ratio = budget.used_ratio
    state = "exhausted" if budget.exhausted else "warning" if budget.warning_reached else "ok"
    return BudgetView(
        spent=dollars(budget.spent_usd, language),
        limit=None if budget.limit_usd is None else dollars(budget.limit_usd, language),
        used_share=None if ratio is None else share(float(ratio), language),
        bar_used_width=(
            0.0 if ratio is None else round(BUDGET_BAR_WIDTH * min(float(ratio), 1.0), 1)
        ),
        state=state,
    )


def _rate(rate: FailureRate, language: str) -> RateView:
    ratio = rate.ratio
    return RateView(
        failed=grouped(rate.failed, language),
        total=grouped(rate.total, language),
        share=None if ratio is None else share(ratio, language),
        alarming=rate.failed > 0,
    )
