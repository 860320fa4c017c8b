"""The model and its rules: entities, the stock ledger, trace queries, policies and imports.

Kept light on purpose: payload modules are imported by workflows inside Temporal's sandbox.
"""
