"""Timeouts and retry policies shared by every workflow."""

from datetime import timedelta

from temporalio.common import RetryPolicy

# Store activities: short, idempotent, retried until the store answers.
STORE = {
    "start_to_close_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(
        initial_interval=timedelta(seconds=1),
        maximum_interval=timedelta(minutes=1),
        non_retryable_error_types=["InvalidInput", "NotFound", "Conflict"],
    ),
}

# Sending rounds: long, heartbeating, resumed from their last heartbeat.
SENDING = {
    "start_to_close_timeout": timedelta(hours=2),
    "heartbeat_timeout": timedelta(minutes=2),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=5)),
}
