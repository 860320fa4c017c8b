"""Lotline's composition root: settings, CLI, worker and the embedded dev stack. No business rules here."""
