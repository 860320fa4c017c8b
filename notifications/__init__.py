"""Channels (e-mail, SMS), templates in zh-CN and en, and delivery receipts."""
