"""CAPA (ISO 13485 8.5.2): the record, its actions, the policy for its timers and ladders, and the
service functions the API and the workflow's activities call. Kept light: import the submodules."""
