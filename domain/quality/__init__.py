"""QC lot release: inspection plans, inspections and results, evaluation, dispositions and
nonconformances (ISO 13485 8.2.6 and 8.3; NMPA: release signed by an authorised releaser).

Kept light on purpose (imports nothing): workflows import ``domain.quality.payloads`` inside
Temporal's sandbox, and importing this package must not drag SQLAlchemy in with it.
"""
