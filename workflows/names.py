"""Activity names: the contract between workflows (which call them by name) and activities/ (which
implement them). Workflows never import activities: they would drag I/O into the sandbox."""

# Store (activities/store.py)
FREEZE_SCOPE = "recall.freeze_scope"
APPROVAL_PLAN = "recall.approval_plan"
DECIDE = "recall.decide"
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
