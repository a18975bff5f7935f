"""Notifications through an outbox (DESIGN.md, "Notifications are an outbox").

A service that notifies calls `notification_enqueue` in its own transaction; the beat task
`releasecontrol.tasks.notifications_deliver` sends the rows that committed.
"""
