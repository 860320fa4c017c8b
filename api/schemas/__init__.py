"""Request and response schemas, one module per area (XBase → XCreate / XUpdate → XPublic)."""
