"""What the worker runs: every workflow class and activity the project registers, in one place.

The lead adds each workflow and its activities here as they land; `lotline worker` and the tests
that run a real worker read the lists from here so that they never drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from lotline.settings import Settings


def workflows() -> list[type]:
    """Workflow classes the worker registers."""
    from workflows.capa import CapaWorkflow
    from workflows.change_control import ChangeControlWorkflow
    from workflows.qc_release import QcReleaseWorkflow
    from workflows.recall import RecallWorkflow
    from workflows.task_digest import TaskDigestWorkflow

    return [RecallWorkflow, QcReleaseWorkflow, ChangeControlWorkflow, CapaWorkflow, TaskDigestWorkflow]


def standing_workflows() -> list[tuple[str, str, object]]:
    """Workflows that always run, one per site: (workflow type, workflow id, start argument). The worker
    starts each at start-up unless it runs already (a second worker or a restart changes nothing)."""
    from domain.tasks.payloads import DigestStart
    from workflows.task_digest import WORKFLOW_ID, TaskDigestWorkflow

    return [(TaskDigestWorkflow.__name__, WORKFLOW_ID, DigestStart())]


def activities(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> list[Callable]:
    """Activity callables (bound methods of activity classes built here with their clients)."""
    from activities.capa import CapaStore
    from activities.changes import ChangeActivities
    from activities.documents import RecallDocuments
    from activities.notify import NoticeSender
    from activities.quality import QualityActivities
    from activities.store import RecallStore
    from activities.tasks import TaskActivities, TaskDigests

    store = RecallStore(sessions)
    tasks = TaskActivities(sessions)
    sender = NoticeSender(sessions, settings)
    documents = RecallDocuments(sessions, settings)
    quality = QualityActivities(sessions)
    return [
        store.freeze_scope,
        store.approval_plan,
        store.decide,
        store.amend_filings,
        store.contain,
        store.set_status,
        store.progress,
        store.follow_up,
        store.sign_record,
        documents.render_report,
        tasks.open_task,
        tasks.sign_task,
        tasks.nudge_task,
        tasks.close_tasks,
        sender.send_round,
        *CapaStore(sessions).all(),
        quality.release_plan,
        quality.evaluate,
        quality.review,
        quality.set_status,
        quality.dispose,
        *ChangeActivities(sessions).all(),
        *TaskDigests(sessions, settings).all(),
    ]
