"""Notifications: a transactional outbox (outbox), the relay that fans its events out to
in-app notifications and webhook deliveries (relay), webhook endpoints (webhooks), their
signatures (signing), the delivery loop with retries and a dead letter (delivery), and the
worker tasks behind the ``notification_events`` queue (tasks)."""
