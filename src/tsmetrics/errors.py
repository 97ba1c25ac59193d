"""tsmetrics' error hierarchy. Each class subclasses a builtin so callers can catch either."""


class TsmetricsError(Exception):
    """Base class of every error tsmetrics raises on purpose."""


class MissingInputError(TsmetricsError, FileNotFoundError):
    """A day's input (log file) is not where it should be."""


class InvalidLabelError(TsmetricsError, ValueError):
    """A labeler returned something that is not a valid label: a failed attempt, never a label."""


class AlertDeliveryError(TsmetricsError, RuntimeError):
    """One or more alerts could not be delivered; they stay in the outbox and are retried."""


class CollectionStopped(TsmetricsError, RuntimeError):
    """A labeler cannot take more work now (e.g. its daily cap is reached): the task was not
    attempted, stays pending, and label collection stops; nothing is lost."""
