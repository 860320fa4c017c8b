"""Activity names: the contract between workflows (which call them by name) and activities/ (which
implement them). Workflows never import activities: they would drag I/O into the sandbox."""

# Store (activities/store.py)
FREEZE_SCOPE = "recall.freeze_scope"
APPROVAL_PLAN = "recall.approval_plan"
DECIDE = "recall.decide"
AMEND_FILINGS = "recall.amend_filings"
CONTAIN = "recall.contain"
SET_STATUS = "recall.set_status"
PROGRESS = "recall.progress"
FOLLOW_UP = "recall.follow_up"
SIGN_RECORD = "recall.sign_record"
RENDER_REPORT = "recall.render_report"

# Tasks and signatures (activities/tasks.py)
OPEN_TASK = "task.open"
SIGN_TASK = "task.sign"
NUDGE_TASK = "task.nudge"
CLOSE_TASKS = "task.close_for_record"

# Notices (activities/notify.py)
SEND_ROUND = "notice.send_round"

# Change control (activities/changes.py)
CHANGE_PLAN = "change.plan"
CHANGE_COMPUTE_IMPACT = "change.compute_impact"
CHANGE_RECORD_IMPACT = "change.record_impact"
CHANGE_APPROVALS_OPENED = "change.approvals_opened"
CHANGE_RECORD_DECISION = "change.record_decision"
CHANGE_CLOSE_ROUND = "change.close_round"
CHANGE_START_IMPLEMENTATION = "change.start_implementation"
CHANGE_ESCALATE_OVERDUE = "change.escalate_overdue"
CHANGE_COMPLETE_TASK = "change.complete_task"
CHANGE_REWORK = "change.rework"
CHANGE_EFFECTIVE_TIMING = "change.effective_timing"
CHANGE_MAKE_EFFECTIVE = "change.make_effective"
CHANGE_SET_STATUS = "change.set_status"
CHANGE_SIGN_RECORD = "change.sign_record"

# QC release (activities/quality.py)
QC_RELEASE_PLAN = "quality.release_plan"
QC_EVALUATE = "quality.evaluate"
QC_REVIEW = "quality.review_release"
QC_SET_STATUS = "quality.set_status"
QC_DISPOSE = "quality.dispose"

# CAPA (activities/capa.py)
CAPA_PLAN = "capa.plan"
CAPA_STATE = "capa.state"
CAPA_DECIDE_PLAN = "capa.decide_plan"
CAPA_ESCALATE_OVERDUE = "capa.escalate_overdue"
CAPA_AWAIT_EFFECTIVENESS = "capa.await_effectiveness"
CAPA_BEGIN_VERIFICATION = "capa.begin_verification"
CAPA_DECIDE_CLOSURE = "capa.decide_closure"
CAPA_RECALL_LINK = "capa.recall_link"
CAPA_SETTLE_TASK = "capa.settle_task"

# Reminder digests (activities/tasks.py)
DIGEST_PLAN = "task.digest_plan"
SEND_DIGESTS = "task.send_digests"
