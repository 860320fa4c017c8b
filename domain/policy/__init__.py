"""Policies: where every deadline, reminder, escalation ladder and report cadence comes from.

- ``domain.policy.recall``: THE place for a recall's numbers (notify windows, report deadlines, gates,
  follow-up and approval ladders, report cadences), each named after the rule it comes from and
  carrying its citation into the computed schedule. Start there.
- ``domain.policy.escalation``: THE table of escalation ladders for every process (recall, CAPA, change,
  QC release): each stage's deadline, its remind/escalate steps as fractions of it or offsets, whom each
  escalation goes to; and the reminder digest's period. The process policies read their ladders from it.
- ``domain.policy.calendars``: working-day calendars per jurisdiction (CN official calendar with
  adjusted working weekends, US federal holidays, EU weekends) and the working-day counting rule.
- ``domain.policy.schedule``: the payload models (input and computed schedule); pydantic and the
  standard library only, so workflows may import them inside Temporal's sandbox.

Pure functions: no I/O, no clock, no randomness; the same input always gives the same schedule.
Kept light on purpose: this file imports nothing.
"""
