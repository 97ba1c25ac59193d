"""Which day a DAG run processes. Light on purpose: imported by DAG files at parse time.

The daily DAG uses ``CronDataIntervalTimetable("0 0 * * *", timezone="UTC")``: the run for day D
has the data interval [D 00:00, D+1 00:00) UTC and starts once that interval has ended. The day
processed is the interval's start date. Manual runs may carry no data interval (Airflow 3), or an
analyst may name a day explicitly through the ``day`` param; both are handled here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta


def processing_day(
    data_interval_start: datetime | None,
    data_interval_end: datetime | None = None,
    run_after: datetime | None = None,
    override: str | date | None = None,
) -> date:
    """The UTC calendar day a run measures.

    Order of precedence: an explicit ``override`` (the ``day`` param, ``YYYY-MM-DD``); the data
    interval, which must be exactly one UTC day; for manual runs without an interval, the full
    day before ``run_after``.
    """
    if override:
        return override if isinstance(override, date) else date.fromisoformat(str(override))
    if data_interval_start is not None:
        if data_interval_end is not None and data_interval_end - data_interval_start != timedelta(
            days=1
        ):
            raise ValueError(
                "data interval must span exactly one day, got "
                f"{data_interval_start.isoformat()} .. {data_interval_end.isoformat()}"
            )
        start = _as_utc_naive(data_interval_start)
        if start.time() != datetime.min.time():
            raise ValueError(f"data interval must start at 00:00 UTC, got {start.isoformat()}")
        return start.date()
    if run_after is not None:
        return _as_utc_naive(run_after).date() - timedelta(days=1)
    raise ValueError("cannot tell which day to process: no data interval, run_after or day param")


def _as_utc_naive(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    offset = moment.utcoffset() or timedelta(0)
    return (moment - offset).replace(tzinfo=None)
